package binlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/go-mysql-org/go-mysql/replication"
)

// capturedEvents are the raw events of the golden binlog.
type capturedEvents struct {
	format   []byte              // the format description event
	tableMap map[string][]byte   // "schema.table" -> its last table map event
	rows     map[string][][]byte // "schema.table" -> its row events
	parsed   map[string][]*replication.RowsEvent
	checksum bool // events end in a CRC32
}

func captureEvents(t testing.TB) *capturedEvents {
	t.Helper()
	c := &capturedEvents{tableMap: map[string][]byte{}, rows: map[string][][]byte{}, parsed: map[string][]*replication.RowsEvent{}}
	ids := map[string]uint64{}
	err := newFileParser("mariadb").ParseFile(goldenBinlog, 0, func(ev *replication.BinlogEvent) error {
		switch e := ev.Event.(type) {
		case *replication.FormatDescriptionEvent:
			c.format = ev.RawData
			c.checksum = e.ChecksumAlgorithm == replication.BINLOG_CHECKSUM_ALG_CRC32
		case *replication.TableMapEvent:
			name := string(e.Schema) + "." + string(e.Table)
			if ids[name] != e.TableID { // a new definition: raw rows of the old one cannot be parsed with it
				c.rows[name] = nil
			}
			ids[name] = e.TableID
			c.tableMap[name] = ev.RawData
		case *replication.RowsEvent:
			name := string(e.Table.Schema) + "." + string(e.Table.Table)
			c.rows[name] = append(c.rows[name], ev.RawData)
			c.parsed[name] = append(c.parsed[name], e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func opOf(e *replication.RowsEvent) Op {
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert:
		return Insert
	case replication.EnumRowsEventTypeUpdate:
		return Update
	}
	return Delete
}

// parseRowsEvent parses a raw row event after its format description and
// table map, turning a go-mysql panic into an error as the syncer does.
func parseRowsEvent(c *capturedEvents, table string, raw []byte) (ev *replication.RowsEvent, err error) {
	p := newFileParser("mariadb")
	p.SetVerifyChecksum(false)
	for _, pre := range [][]byte{c.format, c.tableMap[table]} {
		if _, err := p.Parse(pre); err != nil {
			return nil, err
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("go-mysql panicked: %v", r)
		}
	}()
	be, err := p.Parse(raw)
	if err != nil {
		return nil, err
	}
	ev, ok := be.Event.(*replication.RowsEvent)
	if !ok {
		return nil, fmt.Errorf("parsed a %T", be.Event)
	}
	return ev, nil
}

// FuzzDecodeRows feeds arbitrary row event bodies for the captured
// shop.types table map through go-mysql's decoder and the conversion to
// Values: whatever go-mysql accepts must convert or fail, never panic.
func FuzzDecodeRows(f *testing.F) {
	c := captureEvents(f)
	const table = "shop.types"
	trailer := 0
	if c.checksum {
		trailer = 4
	}
	var headers [][]byte
	for _, raw := range c.rows[table] {
		headers = append(headers, raw[:replication.EventHeaderSize])
		f.Add(uint8(len(headers)-1), raw[replication.EventHeaderSize:len(raw)-trailer])
	}
	d := newDecoder(nil)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		h := headers[int(which)%len(headers)]
		raw := make([]byte, 0, len(h)+len(body)+trailer)
		raw = append(raw, h...)
		raw = append(raw, body...)
		raw = append(raw, make([]byte, trailer)...)
		binary.LittleEndian.PutUint32(raw[9:], uint32(len(raw))) // event size
		ev, err := parseRowsEvent(c, table, raw)
		if err != nil {
			return
		}
		rows, err := d.rows(nil, ev, opOf(ev))
		if err != nil {
			return
		}
		for _, r := range rows {
			for _, img := range [][]Value{r.Before, r.After} {
				if img != nil && len(img) != len(r.Columns) {
					t.Fatalf("%d values for %d columns", len(img), len(r.Columns))
				}
			}
		}
	})
}

func TestMissingMetadata(t *testing.T) {
	c := captureEvents(t)
	ev := c.parsed["shop.types"][0]
	tm := *ev.Table
	tm.ColumnName = nil
	tm.TableID++ // not the cached definition
	stripped := *ev
	stripped.Table = &tm
	_, err := newDecoder(nil).rows(nil, &stripped, Insert)
	if !errors.Is(err, ErrNoRowMetadata) || !strings.Contains(err.Error(), "binlog_row_metadata=FULL") {
		t.Errorf("rows of a table map without column names: %v, want ErrNoRowMetadata with the fix", err)
	}
	// Without the image of all columns (binlog_row_image=MINIMAL).
	minimal := *ev
	minimal.SkippedColumns = [][]int{{3}}
	if _, err := newDecoder(nil).rows(nil, &minimal, Insert); err == nil || !strings.Contains(err.Error(), "binlog_row_image=FULL") {
		t.Errorf("rows with skipped columns: %v, want the binlog_row_image=FULL fix", err)
	}
}

func TestAssemblerPartial(t *testing.T) {
	// The golden file's events, cut after the first row event of a
	// transaction, then a new GTID: an error, and nothing of the cut
	// transaction.
	var events []*replication.BinlogEvent
	if err := newFileParser("mariadb").ParseFile(goldenBinlog, 0, func(ev *replication.BinlogEvent) error {
		events = append(events, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cut := -1
	for i, ev := range events {
		if _, ok := ev.Event.(*replication.RowsEvent); ok {
			cut = i
			break
		}
	}
	var nextGTID *replication.BinlogEvent
	for _, ev := range events[cut:] {
		if _, ok := ev.Event.(*replication.MariadbGTIDEvent); ok {
			nextGTID = ev
			break
		}
	}
	a := newAssembler("alpha", "mariadb", nil, newDecoder(nil), zap.NewNop())
	var got []*Txn
	for _, ev := range events[:cut+1] {
		txns, err := a.event(ev)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, txns...)
	}
	for _, x := range got {
		if len(x.Rows) > 0 {
			t.Fatalf("emitted %s before its commit", describe(x))
		}
	}
	if _, err := a.event(nextGTID); err == nil || !strings.Contains(err.Error(), "before transaction") {
		t.Errorf("a GTID inside a transaction: %v, want an error", err)
	}

	// A data change logged as a statement stops the stream.
	a = newAssembler("alpha", "mariadb", []string{"shop"}, newDecoder(nil), zap.NewNop())
	gtid := &replication.BinlogEvent{Header: &replication.EventHeader{}, Event: &replication.MariadbGTIDEvent{}}
	stmt := &replication.BinlogEvent{Header: &replication.EventHeader{}, Event: &replication.QueryEvent{Schema: []byte("shop"), Query: []byte("UPDATE t SET a = 1")}}
	if _, err := a.event(gtid); err != nil {
		t.Fatal(err)
	}
	if _, err := a.event(stmt); err == nil || !strings.Contains(err.Error(), "binlog_format = ROW") {
		t.Errorf("statement-based UPDATE: %v, want an error with the fix", err)
	}
	// So does an XA transaction, rather than waiting for a commit that
	// comes as a separate group.
	xa := &replication.BinlogEvent{Header: &replication.EventHeader{}, Event: &replication.QueryEvent{Query: []byte("XA START 'x'")}}
	if _, err := a.event(gtid); err != nil {
		t.Fatal(err)
	}
	if _, err := a.event(xa); err == nil || !strings.Contains(err.Error(), "XA transaction") {
		t.Errorf("XA START: %v, want an error", err)
	}
}

func TestParseDDL(t *testing.T) {
	cases := []struct {
		q, def, schema string
		ok, database   bool
	}{
		{"CREATE TABLE t (id INT)", "shop", "shop", true, false},
		{"create table if not exists `my``db`.`t` (id int)", "", "my`db", true, false},
		{"/* c */ CREATE OR REPLACE TABLE x.t LIKE y.u", "", "x", true, false},
		{"ALTER ONLINE TABLE shop.t ADD c INT", "", "shop", true, false},
		{"alter ignore table t drop c", "d", "d", true, false},
		{"DROP TABLE IF EXISTS `a`.`b`, `c`.`d` /* generated by server */", "", "a", true, false},
		{"RENAME TABLE a.t TO b.t", "", "a", true, false},
		{"TRUNCATE t", "s", "s", true, false},
		{"TRUNCATE TABLE other.t", "s", "other", true, false},
		{"CREATE UNIQUE INDEX i ON x.t (a)", "", "x", true, false},
		{"DROP INDEX `i` ON t", "s", "s", true, false},
		{"CREATE DATABASE IF NOT EXISTS shop2", "", "shop2", true, true},
		{"DROP SCHEMA `shop2`", "shop2", "shop2", true, true},
		{"-- comment\nCREATE TABLE t (a INT)", "s", "s", true, false},
		{"CREATE TEMPORARY TABLE t (a INT)", "s", "", false, false},
		{"DROP TEMPORARY TABLE t", "s", "", false, false},
		{"CREATE VIEW v AS SELECT 1", "s", "", false, false},
		{"GRANT ALL ON *.* TO x", "", "", false, false},
		{"CREATE USER x", "", "", false, false},
		{"CREATE TABLE", "s", "", false, false},
		{"CREATE TABLE `unterminated", "s", "", false, false},
		{"", "", "", false, false},
	}
	for _, c := range cases {
		d, ok := parseDDL(c.q, c.def)
		if ok != c.ok || ok && (d.schema != c.schema || d.database != c.database) {
			t.Errorf("parseDDL(%q, %q) = %+v, %v; want schema %q database %v, %v", c.q, c.def, d, ok, c.schema, c.database, c.ok)
		}
	}
}

func TestParseDML(t *testing.T) {
	cases := []struct {
		q, def, schema string
		ok             bool
	}{
		{"INSERT INTO t VALUES (1)", "shop", "shop", true},
		{"insert ignore into other.t values (1)", "shop", "other", true},
		{"REPLACE t VALUES (1)", "s", "s", true},
		{"UPDATE LOW_PRIORITY `x`.`t` SET a = 1", "", "x", true},
		{"DELETE QUICK FROM t", "s", "s", true},
		{"LOAD DATA INFILE 'f' INTO TABLE t", "s", "", true},
		{"SELECT 1", "", "", false},
		{"CREATE TABLE t (a INT)", "s", "", false},
	}
	for _, c := range cases {
		s, ok := parseDML(c.q, c.def)
		if ok != c.ok || s != c.schema {
			t.Errorf("parseDML(%q, %q) = %q, %v; want %q, %v", c.q, c.def, s, ok, c.schema, c.ok)
		}
	}
}

func TestPadFraction(t *testing.T) {
	for _, c := range []struct {
		in   string
		fsp  int
		want string
	}{
		{"12:00:00", 0, "12:00:00"}, {"12:00:00", 3, "12:00:00.000"}, {"-838:59:59.5", 2, "-838:59:59.50"},
		{"2024-01-01 00:00:00.123456", 6, "2024-01-01 00:00:00.123456"}, {"00:00:01.1234567", 6, "00:00:01.123456"},
	} {
		if got := padFraction(c.in, c.fsp); got != c.want {
			t.Errorf("padFraction(%q, %d) = %q, want %q", c.in, c.fsp, got, c.want)
		}
	}
}

func TestMysqlUpTo(t *testing.T) {
	for in, want := range map[string]string{
		"3E11FA47-71CA-11E1-9E33-C80AA9429562:42":   "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-42",
		"3E11FA47-71CA-11E1-9E33-C80AA9429562:1-42": "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-42",
		"a:1": "a:1",
		"3E11FA47-71CA-11E1-9E33-C80AA9429562:5, b:7": "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,b:1-7",
		"3E11FA47-71CA-11E1-9E33-C80AA9429562:tag:5":  "3E11FA47-71CA-11E1-9E33-C80AA9429562:tag:5",
		"": "",
	} {
		if got := mysqlUpTo(in); got != want {
			t.Errorf("mysqlUpTo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewTailer(t *testing.T) {
	for _, c := range []struct {
		o    TailerOptions
		want string
	}{
		{TailerOptions{DSN: "not a dsn", ServerID: 1, Node: "a"}, "mysql dsn"},
		{TailerOptions{DSN: "u:p@pipe(x)/", ServerID: 1, Node: "a"}, "protocol"},
		{TailerOptions{DSN: "u:p@tcp(127.0.0.1:3306)/", Node: "a"}, "server_id"},
		{TailerOptions{DSN: "u:p@tcp(127.0.0.1:3306)/", ServerID: 1}, "node name"},
	} {
		if _, err := NewTailer(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewTailer(%+v) = %v, want an error about %s", c.o, err, c.want)
		}
	}
	if _, err := NewTailer(TailerOptions{DSN: "u:p@unix(/run/mysqld/mysqld.sock)/", ServerID: 1, Node: "a"}); err != nil {
		t.Errorf("NewTailer with a unix socket: %v", err)
	}
}

// BenchmarkDecode measures the conversion of row events to Rows (go-mysql
// has already parsed them), and go-mysql's parse of the table map and row
// event plus the conversion, in rows/s, for the wide table of every type
// (36 columns) and a narrow one (4 columns).
func BenchmarkDecode(b *testing.B) {
	c := captureEvents(b)
	for _, table := range []string{"shop.types", "shop.small"} {
		evs := c.parsed[table]
		count := func(evs []*replication.RowsEvent) int {
			n := 0
			for _, e := range evs {
				n += len(e.Rows)
				if opOf(e) == Update {
					n -= len(e.Rows) / 2
				}
			}
			return n
		}
		nrows := count(evs)
		b.Run("convert/"+table, func(b *testing.B) {
			d := newDecoder(nil)
			b.ReportAllocs()
			for b.Loop() {
				for _, e := range evs {
					if _, err := d.rows(nil, e, opOf(e)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(nrows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
		b.Run("parse+convert/"+table, func(b *testing.B) {
			p := newFileParser("mariadb")
			if _, err := p.Parse(c.format); err != nil {
				b.Fatal(err)
			}
			d := newDecoder(nil)
			var nrows int
			for _, raw := range c.rows[table] {
				ev, err := parseRowsEvent(c, table, raw)
				if err != nil {
					b.Fatal(err)
				}
				nrows += count([]*replication.RowsEvent{ev})
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, raw := range c.rows[table] {
					// Each transaction carries its table map; the parser
					// forgets it at the statement's end.
					if _, err := p.Parse(c.tableMap[table]); err != nil {
						b.Fatal(err)
					}
					be, err := p.Parse(raw)
					if err != nil {
						b.Fatal(err)
					}
					e := be.Event.(*replication.RowsEvent)
					if _, err := d.rows(nil, e, opOf(e)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(nrows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
