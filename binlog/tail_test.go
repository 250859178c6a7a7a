package binlog

// Integration tests of the Tailer: they start one real MariaDB server
// (internal/mysqltest) and tail its binlog over loopback.

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/tandemhost/tandem/internal/faultproxy"
	"github.com/tandemhost/tandem/internal/mysqltest"
)

// tailRun is a Tailer running in the background, its Txns in a channel.
type tailRun struct {
	txns   chan *Txn
	done   chan struct{} // closed when Run returned err
	err    error
	cancel context.CancelFunc
}

var nextServerID atomic.Uint32 // each concurrent tailer needs its own id

func startTail(t testing.TB, srv *mysqltest.Server, from string, databases []string) *tailRun {
	t.Helper()
	tl, err := NewTailer(TailerOptions{DSN: srv.DSN(""), ServerID: 9000 + nextServerID.Add(1), Node: "alpha", Databases: databases, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &tailRun{txns: make(chan *Txn, 1000), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(r.done)
		r.err = tl.Run(ctx, from, func(x *Txn) error {
			select {
			case r.txns <- x:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *tailRun) stop(t testing.TB) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run after cancel = %v, want nil", r.err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("Run did not return 20 s after its context ended")
	}
}

// failed waits for Run to fail with an error containing want.
func (r *tailRun) failed(t testing.TB, want string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run still running 20 s later, want it to fail with %q", want)
	}
	if r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Errorf("Run = %v, want an error containing %q", r.err, want)
	}
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
}

// next waits for the next Txn.
func (r *tailRun) next(t testing.TB) *Txn {
	t.Helper()
	select {
	case x := <-r.txns:
		return x
	case <-r.done:
		t.Fatalf("tailer stopped: %v", r.err)
	case <-time.After(15 * time.Second):
		t.Fatalf("no transaction tailed within 15 s")
	}
	return nil
}

// sentinel writes a row that must be the next Txn tailed, proving that
// nothing was emitted for what came before it.
func sentinel(t testing.TB, db *sql.DB, r *tailRun, what string) {
	t.Helper()
	if _, err := db.Exec("INSERT INTO shop.sentinel (what) VALUES (?)", what); err != nil {
		t.Fatal(err)
	}
	x := r.next(t)
	if len(x.Rows) != 1 || x.Rows[0].Table != "sentinel" || string(x.Rows[0].After[1].B) != what {
		t.Fatalf("after %s: tailed %s, want only the sentinel row %q", what, describe(x), what)
	}
}

// waitStreaming writes sentinel rows until the tailer, started from ""
// (the position when Run starts, unknown to the test), sends one; it must
// send nothing older.
func waitStreaming(t testing.TB, db *sql.DB, r *tailRun) (last string) {
	t.Helper()
	for i := 0; ; i++ {
		if _, err := db.Exec("INSERT INTO shop.sentinel (what) VALUES (?)", fmt.Sprint("now ", i)); err != nil {
			t.Fatal(err)
		}
		select {
		case x := <-r.txns:
			last = fmt.Sprint("now ", i)
			for { // the first and the ones written after it
				if len(x.Rows) != 1 || !strings.HasPrefix(string(x.Rows[0].After[1].B), "now ") {
					t.Fatalf("tailing from now sent %s, want only rows written after it started", describe(x))
				}
				if string(x.Rows[0].After[1].B) == last {
					return last
				}
				x = r.next(t)
			}
		case <-r.done:
			t.Fatalf("tailer stopped: %v", r.err)
		case <-time.After(100 * time.Millisecond):
		}
		if i > 200 {
			t.Fatal("the tailer sent nothing in 20 s")
		}
	}
}

func describe(x *Txn) string {
	var b strings.Builder
	fmt.Fprintf(&b, "txn %s seq %d", x.GTID, x.Seq)
	if x.DDL != nil {
		fmt.Fprintf(&b, " DDL %q", x.DDL.Statement)
	}
	for _, r := range x.Rows {
		fmt.Fprintf(&b, " [%s %s.%s %v -> %v]", r.Op, r.Schema, r.Table, r.Before, r.After)
	}
	return b.String()
}

func exec(t testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// valueEqual compares Values exactly (floats by bits, nil bytes as empty).
func valueEqual(a, b Value) bool {
	return a.Kind == b.Kind && a.I == b.I && a.U == b.U && math.Float64bits(a.F) == math.Float64bits(b.F) &&
		a.S == b.S && bytes.Equal(a.B, b.B)
}

func fmtValue(v Value) string {
	switch v.Kind {
	case Null:
		return "NULL"
	case Int:
		return fmt.Sprintf("int(%d)", v.I)
	case Uint:
		return fmt.Sprintf("uint(%d)", v.U)
	case Float, Double:
		return fmt.Sprintf("%s(%v)", v.Kind, v.F)
	case Text, Bytes:
		return fmt.Sprintf("%s(%q)", v.Kind, v.B)
	}
	return fmt.Sprintf("%s(%q)", v.Kind, v.S)
}

const typesTable = `CREATE TABLE shop.types (
	id INT PRIMARY KEY,
	ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
	mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
	d DECIMAL(10,4), d2 DECIMAL(30,10), dn DECIMAL(5,2),
	f FLOAT, db DOUBLE,
	dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL, tm TIME, tm2 TIME(2), yr YEAR,
	c CHAR(10), vc VARCHAR(20), vl VARCHAR(20) CHARACTER SET latin1, tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB,
	e ENUM('a','b','c d'), st SET('x','y','z'), j JSON, b1 BIT(1), b64 BIT(64), n INT,
	u VARCHAR(10) CHARACTER SET ucs2
) DEFAULT CHARSET=utf8mb4`

type typeCase struct {
	col, literal string
	want         Value
}

func I(v int64) Value          { return Value{Kind: Int, I: v} }
func U(v uint64) Value         { return Value{Kind: Uint, U: v} }
func S(k Kind, s string) Value { return Value{Kind: k, S: s} }
func B(k Kind, s string) Value { return Value{Kind: k, B: []byte(s)} }

var null = Value{Kind: Null}

// typeRows are rows of every type: the extremes, the other extremes, and
// NULLs. Inserted with time_zone '+05:00' to show TIMESTAMPs come in UTC.
var typeRows = [][]typeCase{
	{
		{"id", "1", I(1)},
		{"ti", "127", I(127)}, {"tiu", "255", U(255)}, {"si", "32767", I(32767)}, {"siu", "65535", U(65535)},
		{"mi", "8388607", I(8388607)}, {"miu", "16777215", U(16777215)}, {"i", "2147483647", I(2147483647)},
		{"iu", "4294967295", U(4294967295)}, {"bi", "9223372036854775807", I(math.MaxInt64)},
		{"biu", "18446744073709551615", U(math.MaxUint64)},
		{"d", "123456.7890", S(Decimal, "123456.7890")}, {"d2", "12345678901234567890.0123456789", S(Decimal, "12345678901234567890.0123456789")},
		{"dn", "-999.99", S(Decimal, "-999.99")},
		{"f", "0.1", Value{Kind: Float, F: float64(float32(0.1))}}, {"db", "1.7976931348623157e308", Value{Kind: Double, F: math.MaxFloat64}},
		{"dt", "'2024-02-29'", S(Date, "2024-02-29")}, {"dtm", "'9999-12-31 23:59:59'", S(DateTime, "9999-12-31 23:59:59")},
		{"dtm6", "'2000-01-01 00:00:00.123456'", S(DateTime, "2000-01-01 00:00:00.123456")},
		{"ts", "'2038-01-19 08:14:07.999'", S(Timestamp, "2038-01-19 03:14:07.999")},
		{"tm", "'838:59:59'", S(Time, "838:59:59")}, {"tm2", "'-01:02:03.25'", S(Time, "-01:02:03.25")}, {"yr", "2155", I(2155)},
		{"c", "'héllo'", B(Text, "héllo")}, {"vc", "'😀 emoji'", B(Text, "😀 emoji")}, {"vl", "'café'", B(Text, "caf\xe9")},
		{"tx", "'long text ü'", B(Text, "long text ü")}, {"bn", "'ab'", B(Bytes, "ab\x00\x00")}, {"vb", "x'00ff10'", B(Bytes, "\x00\xff\x10")},
		{"bl", "x'deadbeef00'", B(Bytes, "\xde\xad\xbe\xef\x00")},
		{"e", "'c d'", S(Enum, "c d")}, {"st", "'z,x'", S(Set, "x,z")}, {"j", `'{"a": [1, 2.5, "x"]}'`, B(Text, `{"a": [1, 2.5, "x"]}`)},
		{"b1", "b'1'", U(1)}, {"b64", "x'FFFFFFFFFFFFFFFF'", U(math.MaxUint64)}, {"n", "NULL", null},
		{"u", "'aé'", B(Text, "\x00a\x00\xe9")},
	},
	{
		{"id", "2", I(2)},
		{"ti", "-128", I(-128)}, {"tiu", "0", U(0)}, {"si", "-32768", I(-32768)}, {"siu", "0", U(0)},
		{"mi", "-8388608", I(-8388608)}, {"miu", "0", U(0)}, {"i", "-2147483648", I(math.MinInt32)},
		{"iu", "0", U(0)}, {"bi", "-9223372036854775808", I(math.MinInt64)}, {"biu", "0", U(0)},
		{"d", "-0.0001", S(Decimal, "-0.0001")}, {"d2", "0", S(Decimal, "0.0000000000")}, {"dn", "0.5", S(Decimal, "0.50")},
		{"f", "-0.5", Value{Kind: Float, F: -0.5}}, {"db", "-2.5e-300", Value{Kind: Double, F: -2.5e-300}},
		{"dt", "'1000-01-01'", S(Date, "1000-01-01")}, {"dtm", "'1000-01-01 00:00:00'", S(DateTime, "1000-01-01 00:00:00")},
		{"dtm6", "'1970-01-01 00:00:00.000001'", S(DateTime, "1970-01-01 00:00:00.000001")},
		{"ts", "'1970-01-01 05:00:01'", S(Timestamp, "1970-01-01 00:00:01.000")},
		{"tm", "'-838:59:59'", S(Time, "-838:59:59")}, {"tm2", "'00:00:00'", S(Time, "00:00:00.00")}, {"yr", "1901", I(1901)},
		{"c", "''", B(Text, "")}, {"vc", "''", B(Text, "")}, {"vl", "''", B(Text, "")},
		{"tx", "''", B(Text, "")}, {"bn", "x'00000000'", B(Bytes, "\x00\x00\x00\x00")}, {"vb", "''", B(Bytes, "")},
		{"bl", "''", B(Bytes, "")},
		{"e", "'a'", S(Enum, "a")}, {"st", "''", S(Set, "")}, {"j", "'[]'", B(Text, "[]")},
		{"b1", "b'0'", U(0)}, {"b64", "b'1'", U(1)}, {"n", "7", I(7)},
		{"u", "''", B(Text, "")},
	},
	{
		{"id", "3", I(3)},
		{"ti", "NULL", null}, {"tiu", "NULL", null}, {"si", "NULL", null}, {"siu", "NULL", null},
		{"mi", "NULL", null}, {"miu", "NULL", null}, {"i", "NULL", null}, {"iu", "NULL", null}, {"bi", "NULL", null}, {"biu", "NULL", null},
		{"d", "NULL", null}, {"d2", "NULL", null}, {"dn", "NULL", null}, {"f", "NULL", null}, {"db", "NULL", null},
		{"dt", "NULL", null}, {"dtm", "NULL", null}, {"dtm6", "NULL", null}, {"ts", "NULL", null}, {"tm", "NULL", null}, {"tm2", "NULL", null}, {"yr", "NULL", null},
		{"c", "NULL", null}, {"vc", "NULL", null}, {"vl", "NULL", null}, {"tx", "NULL", null}, {"bn", "NULL", null}, {"vb", "NULL", null}, {"bl", "NULL", null},
		{"e", "NULL", null}, {"st", "NULL", null}, {"j", "NULL", null}, {"b1", "NULL", null}, {"b64", "NULL", null}, {"n", "NULL", null},
		{"u", "NULL", null},
	},
}

func insertTypeRows(t testing.TB, conn interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}) {
	t.Helper()
	exec(t, conn, "SET time_zone = '+05:00'")
	for _, row := range typeRows {
		var cols, lits []string
		for _, c := range row {
			cols = append(cols, c.col)
			lits = append(lits, c.literal)
		}
		exec(t, conn, "INSERT INTO shop.types ("+strings.Join(cols, ", ")+") VALUES ("+strings.Join(lits, ", ")+")")
	}
	exec(t, conn, "SET time_zone = '+00:00'")
}

func checkTypeRow(t *testing.T, r Row, want []typeCase) {
	t.Helper()
	if r.Op != Insert || r.Schema != "shop" || r.Table != "types" || r.Before != nil {
		t.Fatalf("row = %s %s.%s before %v, want an insert into shop.types", r.Op, r.Schema, r.Table, r.Before)
	}
	if len(r.Columns) != len(want) || len(r.After) != len(want) {
		t.Fatalf("row has %d columns and %d values, want %d", len(r.Columns), len(r.After), len(want))
	}
	for i, c := range want {
		if r.Columns[i].Name != c.col {
			t.Errorf("column %d is named %q, want %q", i, r.Columns[i].Name, c.col)
		}
		if !valueEqual(r.After[i], c.want) {
			t.Errorf("row %s column %s (%s) = %s, want %s (inserted as %s)", fmtValue(r.After[0]), c.col, r.Columns[i].Type, fmtValue(r.After[i]), fmtValue(c.want), c.literal)
		}
	}
}

func TestTailer(t *testing.T) {
	tt := t
	srv := mysqltest.Start(t, mysqltest.Options{ServerID: 11})
	db := srv.DB("")
	exec(t, db,
		"CREATE DATABASE shop", "CREATE DATABASE other", "CREATE DATABASE tandem",
		"CREATE TABLE shop.sentinel (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100))",
		"CREATE TABLE tandem.applied (origin VARCHAR(64) PRIMARY KEY, seq BIGINT UNSIGNED, gtid VARCHAR(100))",
		"CREATE TABLE other.t (id INT PRIMARY KEY)",
		typesTable,
	)
	tail := startTail(t, srv, "", []string{"shop"})
	waitStreaming(t, db, tail)

	t.Run("types", func(t *testing.T) {
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		insertTypeRows(t, conn)
		for i, want := range typeRows {
			x := tail.next(t)
			if len(x.Rows) != 1 {
				t.Fatalf("txn %d: %s, want one row", i, describe(x))
			}
			checkTypeRow(t, x.Rows[0], want)
			if i == 0 {
				if got := fmt.Sprint(x.Rows[0].Key); got != "[0]" {
					t.Errorf("key = %s, want [0] (id)", got)
				}
				wantTypes := map[string][2]string{
					"tiu": {"tinyint unsigned", ""}, "d": {"decimal(10,4)", ""}, "dtm6": {"datetime(6)", ""},
					"ts": {"timestamp(3)", ""}, "tm2": {"time(2)", ""}, "c": {"char(10)", "utf8mb4"},
					"vc": {"varchar(20)", "utf8mb4"}, "vl": {"varchar(20)", "latin1"}, "tx": {"text", "utf8mb4"},
					"bn": {"binary(4)", ""}, "vb": {"varbinary(10)", ""}, "bl": {"blob", ""}, "e": {"enum", ""},
					"b64": {"bit(64)", ""}, "j": {"longtext", "utf8mb4"}, "u": {"varchar(10)", "ucs2"},
				}
				for _, c := range x.Rows[0].Columns {
					if w, ok := wantTypes[c.Name]; ok && (c.Type != w[0] || c.Charset != w[1]) {
						t.Errorf("column %s: type %q charset %q, want %q %q", c.Name, c.Type, c.Charset, w[0], w[1])
					}
				}
			}
		}
		// Update and delete carry both images.
		exec(t, db, "UPDATE shop.types SET vc = 'changed', n = n + 1 WHERE id = 2")
		x := tail.next(t)
		if len(x.Rows) != 1 || x.Rows[0].Op != Update {
			t.Fatalf("update: %s", describe(x))
		}
		checkTypeRow(t, Row{Op: Insert, Schema: "shop", Table: "types", Columns: x.Rows[0].Columns, After: x.Rows[0].Before}, typeRows[1])
		after := append([]typeCase(nil), typeRows[1]...)
		for i := range after {
			switch after[i].col {
			case "vc":
				after[i].want = B(Text, "changed")
			case "n":
				after[i].want = I(8)
			}
		}
		checkTypeRow(t, Row{Op: Insert, Schema: "shop", Table: "types", Columns: x.Rows[0].Columns, After: x.Rows[0].After}, after)
		exec(t, db, "DELETE FROM shop.types WHERE id = 3")
		x = tail.next(t)
		if len(x.Rows) != 1 || x.Rows[0].Op != Delete || x.Rows[0].After != nil {
			t.Fatalf("delete: %s", describe(x))
		}
		checkTypeRow(t, Row{Op: Insert, Schema: "shop", Table: "types", Columns: x.Rows[0].Columns, After: x.Rows[0].Before}, typeRows[2])
	})

	t.Run("grouping", func(t *testing.T) {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		exec(t, tx,
			"CREATE TEMPORARY TABLE IF NOT EXISTS shop.scratch (x INT)", // not logged in ROW format
			"INSERT INTO shop.sentinel (what) VALUES ('g1'), ('g2')",
			"UPDATE shop.sentinel SET what = 'g3' WHERE what = 'g2'",
			"INSERT INTO other.t VALUES (1)", // not replicated: left out
			"DELETE FROM shop.sentinel WHERE what = 'g1'",
		)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		x := tail.next(t)
		var ops []string
		for _, r := range x.Rows {
			ops = append(ops, r.Op.String()+" "+r.Table)
		}
		if got, want := strings.Join(ops, ", "), "insert sentinel, insert sentinel, update sentinel, delete sentinel"; got != want {
			t.Errorf("one transaction tailed as %q, want %q", got, want)
		}
		if x.Origin != "alpha" || x.GTID == "" || x.Seq == 0 || time.Since(x.Time) > time.Minute || x.Time.Location() != time.UTC {
			t.Errorf("txn origin %q gtid %q seq %d time %v, want alpha, a GTID, its seq, a recent UTC time", x.Origin, x.GTID, x.Seq, x.Time)
		}
		if !strings.HasSuffix(x.GTID, fmt.Sprintf("-11-%d", x.Seq)) {
			t.Errorf("GTID %q does not end in -<server_id 11>-<seq %d>", x.GTID, x.Seq)
		}

		tx, err = db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		exec(t, tx, "INSERT INTO shop.sentinel (what) VALUES ('rolled back')")
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		exec(t, db, "INSERT INTO other.t VALUES (2)") // a transaction with nothing replicated
		sentinel(t, db, tail, "after rollback")
	})

	t.Run("marker", func(t *testing.T) {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		exec(t, tx,
			"INSERT INTO tandem.applied VALUES ('beta', 5, '0-2-5')",
			"INSERT INTO shop.sentinel (what) VALUES ('applied from beta')",
		)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		// The marker row last, after the data, drops the transaction too.
		tx, err = db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		exec(t, tx,
			"UPDATE shop.sentinel SET what = 'beta again' WHERE what = 'applied from beta'",
			"UPDATE tandem.applied SET seq = 6 WHERE origin = 'beta'",
		)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		sentinel(t, db, tail, "after marker")
	})

	t.Run("ddl", func(t *testing.T) {
		exec(t, srv.DB("shop"), "CREATE TABLE d1 (id INT PRIMARY KEY, v VARCHAR(10))")
		x := tail.next(t)
		if x.DDL == nil || x.DDL.Schema != "shop" || x.DDL.Statement != "CREATE TABLE d1 (id INT PRIMARY KEY, v VARCHAR(10))" || len(x.Rows) != 0 {
			t.Fatalf("CREATE TABLE tailed as %s, want its DDL", describe(x))
		}
		exec(t, db, "ALTER TABLE shop.d1 ADD COLUMN w INT "+DDLMarker) // applied by tandem
		// MariaDB logs DROP TABLE rewritten, without the comment: the
		// applier's skip_replication session flag marks it.
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		exec(t, conn, "SET SESSION skip_replication = 1", DDLMarker+" DROP TABLE shop.d1", "INSERT INTO shop.sentinel (what) VALUES ('skipped')",
			"SET SESSION skip_replication = 0") // the pool reuses the session
		conn.Close()
		exec(t, db, "CREATE TABLE other.d2 (id INT PRIMARY KEY)") // not replicated
		exec(t, db, "GRANT SELECT ON shop.* TO 'tandem'@'%'")     // not DDL
		sentinel(t, db, tail, "after marked DDL")
		// CREATE TABLE ... SELECT is one transaction: the DDL and its rows.
		exec(t, db, "CREATE TABLE shop.ctas (id INT PRIMARY KEY, what VARCHAR(100)) SELECT 1 AS id, 'x' AS what UNION ALL SELECT 2, 'y'")
		x = tail.next(t)
		if x.DDL == nil || !strings.HasPrefix(x.DDL.Statement, "CREATE TABLE") || len(x.Rows) != 2 || x.Rows[1].Table != "ctas" || string(x.Rows[1].After[1].B) != "y" {
			t.Errorf("CREATE TABLE ... SELECT tailed as %s, want its DDL and 2 rows", describe(x))
		}
		for _, q := range []string{
			"CREATE TABLE shop.d3 (id INT PRIMARY KEY)",
			"RENAME TABLE shop.d3 TO shop.d4",
			"TRUNCATE TABLE shop.d4",
			"CREATE INDEX i ON shop.sentinel (what)",
			"DROP TABLE shop.d4",
		} {
			exec(t, db, q)
			x := tail.next(t)
			if x.DDL == nil || !strings.HasPrefix(x.DDL.Statement, strings.Fields(q)[0]) || x.DDL.Schema != "" {
				t.Errorf("%s tailed as %s", q, describe(x))
			}
		}
	})

	t.Run("alter", func(t *testing.T) {
		exec(t, db, "CREATE TABLE shop.evolve (id INT PRIMARY KEY, a VARCHAR(10))", "INSERT INTO shop.evolve VALUES (1, 'one')")
		tail.next(t) // CREATE
		x := tail.next(t)
		if len(x.Rows) != 1 || len(x.Rows[0].Columns) != 2 {
			t.Fatalf("insert before ALTER: %s", describe(x))
		}
		exec(t, db, "ALTER TABLE shop.evolve ADD COLUMN b INT NOT NULL DEFAULT 42 AFTER id, MODIFY a VARCHAR(30)")
		if x = tail.next(t); x.DDL == nil {
			t.Fatalf("ALTER tailed as %s", describe(x))
		}
		exec(t, db, "INSERT INTO shop.evolve VALUES (2, 7, 'two')", "UPDATE shop.evolve SET a = 'uno' WHERE id = 1")
		x = tail.next(t)
		r := x.Rows[0]
		var names []string
		for _, c := range r.Columns {
			names = append(names, c.Name+" "+c.Type)
		}
		if got := strings.Join(names, ", "); got != "id int, b int, a varchar(30)" {
			t.Errorf("columns after ALTER = %s", got)
		}
		if !valueEqual(r.After[1], I(7)) || !valueEqual(r.After[2], B(Text, "two")) {
			t.Errorf("row after ALTER = %v", r.After)
		}
		x = tail.next(t)
		r = x.Rows[0]
		if r.Op != Update || !valueEqual(r.Before[1], I(42)) || !valueEqual(r.Before[2], B(Text, "one")) || !valueEqual(r.After[2], B(Text, "uno")) {
			t.Errorf("update after ALTER = %s", describe(x))
		}
	})

	t.Run("resume", func(t *testing.T) {
		var gtids []string
		for i := 0; i < 5; i++ {
			exec(t, db, fmt.Sprintf("INSERT INTO shop.sentinel (what) VALUES ('r%d')", i))
			exec(t, db, "INSERT INTO other.t VALUES (100 + "+fmt.Sprint(i)+")")
			gtids = append(gtids, tail.next(t).GTID)
		}
		for _, from := range []int{3, 0} {
			r := startTail(t, srv, gtids[from], []string{"shop"})
			for _, want := range gtids[from+1:] {
				if got := r.next(t); got.GTID != want {
					t.Fatalf("resumed from %s: got %s, want GTID %s", gtids[from], describe(got), want)
				}
			}
			sentinel(t, db, r, fmt.Sprint("after resume ", from))
			r.stop(t)
			gtids = append(gtids, tail.next(t).GTID) // the main tailer sees the sentinel too
		}
	})

	t.Run("from now", func(t *testing.T) {
		before := goleak.IgnoreCurrent()
		r := startTail(t, srv, "", []string{"shop"})
		last := waitStreaming(t, db, r)
		r.stop(t)
		goleak.VerifyNone(t, before) // Run leaves no goroutine behind
		for {                        // the main tailer saw those sentinels too
			if x := tail.next(t); string(x.Rows[0].After[1].B) == last {
				break
			}
		}
	})

	t.Run("all schemas", func(t *testing.T) {
		r := startTail(t, srv, "", nil)
		var x *Txn
		for i := 0; x == nil; i++ { // its start is unknown: write until one arrives
			exec(t, db, fmt.Sprintf("INSERT INTO other.t VALUES (%d)", 1000+i))
			select {
			case x = <-r.txns:
			case <-time.After(100 * time.Millisecond):
			}
			if i > 200 {
				t.Fatal("tailing all schemas saw nothing in 20 s")
			}
		}
		if x.Rows[0].Schema != "other" {
			t.Fatalf("tailing all schemas: %s", describe(x))
		}
		exec(t, db, "CREATE TABLE tandem.more (id INT PRIMARY KEY)", "INSERT INTO tandem.more VALUES (1)") // never replicated
		exec(t, db, "INSERT INTO other.t VALUES (5000)")
		for {
			x = r.next(t)
			if v := x.Rows[0].After[0]; x.Rows[0].Schema == "other" && v.I == 5000 {
				break
			} else if x.Rows[0].Schema != "other" || x.DDL != nil {
				t.Fatalf("tailing all schemas: %s, want only other.t rows", describe(x))
			}
		}
		for _, q := range []string{"CREATE DATABASE shop2", "DROP DATABASE shop2"} {
			exec(t, db, q)
			if x := r.next(t); x.DDL == nil || x.DDL.Statement != q {
				t.Errorf("%s tailed as %s", q, describe(x))
			}
		}
		r.stop(t)
	})

	t.Run("unix socket", func(t *testing.T) {
		tl, err := NewTailer(TailerOptions{DSN: mysqltest.User + ":" + mysqltest.Password + "@unix(" + srv.Socket + ")/", ServerID: 9500, Node: "alpha", Databases: []string{"shop"}, Log: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &tailRun{txns: make(chan *Txn, 1000), done: make(chan struct{}), cancel: cancel}
		go func() {
			defer close(r.done)
			r.err = tl.Run(ctx, "", func(x *Txn) error { r.txns <- x; return nil })
		}()
		last := waitStreaming(t, db, r)
		r.stop(t)
		for { // the main tailer saw those sentinels too
			if x := tail.next(t); string(x.Rows[0].After[1].B) == last {
				break
			}
		}
	})

	t.Run("silent server", func(t *testing.T) {
		proxy, err := faultproxy.New(srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		tl, err := NewTailer(TailerOptions{DSN: mysqltest.User + ":" + mysqltest.Password + "@tcp(" + proxy.Addr() + ")/", ServerID: 9501, Node: "alpha",
			Databases: []string{"shop"}, Log: zap.NewNop(), Silence: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &tailRun{txns: make(chan *Txn, 1000), done: make(chan struct{}), cancel: cancel}
		go func() {
			defer close(r.done)
			r.err = tl.Run(ctx, "", func(x *Txn) error { r.txns <- x; return nil })
		}()
		defer r.stop(t)
		last := waitStreaming(t, db, r)
		proxy.Blackhole(true) // nothing more arrives, and the connection stays open
		r.failed(t, "no event or heartbeat")
		for { // the main tailer saw the sentinels too
			if x := tail.next(t); string(x.Rows[0].After[1].B) == last {
				break
			}
		}
	})

	t.Run("unknown position", func(t *testing.T) {
		r := startTail(t, srv, "0-11-999999", []string{"shop"})
		r.failed(t, "tandem db seed")
	})

	t.Run("server crash", func(t *testing.T) {
		exec(t, db, "INSERT INTO shop.sentinel (what) VALUES ('before crash')")
		last := tail.next(t).GTID
		srv.Kill()
		tail.failed(t, "binlog stream")
		srv.Restart()
		tail = startTail(tt, srv, last, []string{"shop"}) // lives on after this subtest
		sentinel(t, db, tail, "after crash")
	})

	t.Run("statement format", func(t *testing.T) {
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		exec(t, conn, "SET SESSION binlog_format = 'STATEMENT'", "INSERT INTO shop.sentinel (what) VALUES ('as a statement')", "SET SESSION binlog_format = 'ROW'")
		tail.failed(t, "binlog_format = ROW")
	})
}
