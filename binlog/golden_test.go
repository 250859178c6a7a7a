package binlog

// Golden tests: binlog files captured from a real MariaDB (regenerate with
// go test ./binlog/ -run TestGolden -update, which starts one) are parsed
// offline with go-mysql's BinlogParser and the assembler, and the Txns
// compared with the JSON next to them.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/tandemhost/tandem/internal/mysqltest"
)

var update = flag.Bool("update", false, "regenerate testdata/ from a real MariaDB server")

const goldenBinlog = "testdata/mariadb-10.11.binlog"

// newFileParser returns a parser with the options the Tailer uses, which
// decodes every row event.
func newFileParser(flavor string) *replication.BinlogParser {
	return newParser(flavor, nil)
}

// parseBinlogFile turns a binlog file into Txns as the Tailer would.
func parseBinlogFile(t testing.TB, name string) []*Txn {
	t.Helper()
	a := newAssembler("alpha", "mariadb", nil, newDecoder(nil), zap.NewNop())
	var out []*Txn
	err := newParser("mariadb", a).ParseFile(name, 0, func(ev *replication.BinlogEvent) error {
		txns, err := a.event(ev)
		out = append(out, txns...)
		return err
	})
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	if a.open {
		t.Fatalf("%s ends inside transaction %s", name, a.gtid)
	}
	return out
}

// goldenTxn is a Txn in a form that reads well in JSON.
type goldenTxn struct {
	Origin, GTID string
	Seq          uint64
	Time         string
	DDL          *DDL        `json:",omitempty"`
	Rows         []goldenRow `json:",omitempty"`
}

type goldenRow struct {
	Op, Table     string
	Columns       []string
	Key           []int
	Before, After []string `json:",omitempty"`
}

func golden(txns []*Txn) []goldenTxn {
	var out []goldenTxn
	for _, x := range txns {
		g := goldenTxn{Origin: x.Origin, GTID: x.GTID, Seq: x.Seq, Time: x.Time.Format(time.RFC3339), DDL: x.DDL}
		for _, r := range x.Rows {
			gr := goldenRow{Op: r.Op.String(), Table: r.Schema + "." + r.Table, Key: r.Key}
			for _, c := range r.Columns {
				gr.Columns = append(gr.Columns, strings.TrimSpace(c.Name+" "+c.Type+" "+c.Charset))
			}
			for _, v := range r.Before {
				gr.Before = append(gr.Before, fmtValue(v))
			}
			for _, v := range r.After {
				gr.After = append(gr.After, fmtValue(v))
			}
			g.Rows = append(g.Rows, gr)
		}
		out = append(out, g)
	}
	return out
}

