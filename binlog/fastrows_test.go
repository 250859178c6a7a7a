package binlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"
	"go.uber.org/zap"

	"github.com/tandemhost/tandem/internal/mysqltest"
)

// fastTable has a column of every type fastrows.go decodes itself, with
// each length-prefix size.
const fastTable = `CREATE TABLE shop.fast (
	id INT PRIMARY KEY,
	ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
	mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
	f FLOAT, db DOUBLE,
	c CHAR(10), cl CHAR(100), cb CHAR(255) CHARACTER SET latin1, vc VARCHAR(20), vl VARCHAR(300), v1 VARCHAR(255) CHARACTER SET latin1,
	tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, lt LONGTEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB, lb LONGBLOB,
	u VARCHAR(10) CHARACTER SET ucs2
) DEFAULT CHARSET=utf8mb4`

// fastRows are rows for fastTable: extremes, the other extremes, empty
// values and NULLs; updates and deletes follow.
var fastRows = []string{
	`(1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
	  3.4e38, 1.7976931348623157e308, 'héllo', REPEAT('é', 100), REPEAT('x', 255), '😀 emoji', REPEAT('ü', 300), REPEAT(CHAR(233), 255),
	  'tiny', REPEAT('t', 1000), REPEAT('m', 70000), 'long', X'0102', X'00ff00', X'00', REPEAT(X'ab', 300), 'ucs')`,
	`(2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
	  -1.5, -2.5e-300, '', '', '', '', '', '', '', '', '', '', X'00000000', X'', X'', X'', '')`,
	`(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	`(4, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, 0, 0, 'a  ', ' b', 'c', 'trailing  ', 'x', 'y', 'z', 'w', 'v', 'u', X'61', X'62', X'63', X'64', 'e')`,
}

// TestFastRowsSameAsGoMySQL tails one real server's binlog twice, with the
// fast decoding and with go-mysql's, over rows of every fast type: the
// Txns must be the same.
func TestFastRowsSameAsGoMySQL(t *testing.T) {
	srv := mysqltest.Start(t, mysqltest.Options{ServerID: 31})
	db := srv.DB("")
	exec(t, db, "CREATE DATABASE shop") // a GTID to start after: "" is the server's current position
	var from string
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&from); err != nil {
		t.Fatal(err)
	}
	exec(t, db, fastTable)
	for _, r := range fastRows {
		exec(t, db, "INSERT INTO shop.fast VALUES "+r)
	}
	exec(t, db,
		"UPDATE shop.fast SET ti = ti - 1, vc = 'changed', bn = X'01', lt = REPEAT('L', 300) WHERE id = 1",
		"UPDATE shop.fast SET c = NULL, tiu = 7 WHERE id IN (2, 4)", // one event, two pairs
		"DELETE FROM shop.fast WHERE id = 3",
		"BEGIN", "INSERT INTO shop.fast (id, vc) VALUES (10, 'a'), (11, 'b')", "UPDATE shop.fast SET vc = 'c' WHERE id = 10", "COMMIT",
		"CREATE TABLE shop.notfast (id INT PRIMARY KEY, d DATE)", // falls back to go-mysql
		"INSERT INTO shop.notfast VALUES (1, '2026-12-05')",
		"INSERT INTO shop.fast (id) VALUES (99)",
	)
	tail := func(slow bool) []*Txn {
		tl, err := NewTailer(TailerOptions{DSN: srv.DSN(""), ServerID: 9600 + nextServerID.Add(1), Node: "alpha", Databases: []string{"shop"}, Log: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		tl.slowRows = slow
		var got []*Txn
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		err = tl.Run(ctx, from, func(x *Txn) error {
			got = append(got, x)
			if len(x.Rows) == 1 && x.Rows[0].Table == "fast" && x.Rows[0].After != nil && x.Rows[0].After[0].I == 99 {
				cancel()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	fast, slow := tail(false), tail(true)
	if len(fast) != len(slow) || len(fast) < 10 {
		t.Fatalf("%d transactions tailed the fast way, %d with go-mysql", len(fast), len(slow))
	}
	for i := range fast {
		if !reflect.DeepEqual(fast[i], slow[i]) {
			t.Errorf("transaction %d:\nfast     %s\ngo-mysql %s", i, describe(fast[i]), describe(slow[i]))
		}
	}
	// The values are what was written, not only the same both ways.
	row := fast[1].Rows[0].After // the first INSERT, after CREATE TABLE
	if len(row) != 28 || row[9].I != 9223372036854775807 || row[10].U != 18446744073709551615 || string(row[13].B) != "héllo" ||
		len(row[21].B) != 70000 || string(row[23].B) != "\x01\x02\x00\x00" {
		t.Errorf("first row decoded as %s", describe(fast[1]))
	}
}

// FuzzFastRows feeds arbitrary row event bodies for the golden file's
// shop.small table maps (INT and VARCHAR columns: decoded by fastrows.go)
// to both decoders: where go-mysql's gives rows, the fast one must give
// the same; where it fails, so must the fast one.
func FuzzFastRows(f *testing.F) {
	c := captureEvents(f)
	const table = "shop.small"
	trailer := 0
	if c.checksum {
		trailer = 4
	}
	var headers [][]byte
	for _, raw := range c.rows[table] {
		headers = append(headers, raw[:replication.EventHeaderSize])
		f.Add(uint8(len(headers)-1), raw[replication.EventHeaderSize:len(raw)-trailer])
	}
	if len(headers) == 0 {
		f.Fatal("no shop.small row events in the golden file")
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		h := headers[int(which)%len(headers)]
		event := func(fill byte) []byte {
			raw := make([]byte, 0, len(h)+len(body)+trailer)
			raw = append(raw, h...)
			raw = append(raw, body...)
			for range trailer {
				raw = append(raw, fill)
			}
			binary.LittleEndian.PutUint32(raw[9:], uint32(len(raw))) // event size
			return raw
		}
		slowRows := func(raw []byte) ([]Row, error) {
			ev, err := parseRowsEvent(c, table, raw)
			if err != nil {
				return nil, err
			}
			return newDecoder(nil).rows(nil, ev, opOf(ev))
		}
		raw := event(0)
		slow, slowErr := slowRows(raw)
		fast, fastErr := parseFast(c, table, raw)
		switch {
		case slowErr == nil && fastErr != nil:
			// go-mysql slices a string past the image's end when the
			// checksum bytes follow it in the buffer: then what it gives
			// changes with them, and the fast decoder is right to fail.
			if other, err := slowRows(event(0xff)); trailer > 0 && (err != nil || !reflect.DeepEqual(slow, other)) {
				return
			}
			t.Fatalf("go-mysql decodes %s, the fast decoder fails: %v", describeRows(slow), fastErr)
		case slowErr != nil && fastErr == nil && fast != nil:
			t.Fatalf("go-mysql fails (%v), the fast decoder decodes %s", slowErr, describeRows(fast))
		case slowErr == nil && !reflect.DeepEqual(slow, fast):
			t.Fatalf("go-mysql: %s\nfast:     %s", describeRows(slow), describeRows(fast))
		}
	})
}

// parseFast decodes a raw row event of table as the Tailer does with the
// fast decoding: nil rows and no error when the parser did not leave the
// event to it (a header go-mysql refuses first, say).
func parseFast(c *capturedEvents, table string, raw []byte) ([]Row, error) {
	p := newFileParser("mariadb")
	p.SetVerifyChecksum(false)
	for _, pre := range [][]byte{c.format, c.tableMap[table]} {
		if _, err := p.Parse(pre); err != nil {
			return nil, err
		}
	}
	d := newDecoder(nil)
	var kept []byte
	var keptTable *tableDef
	p.SetRowsEventDecodeFunc(func(e *replication.RowsEvent, data []byte) error {
		_, err := decodeRowsEventUnless(e, data, func(e *replication.RowsEvent, rows []byte) rowsDecision {
			t, err := d.table(e.Table)
			if err != nil || t.fast == nil {
				return rowsDecode
			}
			kept, keptTable = rows, t
			return rowsRaw
		})
		return err
	})
	be, err := p.Parse(raw)
	if err != nil {
		return nil, err
	}
	ev, ok := be.Event.(*replication.RowsEvent)
	if !ok {
		return nil, fmt.Errorf("parsed a %T", be.Event)
	}
	if keptTable == nil {
		return nil, fmt.Errorf("table %s not decoded the fast way", table)
	}
	return d.rowsFast(nil, keptTable, kept, opOf(ev))
}

func describeRows(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s %v -> %v; ", r.Op, r.Before, r.After)
	}
	return b.String()
}