// captureGolden writes goldenBinlog from a fresh server: rows of every
// type, updates and deletes, a multi-statement transaction, a marker
// transaction, DDL with and without the marker.
func captureGolden(t *testing.T) {
	srv := mysqltest.Start(t, mysqltest.Options{ServerID: 21})
	db := srv.DB("")
	exec(t, db,
		"CREATE DATABASE shop", "CREATE DATABASE tandem",
		"CREATE TABLE tandem.applied (origin VARCHAR(64) PRIMARY KEY, seq BIGINT UNSIGNED, gtid VARCHAR(100))",
		typesTable,
	)
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	insertTypeRows(t, conn)
	exec(t, conn,
		"UPDATE shop.types SET vc = 'changed', n = n + 1 WHERE id = 2",
		"DELETE FROM shop.types WHERE id = 3",
		"CREATE TABLE shop.small (id INT PRIMARY KEY, v VARCHAR(10))",
		"BEGIN", "INSERT INTO shop.small VALUES (1, 'a'), (2, 'b')", "UPDATE shop.small SET v = 'c' WHERE id = 2", "COMMIT",
		"BEGIN", "INSERT INTO tandem.applied VALUES ('beta', 7, '0-22-7')", "INSERT INTO shop.small VALUES (3, 'from beta')", "COMMIT",
		"ALTER TABLE shop.small ADD COLUMN w INT "+DDLMarker,
		"ALTER TABLE shop.small ADD COLUMN x INT DEFAULT 5 FIRST",
		"INSERT INTO shop.small (id, v) VALUES (4, 'd')",
		"FLUSH BINARY LOGS",
	)
	raw, err := os.ReadFile(filepath.Join(srv.Dir, "data", "binlog.000001"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenBinlog, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGolden(t *testing.T) {
	if *update {
		captureGolden(t)
	}
	txns := parseBinlogFile(t, goldenBinlog)
	got, err := json.MarshalIndent(golden(txns), "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	want := goldenBinlog + ".json"
	if *update {
		if err := os.WriteFile(want, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantBytes, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run with -update to capture)", err)
	}
	if !bytes.Equal(got, wantBytes) {
		t.Errorf("Txns parsed from %s differ from %s:\n%s", goldenBinlog, want, lineDiff(string(wantBytes), string(got)))
	}
	// What the golden file must show, so a regenerated one cannot drift
	// unnoticed: the marker transaction and the marked DDL are absent.
	for _, x := range txns {
		for _, r := range x.Rows {
			if r.Schema == MarkerSchema || (r.Table == "small" && len(r.After) > 0 && string(r.After[1].B) == "from beta") {
				t.Errorf("marker transaction %s emitted", x.GTID)
			}
		}
		if x.DDL != nil && strings.Contains(x.DDL.Statement, DDLMarker) {
			t.Errorf("marked DDL %s emitted", x.GTID)
		}
	}
}

// lineDiff shows the first differing lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(w), len(g)) && n < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
			n++
		}
	}
	return b.String()
}

// TestParserSkipsDroppedRows: the parser the Tailer uses leaves the rows of
// a transaction the assembler drops (the marker's, and with a databases
// list those of other schemas) undecoded, and the Txns are the same as with
// every row decoded.
func TestParserSkipsDroppedRows(t *testing.T) {
	cases := []struct {
		databases []string
		undecoded []string // tables of the row events left undecoded, in order
	}{
		{nil, []string{"tandem.applied", "shop.small"}},
		{[]string{"shop"}, []string{"tandem.applied", "shop.small"}},
		{[]string{"elsewhere"}, nil}, // filled below: every row event
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.databases), func(t *testing.T) {
			parse := func(skip bool) (txns []*Txn, rowEvents, undecoded []string) {
				a := newAssembler("alpha", "mariadb", c.databases, newDecoder(nil), zap.NewNop())
				p := newParser("mariadb", nil)
				if skip {
					p = newParser("mariadb", a)
				}
				err := p.ParseFile(goldenBinlog, 0, func(ev *replication.BinlogEvent) error {
					if e, ok := ev.Event.(*replication.RowsEvent); ok {
						name := string(e.Table.Schema) + "." + string(e.Table.Table)
						rowEvents = append(rowEvents, name)
						if e.Rows == nil {
							undecoded = append(undecoded, name)
						}
					}
					out, err := a.event(ev)
					txns = append(txns, out...)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(a.undecoded) != 0 {
					t.Errorf("%d undecoded row events never reached the assembler", len(a.undecoded))
				}
				return txns, rowEvents, undecoded
			}
			want, all, none := parse(false)
			if len(none) != 0 {
				t.Fatalf("without skipping, %v left undecoded", none)
			}
			got, _, undecoded := parse(true)
			if c.undecoded == nil {
				c.undecoded = all
			}
			if !slices.Equal(undecoded, c.undecoded) {
				t.Errorf("undecoded row events %v, want %v", undecoded, c.undecoded)
			}
			if !reflect.DeepEqual(golden(got), golden(want)) {
				t.Errorf("Txns with skipping differ from those with every row decoded:\n%v\n%v", golden(got), golden(want))
			}
		})
	}
}

// TestFeedSkipsDroppedEvents: fed raw events as the Tailer's syncer reads
// them, the assembler parses neither the table maps nor the row events of a
// group it drops once it knows (here: after the marker row), and makes the
// same Txns as from fully parsed events.
func TestFeedSkipsDroppedEvents(t *testing.T) {
	want := parseBinlogFile(t, goldenBinlog)
	a := newAssembler("alpha", "mariadb", nil, newDecoder(nil), zap.NewNop())
	p := newParser("mariadb", a)
	rawParser := replication.NewBinlogParser()
	rawParser.SetRawMode(true)
	rawParser.SetVerifyChecksum(true)
	var got []*Txn
	unparsed := 0
	err := rawParser.ParseFile(goldenBinlog, 0, func(raw *replication.BinlogEvent) error {
		if a.open && a.drop && droppableEvent(raw.Header.EventType) {
			unparsed++
		}
		txns, err := a.feed(p, raw)
		got = append(got, txns...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if unparsed == 0 {
		t.Error("no event of the marker transaction went unparsed")
	}
	if !reflect.DeepEqual(golden(got), golden(want)) {
		t.Errorf("Txns from raw events differ from those of the parsed file:\n%v\n%v", golden(got), golden(want))
	}
}

// TestAssemblerRefusesUndecodedRows: a row event the parser left undecoded
// that the assembler would read stops it, rather than losing its rows.
func TestAssemblerRefusesUndecodedRows(t *testing.T) {
	a := newAssembler("alpha", "mariadb", nil, newDecoder(nil), zap.NewNop())
	var err error
	perr := newParser("mariadb", nil).ParseFile(goldenBinlog, 0, func(ev *replication.BinlogEvent) error {
		if e, ok := ev.Event.(*replication.RowsEvent); ok && !a.ignores(string(e.Table.Schema), string(e.Table.Table)) {
			a.undecoded = append(a.undecoded, e) // as if the parser had skipped it
			_, err = a.event(ev)
			return errors.New("stop")
		}
		_, err := a.event(ev)
		return err
	})
	if perr == nil {
		t.Fatal("no row event in the golden binlog")
	}
	if err == nil || !strings.Contains(err.Error(), "was not decoded") {
		t.Errorf("undecoded row event the assembler reads: %v, want an error", err)
	}
}
