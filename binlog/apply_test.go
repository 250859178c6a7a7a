package binlog

// These tests start real MariaDB servers (internal/mysqltest) on loopback
// and apply hand-built Txns to them, checking the result with SQL.

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/internal/mysqltest"
)

// testTable describes a table for building rows.
type testTable struct {
	schema, name string
	cols         []Column
	key          []int
}

func (tb testTable) row(op Op, before, after []Value) Row {
	return Row{Op: op, Schema: tb.schema, Table: tb.name, Columns: tb.cols, Key: tb.key, Before: before, After: after}
}
func (tb testTable) ins(after []Value) Row         { return tb.row(Insert, nil, after) }
func (tb testTable) upd(before, after []Value) Row { return tb.row(Update, before, after) }
func (tb testTable) del(before []Value) Row        { return tb.row(Delete, before, nil) }

func testTxn(origin string, seq uint64, at time.Time, rows ...Row) *Txn {
	return &Txn{Origin: origin, GTID: fmt.Sprintf("0-9-%d", seq), Seq: seq, Time: at, Rows: rows}
}

func vI(i int64) Value  { return Value{Kind: Int, I: i} }
func vU(u uint64) Value { return Value{Kind: Uint, U: u} }
func vS(k Kind, s string) Value {
	return Value{Kind: k, S: s}
}
func vB(k Kind, b string) Value { return Value{Kind: k, B: []byte(b)} }

var vNull = Value{Kind: Null}

// testApplier starts an Applier on s as node, with a conflict log it
// returns.
func testApplier(t testing.TB, s *mysqltest.Server, node string, o ApplierOptions) (*Applier, *conflict.Log) {
	t.Helper()
	logs, err := conflict.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	o.DSN = s.DSN("")
	o.Node = node
	if o.Conflicts == nil {
		o.Conflicts = logs
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	a, err := NewApplier(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, o.Conflicts
}

func testConflicts(t testing.TB, l *conflict.Log) []conflict.Entry {
	t.Helper()
	es, err := l.List(conflict.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func testQueryInt(t testing.TB, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n.Int64
}

func testQueryString(t testing.TB, db *sql.DB, q string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRow(q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if !s.Valid {
		return "NULL"
	}
	return s.String
}

const everyDDL = `CREATE TABLE %s.every (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, bi BIGINT, ub BIGINT UNSIGNED,
  fl FLOAT, db DOUBLE, de DECIMAL(65,30),
  vc VARCHAR(50) CHARACTER SET utf8mb4, lt VARCHAR(50) CHARACTER SET latin1,
  tx TEXT CHARACTER SET utf8mb4, ch CHAR(5) CHARACTER SET ascii,
  bn VARBINARY(20), bl BLOB, bf BINARY(4),
  d DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(3), yr YEAR,
  en ENUM('a','b','c d'), st SET('x','y','z'), js JSON, bt BIT(10)
)`

var everyTable = testTable{schema: "shop", name: "every", key: []int{0}, cols: []Column{
	{Name: "id", Type: "int"},
	{Name: "ti", Type: "tinyint"}, {Name: "si", Type: "smallint unsigned"}, {Name: "mi", Type: "mediumint"},
	{Name: "bi", Type: "bigint"}, {Name: "ub", Type: "bigint unsigned"},
	{Name: "fl", Type: "float"}, {Name: "db", Type: "double"}, {Name: "de", Type: "decimal(65,30)"},
	{Name: "vc", Type: "varchar(50)", Charset: "utf8mb4"}, {Name: "lt", Type: "varchar(50)", Charset: "latin1"},
	{Name: "tx", Type: "text", Charset: "utf8mb4"}, {Name: "ch", Type: "char(5)", Charset: "ascii"},
	{Name: "bn", Type: "varbinary(20)"}, {Name: "bl", Type: "blob"}, {Name: "bf", Type: "binary(4)"},
	{Name: "d", Type: "date"}, {Name: "dt", Type: "datetime(6)"}, {Name: "ts", Type: "timestamp(6)"},
	{Name: "tm", Type: "time(3)"}, {Name: "yr", Type: "year"},
	{Name: "en", Type: "enum('a','b','c d')"}, {Name: "st", Type: "set('x','y','z')"},
	{Name: "js", Type: "json"}, {Name: "bt", Type: "bit(10)"},
}}

// everyRows are rows of every type, as SQL (run with time_zone '+05:00',
// so TIMESTAMP literals are 5 hours ahead of UTC) and as the Values the
// tailer makes of them.
var everyRows = []struct {
	sql  string
	vals []Value
}{
	{
		`(1, -128, 65535, -8388608, -9223372036854775808, 18446744073709551615,
		 1.1, 0.30000000000000004, -12345678901234567890123456789012345.123456789012345678901234567890,
		 'héllo 😀 ` + "`" + `''\\', X'E9E8', 'text ''q'' \\ "d"', 'abc',
		 X'00FF27', X'5C0027', X'61620000',
		 '2024-02-29', '9999-12-31 23:59:59.999999', '2020-01-01 05:00:00.123456', '-838:59:59.000', 2155,
		 'c d', 'x,z', '{"a": [1, 2.5, "é"]}', b'1010101010')`,
		[]Value{vI(1), vI(-128), vU(65535), vI(-8388608), vI(math.MinInt64), vU(math.MaxUint64),
			{Kind: Float, F: float64(float32(1.1))}, {Kind: Double, F: 0.30000000000000004},
			vS(Decimal, "-12345678901234567890123456789012345.123456789012345678901234567890"),
			vB(Text, "héllo 😀 `'\\"), vB(Text, "\xe9\xe8"), vB(Text, `text 'q' \ "d"`), vB(Text, "abc"),
			vB(Bytes, "\x00\xff'"), vB(Bytes, "\\\x00'"), vB(Bytes, "ab\x00\x00"),
			vS(Date, "2024-02-29"), vS(DateTime, "9999-12-31 23:59:59.999999"), vS(Timestamp, "2020-01-01 00:00:00.123456"),
			vS(Time, "-838:59:59.000"), vI(2155),
			vS(Enum, "c d"), vS(Set, "x,z"), vS(JSON, `{"a": [1, 2.5, "é"]}`), vU(682)},
	},
	{
		`(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
		[]Value{vI(2), vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull, vNull},
	},
	{
		`(3, 0, 0, 0, 0, 0, 3.4028234663852886e38, 1.7976931348623157e308, 0.000000000000000000000000000001,
		 '', '', '', '', '', '', X'00000000',
		 '0000-00-00', '0000-00-00 00:00:00.000000', '1970-01-01 05:00:01.000000', '00:00:00.000', 0,
		 'a', '', '[]', 0)`,
		[]Value{vI(3), vI(0), vU(0), vI(0), vI(0), vU(0),
			{Kind: Float, F: float64(float32(3.4028234663852886e38))}, {Kind: Double, F: 1.7976931348623157e308},
			vS(Decimal, "0.000000000000000000000000000001"),
			vB(Text, ""), vB(Text, ""), vB(Text, ""), vB(Text, ""),
			vB(Bytes, ""), vB(Bytes, ""), vB(Bytes, "\x00\x00\x00\x00"),
			vS(Date, "0000-00-00"), vS(DateTime, "0000-00-00 00:00:00.000000"), vS(Timestamp, "1970-01-01 00:00:01.000000"),
			vS(Time, "00:00:00.000"), vI(0),
			vS(Enum, "a"), vS(Set, ""), vS(JSON, "[]"), vU(0)},
	},
	{
		// Quotes, also across applyHexOf's 256-byte buffer.
		`(5, 1, 1, 1, 1, 1, 1, 1, 1,
		 'it''s', '''''', '` + strings.Repeat("x''", 200) + `', 'a''b',
		 'ab''c', '` + strings.Repeat("''", 255) + `', 'a''b''',
		 '2024-01-01', '2024-01-01 00:00:00', '2024-01-01 05:00:00', '00:00:01', 2024,
		 'b', 'y', '{"k": "it''s"}', 1)`,
		[]Value{vI(5), vI(1), vU(1), vI(1), vI(1), vU(1), {Kind: Float, F: 1}, {Kind: Double, F: 1}, vS(Decimal, "1"),
			vB(Text, "it's"), vB(Text, "''"), vB(Text, strings.Repeat("x'", 200)), vB(Text, "a'b"),
			vB(Bytes, "ab'c"), vB(Bytes, strings.Repeat("'", 255)), vB(Bytes, "a'b'"),
			vS(Date, "2024-01-01"), vS(DateTime, "2024-01-01 00:00:00"), vS(Timestamp, "2024-01-01 00:00:00"),
			vS(Time, "00:00:01"), vI(2024),
			vS(Enum, "b"), vS(Set, "y"), vS(JSON, `{"k": "it's"}`), vU(1)},
	},
}

// testSameTables fails the test when two tables of the same definition
// differ, naming the rows and columns that do.
func testSameTables(t testing.TB, db *sql.DB, a, b string, cols []Column) {
	t.Helper()
	na := testQueryInt(t, db, "SELECT COUNT(*) FROM "+a)
	nb := testQueryInt(t, db, "SELECT COUNT(*) FROM "+b)
	if na != nb {
		t.Errorf("%s has %d rows, %s has %d", a, na, b, nb)
	}
	var diff []string
	for _, c := range cols[1:] {
		rows, err := db.Query(fmt.Sprintf("SELECT x.id FROM %s x LEFT JOIN %s y ON x.id = y.id WHERE NOT (x.`%s` <=> y.`%s`) OR y.id IS NULL OR HEX(x.`%s`) <> HEX(y.`%s`)", a, b, c.Name, c.Name, c.Name, c.Name))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int
			rows.Scan(&id)
			diff = append(diff, fmt.Sprintf("id %d column %s", id, c.Name))
		}
		rows.Close()
	}
	if len(diff) > 0 {
		t.Errorf("%s and %s differ: %s", a, b, strings.Join(diff, "; "))
	}
	var sa, sb string
	var name string
	if err := db.QueryRow("CHECKSUM TABLE "+a).Scan(&name, &sa); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("CHECKSUM TABLE "+b).Scan(&name, &sb); err != nil {
		t.Fatal(err)
	}
	if sa != sb {
		t.Errorf("CHECKSUM TABLE %s = %s, %s = %s", a, sa, b, sb)
	}
}

func TestApply(t *testing.T) {
	s := mysqltest.Start(t, mysqltest.Options{ServerID: 1})
	s.Exec("CREATE DATABASE shop")
	db := s.DB("")
	ctx := context.Background()
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)

	t.Run("EveryKindRoundTrips", func(t *testing.T) {
		s.Exec("CREATE DATABASE src", fmt.Sprintf(everyDDL, "src"), fmt.Sprintf(everyDDL, "shop"))
		a, logs := testApplier(t, s, "beta", ApplierOptions{})
		// The source: plain SQL in a session whose time zone is not UTC.
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		srcExec := func(q string) {
			t.Helper()
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		srcExec("SET time_zone = '+05:00'")
		var sqls []string
		var txns []*Txn
		for i, r := range everyRows {
			sqls = append(sqls, r.sql)
			txns = append(txns, testTxn("alpha", uint64(i+1), t0, everyTable.ins(r.vals)))
		}
		srcExec("INSERT INTO src.every VALUES " + strings.Join(sqls, ","))
		if err := a.Apply(ctx, txns); err != nil {
			t.Fatal(err)
		}
		testSameTables(t, db, "src.every", "shop.every", everyTable.cols)

		// Updates and deletes find their rows by before images of every
		// type, including the key moving.
		srcExec("UPDATE src.every SET ti=0, si=0, mi=0, bi=0, ub=0, fl=3.4028234663852886e38, db=1.7976931348623157e308, de=0.000000000000000000000000000001, vc='', lt='', tx='', ch='', bn='', bl='', bf=X'00000000', d='0000-00-00', dt='0000-00-00 00:00:00', ts='1970-01-01 05:00:01', tm='00:00:00', yr=0, en='a', st='', js='[]', bt=0 WHERE id = 1")
		srcExec("UPDATE src.every SET id = 4 WHERE id = 3")
		srcExec("DELETE FROM src.every WHERE id = 2")
		srcExec("UPDATE src.every SET vc = 'its' WHERE id = 5") // a WHERE of quoted literals
		r5 := slices.Clone(everyRows[3].vals)
		r5[9] = vB(Text, "its")
		r1 := append([]Value{vI(1)}, everyRows[2].vals[1:]...)
		r4 := append([]Value{vI(4)}, everyRows[2].vals[1:]...)
		n := uint64(len(everyRows))
		txns = []*Txn{
			testTxn("alpha", n+1, t0, everyTable.upd(everyRows[0].vals, r1)),
			testTxn("alpha", n+2, t0, everyTable.upd(everyRows[2].vals, r4)),
			testTxn("alpha", n+3, t0, everyTable.del(everyRows[1].vals)),
			testTxn("alpha", n+4, t0, everyTable.upd(everyRows[3].vals, r5)),
		}
		if err := a.Apply(ctx, txns); err != nil {
			t.Fatal(err)
		}
		testSameTables(t, db, "src.every", "shop.every", everyTable.cols)
		if n := a.slowApplied.Load(); n != 0 {
			t.Errorf("%d transactions took the slow path; every before image should have matched", n)
		}
		if es := testConflicts(t, logs); len(es) != 0 {
			t.Errorf("conflicts logged: %+v", es)
		}
		// The same rows one transaction at a time take the checked path
		// (SELECT ... FOR UPDATE, compare): it too must see them equal.
		s.Exec("DELETE FROM shop.every", "DELETE FROM tandem.applied")
		b, logs := testApplier(t, s, "gamma", ApplierOptions{})
		for i, r := range everyRows {
			it := &applyItem{t: testTxn("delta", uint64(i+1), t0, everyTable.ins(r.vals))}
			if err := b.applySlow(ctx, it); err != nil {
				t.Fatal(err)
			}
		}
		for i, tx := range txns {
			tx.Origin, tx.Seq = "delta", uint64(10+i)
			if err := b.applySlow(ctx, &applyItem{t: tx}); err != nil {
				t.Fatal(err)
			}
		}
		testSameTables(t, db, "src.every", "shop.every", everyTable.cols)
		if es := testConflicts(t, logs); len(es) != 0 {
			t.Errorf("conflicts logged by the checked path: %+v", es)
		}
	})

	kv := testTable{schema: "shop", name: "kv", key: []int{0}, cols: []Column{{Name: "id", Type: "int"}, {Name: "v", Type: "varchar(20)", Charset: "utf8mb4"}}}
	kvRow := func(id int64, v string) []Value { return []Value{vI(id), vB(Text, v)} }

	t.Run("ExactlyOnce", func(t *testing.T) {
		s.Exec("CREATE TABLE shop.kv (id INT PRIMARY KEY, v VARCHAR(20))", "CREATE TABLE shop.hits (id INT PRIMARY KEY, n INT NOT NULL)", "INSERT INTO shop.hits VALUES (1, 0)")
		a, logs := testApplier(t, s, "beta", ApplierOptions{})
		hits := testTable{schema: "shop", name: "hits", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "n"}}}
		var txns []*Txn
		for i := uint64(1); i <= 20; i++ {
			txns = append(txns, testTxn("one", i*2, t0, // seqs with gaps, as a filtered stream has
				kv.ins(kvRow(int64(i), fmt.Sprint("v", i))),
				hits.upd([]Value{vI(1), vI(int64(i - 1))}, []Value{vI(1), vI(int64(i))})))
		}
		if seq, gtid, err := a.Applied(ctx, "one"); err != nil || seq != 0 || gtid != "" {
			t.Fatalf("Applied before anything = %d %q %v, want 0 \"\" nil", seq, gtid, err)
		}
		if err := a.Apply(ctx, txns[:12]); err != nil {
			t.Fatal(err)
		}
		// Again, overlapping, from a fresh applier (as after a restart),
		// then the same again on the running one.
		b, _ := testApplier(t, s, "beta", ApplierOptions{Conflicts: logs})
		if err := b.Apply(ctx, txns[5:]); err != nil {
			t.Fatal(err)
		}
		if err := b.Apply(ctx, txns); err != nil {
			t.Fatal(err)
		}
		if n := testQueryInt(t, db, "SELECT n FROM shop.hits WHERE id = 1"); n != 20 {
			t.Errorf("counter = %d, want 20 (each transaction once)", n)
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.kv"); n != 20 {
			t.Errorf("%d rows, want 20", n)
		}
		if es := testConflicts(t, logs); len(es) != 0 {
			t.Errorf("conflicts logged: %+v", es)
		}
		for _, x := range []*Applier{a, b} {
			seq, gtid, err := x.Applied(ctx, "one")
			if err != nil || seq != 40 || gtid != "0-9-40" {
				t.Errorf("Applied = %d %q %v, want 40 0-9-40", seq, gtid, err)
			}
		}
	})

	t.Run("PrunesMarkersBesideTheNextCall", func(t *testing.T) {
		s.Exec("CREATE TABLE shop.pr (id INT PRIMARY KEY, n INT NOT NULL)", "INSERT INTO shop.pr VALUES (1, 0)")
		pr := testTable{schema: "shop", name: "pr", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "n"}}}
		a, _ := testApplier(t, s, "beta", ApplierOptions{})
		var txns []*Txn
		for i := int64(1); i <= 3*applyPruneEvery; i++ {
			txns = append(txns, testTxn("prune", uint64(i), t0, pr.upd([]Value{vI(1), vI(i - 1)}, []Value{vI(1), vI(i)})))
		}
		// Each call leaves a prune running; the next one waits for it
		// and writes the rows above it meanwhile.
		for i := 0; i < len(txns); i += applyPruneEvery {
			if err := a.Apply(ctx, txns[i:i+applyPruneEvery]); err != nil {
				t.Fatal(err)
			}
		}
		seq, gtid, err := a.Applied(ctx, "prune") // waits for the last prune
		if want := uint64(len(txns)); err != nil || seq != want || gtid != fmt.Sprintf("0-9-%d", want) {
			t.Errorf("Applied = %d %q %v, want %d", seq, gtid, err, want)
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM tandem.applied WHERE origin = 'prune'"); n != 1 {
			t.Errorf("%d marker rows left after the prunes, want 1 (the anchor)", n)
		}
		if n := testQueryInt(t, db, "SELECT n FROM shop.pr WHERE id = 1"); n != int64(len(txns)) {
			t.Errorf("counter = %d, want %d", n, len(txns))
		}
		// A fresh applier (as after a restart) resumes at the anchor.
		b, _ := testApplier(t, s, "beta", ApplierOptions{})
		if seq, _, err := b.Applied(ctx, "prune"); err != nil || seq != uint64(len(txns)) {
			t.Errorf("Applied after a restart = %d %v, want %d", seq, err, len(txns))
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	t.Run("MarkerFirstAndSkipReplication", func(t *testing.T) {
		s.Exec("FLUSH BINARY LOGS", "CREATE TABLE shop.mark (id INT PRIMARY KEY)")
		a, _ := testApplier(t, s, "beta", ApplierOptions{})
		mark := testTable{schema: "shop", name: "mark", key: []int{0}, cols: []Column{{Name: "id"}}}
		var txns []*Txn
		for i := int64(1); i <= 10; i++ {
			txns = append(txns, testTxn("two", uint64(i), t0, mark.ins([]Value{vI(i)})))
		}
		if err := a.Apply(ctx, txns[:1]); err != nil { // one alone
			t.Fatal(err)
		}
		if err := a.Apply(ctx, txns[1:]); err != nil { // a batch
			t.Fatal(err)
		}
		var file string
		var pos int64
		var x1, x2, x3 sql.NullString
		if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &x1, &x2); err != nil {
			if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &x1, &x2, &x3); err != nil {
				t.Fatal(err)
			}
		}
		// Each transaction that writes shop.mark maps tandem.applied
		// first.
		rows, err := db.Query("SHOW BINLOG EVENTS IN '" + file + "'")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		cells := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range cells {
			ptrs[i] = &cells[i]
		}
		var maps []string
		txnsSeen, firstIsMarker := 0, 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			typ, info := cells[2].String, cells[5].String
			switch {
			case typ == "Table_map":
				maps = append(maps, info)
			case typ == "Xid":
				if len(maps) > 0 && strings.Contains(strings.Join(maps, " "), "shop.mark") {
					txnsSeen++
					if strings.Contains(maps[0], "tandem.applied") {
						firstIsMarker++
					}
				}
				maps = nil
			}
		}
		rows.Close()
		if txnsSeen == 0 || firstIsMarker != txnsSeen {
			t.Errorf("%d of %d applied transactions write the marker row first", firstIsMarker, txnsSeen)
		}
		// skip_replication is on: mariadb-binlog shows the flag.
		bin, err := osexec.LookPath("mariadb-binlog")
		if err != nil {
			t.Skip("mariadb-binlog not installed")
		}
		out, err := osexec.Command(bin, filepath.Join(s.Dir, "data", file)).CombinedOutput()
		if err != nil {
			t.Fatalf("mariadb-binlog: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "skip_replication=1") {
			t.Errorf("the binlog has no transaction flagged skip_replication")
		}
	})

	t.Run("OutOfOrderCommits", func(t *testing.T) {
		// As after a crash of parallel workers: 1-3 and 5-6 are committed,
		// 4 is not. The checkpoint is 3; sent again, 4, 7 and 8 are
		// applied and 5-6 skipped.
		s.Exec("CREATE TABLE shop.ooo (id INT PRIMARY KEY)", "CREATE TABLE shop.ctr2 (id INT PRIMARY KEY, n INT)", "INSERT INTO shop.ctr2 VALUES (1, 0)")
		ooo := testTable{schema: "shop", name: "ooo", key: []int{0}, cols: []Column{{Name: "id"}}}
		ctr := testTable{schema: "shop", name: "ctr2", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "n"}}}
		var txns []*Txn
		for i := int64(1); i <= 8; i++ {
			txns = append(txns, testTxn("nine", uint64(i*10), t0, ooo.ins([]Value{vI(i)})))
		}
		// Transactions 5 and 6 also bump a counter: applying them twice
		// would be a conflict (and a wrong count).
		txns[4].Rows = append(txns[4].Rows, ctr.upd([]Value{vI(1), vI(0)}, []Value{vI(1), vI(1)}))
		txns[5].Rows = append(txns[5].Rows, ctr.upd([]Value{vI(1), vI(1)}, []Value{vI(1), vI(2)}))
		a, logs := testApplier(t, s, "beta", ApplierOptions{})
		prev := uint64(0)
		for i, tx := range txns[:6] {
			if i != 3 {
				if err := a.applySlow(ctx, &applyItem{t: tx, prev: prev}); err != nil {
					t.Fatal(err)
				}
			}
			prev = tx.Seq
		}
		b, _ := testApplier(t, s, "beta", ApplierOptions{Conflicts: logs})
		if seq, gtid, err := b.Applied(ctx, "nine"); err != nil || seq != 30 || gtid != "0-9-30" {
			t.Errorf("Applied = %d %q %v, want 30 0-9-30", seq, gtid, err)
		}
		if err := b.Apply(ctx, txns[3:]); err != nil {
			t.Fatal(err)
		}
		if got := testQueryString(t, db, "SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.ooo"); got != "1,2,3,4,5,6,7,8" {
			t.Errorf("shop.ooo = %s, want 1..8", got)
		}
		if n := testQueryInt(t, db, "SELECT n FROM shop.ctr2"); n != 2 {
			t.Errorf("counter = %d, want 2", n)
		}
		if es := testConflicts(t, logs); len(es) != 0 {
			t.Errorf("conflicts logged: %+v", es[0].Row)
		}
		if seq, _, _ := b.Applied(ctx, "nine"); seq != 80 {
			t.Errorf("Applied = %d, want 80", seq)
		}
	})

	t.Run("MergedInsertsWithADuplicate", func(t *testing.T) {
		// Consecutive inserts go as one multi-row INSERT; one clashing
		// key sends the batch through the checked path, where only that
		// row is a conflict.
		s.Exec("CREATE TABLE shop.dup (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO shop.dup VALUES (3, 'local')")
		a, logs := testApplier(t, s, "beta", ApplierOptions{Workers: 1})
		dup := testTable{schema: "shop", name: "dup", key: []int{0}, cols: kv.cols}
		var txns []*Txn
		for i := int64(1); i <= 5; i++ {
			txns = append(txns, testTxn("eight", uint64(i), t0.Add(-time.Hour), dup.ins(kvRow(i, "remote"))))
		}
		if err := a.Apply(ctx, txns); err != nil {
			t.Fatal(err)
		}
		if got := testQueryString(t, db, "SELECT GROUP_CONCAT(CONCAT(id, v) ORDER BY id) FROM shop.dup"); got != "1remote,2remote,3remote,4remote,5remote" {
			t.Errorf("shop.dup = %s", got)
		}
		es := testConflicts(t, logs)
		if len(es) != 1 || string(es[0].Row.Key) != `{"id":3}` || es[0].Winner != "eight" {
			t.Errorf("conflicts = %+v, want one on id 3 won by the incoming insert (the local row's time is unknown)", es)
		}
	})

	// Updates of one table merge into one statement whose WHERE matches
	// each row's whole before image as one row IN list (applyTupleMatch).
	// A target row changed here in a column the update leaves alone must
	// still make the batch take the checked path, where that row is a
	// conflict: whether the server checks the counts (MariaDB's compound
	// statement) or the client does (MySQL).
	for _, clientCounts := range []bool{false, true} {
		t.Run(fmt.Sprintf("MergedUpdatesSeeOneChangedRow/clientCounts=%v", clientCounts), func(t *testing.T) {
			tbl := "mu"
			if clientCounts {
				tbl = "mu_client"
			}
			s.Exec("CREATE TABLE shop."+tbl+" (id INT PRIMARY KEY, k INT NOT NULL, v VARCHAR(40) NOT NULL)",
				"INSERT INTO shop."+tbl+" VALUES (1, 1, 'one'), (2, 2, 'two'), (3, 3, 'three')")
			mu := testTable{schema: "shop", name: tbl, key: []int{0}, cols: []Column{{Name: "id"}, {Name: "k"}, {Name: "v", Charset: "utf8mb4"}}}
			row := func(id, k int64, v string) []Value { return []Value{vI(id), vI(k), vB(Text, v)} }
			var txns []*Txn
			for i, v := range []string{"one", "two", "three"} {
				id := int64(i + 1)
				txns = append(txns, testTxn(tbl, uint64(id), t0.Add(-time.Hour), mu.upd(row(id, id, v), row(id, id*10, v))))
			}
			var rows []*Row
			var keys [][2]string
			for _, tx := range txns {
				rows = append(rows, &tx.Rows[0])
				keys = append(keys, applyRowKeys(&tx.Rows[0]))
			}
			if groups := applyPlan(rows, keys); len(groups) != 1 {
				t.Fatalf("applyPlan made %d statements; want the 3 updates merged into 1", len(groups))
			}
			s.Exec("UPDATE shop." + tbl + " SET v = 'deux' WHERE id = 2")
			a, logs := testApplier(t, s, "beta", ApplierOptions{Workers: 1, BatchTxns: 100})
			a.clientCounts = clientCounts
			if err := a.Apply(ctx, txns); err != nil {
				t.Fatal(err)
			}
			if n := a.slowApplied.Load(); n == 0 {
				t.Error("no transaction took the checked path; the changed row went unseen")
			}
			if got := testQueryString(t, db, "SELECT GROUP_CONCAT(CONCAT(id, ':', k) ORDER BY id) FROM shop."+tbl); got != "1:10,2:20,3:30" {
				t.Errorf("shop."+tbl+" = %s, want every k updated (the incoming change is newer)", got)
			}
			es := testConflicts(t, logs)
			if len(es) != 1 || string(es[0].Row.Key) != `{"id":2}` {
				t.Errorf("conflicts = %+v, want one, on id 2", es)
			}
		})
	}

	t.Run("RegroupedBatch", func(t *testing.T) {
		// One batch of many small transactions, regrouped into multi-row
		// statements, must end as the same statements run one by one on
		// the source, without taking the checked path.
		s.Exec("CREATE DATABASE IF NOT EXISTS src",
			"CREATE TABLE src.rg (id INT PRIMARY KEY, a INT, v VARCHAR(20) CHARACTER SET latin1, t DATETIME(6) NOT NULL)",
			"CREATE TABLE shop.rg (id INT PRIMARY KEY, a INT, v VARCHAR(20) CHARACTER SET latin1, t DATETIME(6) NOT NULL)")
		rg := testTable{schema: "shop", name: "rg", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "a"}, {Name: "v", Charset: "latin1"}, {Name: "t"}}}
		cur := map[int64][]Value{}
		img := func(id, a int64, v string, ts string) []Value {
			return []Value{vI(id), vI(a), vB(Text, v), vS(DateTime, ts)}
		}
		var txns []*Txn
		var sqls []string
		add := func(q string, r Row) {
			sqls = append(sqls, q)
			txns = append(txns, testTxn("ten", uint64(len(txns)+1), t0, r))
		}
		ins := func(id, a int64, v string) {
			after := img(id, a, v, "2026-01-01 00:00:00.000001")
			add(fmt.Sprintf("INSERT INTO src.rg VALUES (%d, %d, X'%x', '2026-01-01 00:00:00.000001')", id, a, v), rg.ins(after))
			cur[id] = after
		}
		upd := func(id, a int64) {
			after := img(id, a, string(cur[id][2].B), cur[id][3].S)
			add(fmt.Sprintf("UPDATE src.rg SET a = %d WHERE id = %d", a, id), rg.upd(cur[id], after))
			cur[id] = after
		}
		del := func(id int64) {
			add(fmt.Sprintf("DELETE FROM src.rg WHERE id = %d", id), rg.del(cur[id]))
			delete(cur, id)
		}
		for id := int64(1); id <= 6; id++ {
			ins(id, id, "v\xe9")
		}
		for id := int64(1); id <= 6; id++ {
			upd(id, id*10)
		}
		del(2)
		del(4)
		ins(2, 99, "again")
		upd(1, 11)
		upd(3, 30) // changes nothing
		upd(2, 100)
		del(6)
		ins(7, 7, "new")
		for _, q := range sqls {
			s.Exec(q)
		}
		var rows []*Row
		for _, tx := range txns {
			rows = append(rows, &tx.Rows[0])
		}
		var keys [][2]string
		for _, r := range rows {
			keys = append(keys, applyRowKeys(r))
		}
		if groups := applyPlan(rows, keys); len(groups) >= len(rows)/2 {
			t.Errorf("applyPlan made %d statements of %d rows; want them merged", len(groups), len(rows))
		}
		a, logs := testApplier(t, s, "beta", ApplierOptions{Workers: 1, BatchTxns: 100})
		if err := a.Apply(ctx, txns); err != nil {
			t.Fatal(err)
		}
		testSameTables(t, db, "src.rg", "shop.rg", rg.cols)
		if n := a.slowApplied.Load(); n != 0 {
			t.Errorf("%d transactions took the checked path", n)
		}
		// Each id's update folds into its insert (6), as do the second
		// updates of 1 and 3 (2). The deletes of 2, 4 and 6 stay (a row
		// the batch inserted is not folded away); 2's reinsert and its
		// update fold into its delete (2).
		if n := a.folded.Load(); n != 10 {
			t.Errorf("%d row changes folded, want 10", n)
		}
		if es := testConflicts(t, logs); len(es) != 0 {
			t.Errorf("conflicts logged: %+v", es[0].Row)
		}
	})

	t.Run("FoldedBatchMeetsConflictsAsUnfolded", func(t *testing.T) {
		// Successive changes of a row fold into one in a batch; a row
		// changed here must still be found, and end as it does when the
		// same transactions come one at a time (nothing to fold).
		var tables [2]testTable
		for i, name := range []string{"fold_one", "fold_batch"} {
			s.Exec("CREATE TABLE shop."+name+" (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
				"INSERT INTO shop."+name+" VALUES (1, 'a'), (2, 'two'), (3, 'three')",
				"UPDATE shop."+name+" SET v = 'here' WHERE id = 2")
			tables[i] = testTable{schema: "shop", name: name, key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v", Charset: "utf8mb4"}}}
		}
		var conflicts [2]int
		for i, tb := range tables {
			r := func(id int64, v string) []Value { return []Value{vI(id), vB(Text, v)} }
			var txns []*Txn
			for _, row := range []Row{
				tb.upd(r(1, "a"), r(1, "b")),
				tb.upd(r(2, "two"), r(2, "x")), // 2 is "here" on this node
				tb.upd(r(2, "x"), r(2, "y")),
				tb.del(r(3, "three")),
				tb.ins(r(3, "new")),
				tb.upd(r(1, "b"), r(1, "c")),
			} {
				txns = append(txns, testTxn(tb.name, uint64(len(txns)+1), t0.Add(time.Duration(len(txns))*time.Second), row))
			}
			a, logs := testApplier(t, s, "beta", ApplierOptions{Workers: 1, BatchTxns: 1 + 99*i})
			if err := a.Apply(ctx, txns); err != nil {
				t.Fatal(err)
			}
			conflicts[i] = len(testConflicts(t, logs))
			if i == 1 && (a.folded.Load() == 0 || a.slowApplied.Load() == 0) {
				t.Errorf("folded %d changes, %d transactions took the checked path: want the batch folded, then refused", a.folded.Load(), a.slowApplied.Load())
			}
		}
		testSameTables(t, db, "shop.fold_one", "shop.fold_batch", tables[0].cols)
		if conflicts[0] == 0 || conflicts[0] != conflicts[1] {
			t.Errorf("%d conflicts one at a time, %d in a batch; want the same, not 0", conflicts[0], conflicts[1])
		}
	})

	t.Run("OneConflictAmongMany", func(t *testing.T) {
		// A batch that meets a conflict is retried in smaller ones: only
		// a few transactions around the conflict take the checked path.
		s.Exec("CREATE TABLE shop.many (id INT PRIMARY KEY, v INT NOT NULL)",
			"INSERT INTO shop.many SELECT seq, 0 FROM shop.seq_1_to_600",
			"UPDATE shop.many SET v = -1 WHERE id = 450")
		many := testTable{schema: "shop", name: "many", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v"}}}
		var txns []*Txn
		for id := int64(1); id <= 600; id++ {
			txns = append(txns, testTxn("many", uint64(id), t0, many.upd([]Value{vI(id), vI(0)}, []Value{vI(id), vI(1)})))
		}
		a, logs := testApplier(t, s, "beta", ApplierOptions{Workers: 1})
		if err := a.Apply(ctx, txns); err != nil {
			t.Fatal(err)
		}
		if n := a.slowApplied.Load(); n == 0 || n > applyMinBatch {
			t.Errorf("%d transactions took the checked path; want the conflict's batch narrowed to %d or fewer", n, applyMinBatch)
		}
		if es := testConflicts(t, logs); len(es) != 1 || string(es[0].Row.Key) != `{"id":450}` {
			t.Errorf("conflicts = %+v, want one, on id 450", es)
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.many WHERE v = 1 AND id <> 450"); n != 599 {
			t.Errorf("%d of the 599 rows without a conflict updated", n)
		}
	})

	t.Run("ForeignKeyParentIsNotFolded", func(t *testing.T) {
		// A delete and reinsert of a parent row cascades to its children
		// on the source, as it must here: folded into an update, it
		// would not.
		s.Exec("CREATE TABLE shop.fparent (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
			"CREATE TABLE shop.fchild (id INT PRIMARY KEY, pid INT NOT NULL, FOREIGN KEY (pid) REFERENCES shop.fparent (id) ON DELETE CASCADE)",
			"INSERT INTO shop.fparent VALUES (1, 'old')", "INSERT INTO shop.fchild VALUES (10, 1)")
		parent := testTable{schema: "shop", name: "fparent", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v", Charset: "utf8mb4"}}}
		r := func(v string) []Value { return []Value{vI(1), vB(Text, v)} }
		a, _ := testApplier(t, s, "beta", ApplierOptions{Workers: 1, BatchTxns: 100})
		if err := a.Apply(ctx, []*Txn{testTxn("fk", 1, t0, parent.del(r("old"))), testTxn("fk", 2, t0, parent.ins(r("new")))}); err != nil {
			t.Fatal(err)
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.fchild"); n != 0 {
			t.Errorf("shop.fchild has %d rows; want its row gone with the parent's delete, as on the source", n)
		}
		if v := testQueryString(t, db, "SELECT v FROM shop.fparent WHERE id = 1"); v != "new" {
			t.Errorf("parent row v = %q, want \"new\"", v)
		}
		if n := a.folded.Load(); n != 0 {
			t.Errorf("%d changes folded in a foreign key's parent table", n)
		}
	})

	t.Run("SkipBinlog", func(t *testing.T) {
		s.Exec("FLUSH BINARY LOGS", "CREATE TABLE shop.quiet (id INT PRIMARY KEY)")
		a, _ := testApplier(t, s, "beta", ApplierOptions{SkipBinlog: true})
		quiet := testTable{schema: "shop", name: "quiet", key: []int{0}, cols: []Column{{Name: "id"}}}
		if err := a.Apply(ctx, []*Txn{testTxn("seven", 1, t0, quiet.ins([]Value{vI(1)})), testTxn("seven", 2, t0, quiet.ins([]Value{vI(2)}))}); err != nil {
			t.Fatal(err)
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.quiet"); n != 2 {
			t.Errorf("%d rows, want 2", n)
		}
		if seq, _, _ := a.Applied(ctx, "seven"); seq != 2 {
			t.Errorf("Applied = %d, want 2", seq)
		}
		rows, err := db.Query("SHOW BINLOG EVENTS IN '" + testBinlogFile(t, db) + "'")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name, typ, info string
			var p, end int64
			var sid uint32
			if err := rows.Scan(&name, &p, &typ, &sid, &end, &info); err != nil {
				t.Fatal(err)
			}
			if typ == "Table_map" {
				t.Errorf("binlog has %s %q: applied rows were logged", typ, info)
			}
		}
	})

	t.Run("BadInputIsRefusedWhole", func(t *testing.T) {
		s.Exec("CREATE TABLE shop.bad (id INT PRIMARY KEY, v VARCHAR(20))")
		a, _ := testApplier(t, s, "beta", ApplierOptions{})
		bad := testTable{schema: "shop", name: "bad", key: []int{0}, cols: kv.cols}
		good := testTxn("three", 1, t0, bad.ins(kvRow(1, "ok")))
		cases := map[string]*Txn{
			"short image":      testTxn("three", 2, t0, bad.ins([]Value{vI(2)})),
			"bad decimal":      testTxn("three", 2, t0, bad.ins([]Value{vI(2), vS(Decimal, "1; DROP TABLE x")})),
			"bad date":         testTxn("three", 2, t0, bad.ins([]Value{vI(2), vS(Date, "2020-01-01' OR 1")})),
			"bad charset":      testTxn("three", 2, t0, Row{Op: Insert, Schema: "shop", Table: "bad", Columns: []Column{{Name: "id"}, {Name: "v", Charset: "x y"}}, Key: []int{0}, After: kvRow(2, "a")}),
			"key range":        testTxn("three", 2, t0, Row{Op: Insert, Schema: "shop", Table: "bad", Columns: kv.cols, Key: []int{5}, After: kvRow(2, "a")}),
			"nan":              testTxn("three", 2, t0, bad.ins([]Value{vI(2), {Kind: Double, F: math.NaN()}})),
			"update no before": testTxn("three", 2, t0, bad.row(Update, nil, kvRow(2, "a"))),
			"echo":             testTxn("beta", 2, t0, bad.ins(kvRow(2, "a"))),
			"zero seq":         testTxn("three", 0, t0, bad.ins(kvRow(2, "a"))),
		}
		for name, tx := range cases {
			err := a.Apply(ctx, []*Txn{good, tx})
			if err == nil {
				t.Errorf("%s: Apply succeeded, want an error", name)
			}
		}
		if err := a.Apply(ctx, []*Txn{testTxn("three", 5, t0), testTxn("three", 4, t0)}); err == nil {
			t.Errorf("out of order: Apply succeeded, want an error")
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.bad"); n != 0 {
			t.Errorf("%d rows applied from refused calls, want 0", n)
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM tandem.applied WHERE origin = 'three'"); n != 0 {
			t.Errorf("%d marker rows from refused calls, want 0", n)
		}
	})

	t.Run("DDL", func(t *testing.T) { testDDL(t, s) })

	t.Run("ForeignKeyAcrossWorkers", func(t *testing.T) {
		// A child row and its parent have different keys, so they may go
		// to different workers; if the child comes first, the server
		// refuses it and the rest is applied in order.
		s.Exec("CREATE TABLE shop.parent (id INT PRIMARY KEY)", "CREATE TABLE shop.filler (id INT PRIMARY KEY)",
			"CREATE TABLE shop.child (id INT PRIMARY KEY, pid INT NOT NULL, FOREIGN KEY (pid) REFERENCES shop.parent (id))")
		a, logs := testApplier(t, s, "beta", ApplierOptions{Workers: 2})
		parent := testTable{schema: "shop", name: "parent", key: []int{0}, cols: []Column{{Name: "id"}}}
		filler := testTable{schema: "shop", name: "filler", key: []int{0}, cols: []Column{{Name: "id"}}}
		child := testTable{schema: "shop", name: "child", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "pid"}}}
		var rows []Row
		for i := int64(0); i < 2000; i++ { // a big transaction that inserts the parent last
			rows = append(rows, filler.ins([]Value{vI(i)}))
		}
		rows = append(rows, parent.ins([]Value{vI(1)}))
		txns := []*Txn{testTxn("six", 1, t0, rows...), testTxn("six", 2, t0, child.ins([]Value{vI(1), vI(1)}))}
		if err := a.Apply(ctx, txns); err != nil {
			t.Fatal(err)
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.child c JOIN shop.parent p ON c.pid = p.id"); n != 1 {
			t.Errorf("%d child rows with their parent, want 1", n)
		}
		if n := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.filler"); n != 2000 {
			t.Errorf("%d filler rows, want 2000", n)
		}
		if es := testConflicts(t, logs); len(es) != 0 {
			t.Errorf("conflicts logged: %+v", es)
		}
		t.Logf("parallel runs finished in order: %d", a.fallbacks.Load())
	})

	t.Run("ParallelKeepsOrderPerRow", func(t *testing.T) {
		s.Exec("CREATE TABLE shop.par (id INT PRIMARY KEY, n INT NOT NULL)", "CREATE TABLE shop.log (seq INT, id INT)")
		a, logs := testApplier(t, s, "beta", ApplierOptions{Workers: 4, BatchTxns: 7})
		par := testTable{schema: "shop", name: "par", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "n"}}}
		nolog := testTable{schema: "shop", name: "log", cols: []Column{{Name: "seq"}, {Name: "id"}}}
		const rowsN, perRow = 8, 40
		n := map[int64]int64{}
		var txns []*Txn
		seq := uint64(0)
		for id := int64(0); id < rowsN; id++ {
			seq++
			txns = append(txns, testTxn("four", seq, t0, par.ins([]Value{vI(id), vI(0)})))
		}
		for k := 0; k < perRow; k++ {
			for id := int64(0); id < rowsN; id++ {
				seq++
				rows := []Row{par.upd([]Value{vI(id), vI(n[id])}, []Value{vI(id), vI(n[id] + 1)})}
				if k%10 == 0 && id == 0 {
					rows = append(rows, nolog.ins([]Value{vI(int64(seq)), vI(id)}))
				}
				n[id]++
				txns = append(txns, testTxn("four", seq, t0, rows...))
			}
			if k == perRow/2 { // a row moving between keys: two rows in one transaction
				seq++
				txns = append(txns, testTxn("four", seq, t0,
					par.upd([]Value{vI(0), vI(n[0])}, []Value{vI(0), vI(n[0] + 100)}),
					par.upd([]Value{vI(1), vI(n[1])}, []Value{vI(1), vI(n[1] + 100)})))
				n[0] += 100
				n[1] += 100
			}
		}
		parts := applyPartition(testItems(txns), 4)
		if len(parts) < 2 {
			t.Errorf("applyPartition made %d part(s) of independent rows, want several", len(parts))
		}
		for i := 0; i < len(txns); i += 100 {
			if err := a.Apply(ctx, txns[i:min(i+100, len(txns))]); err != nil {
				t.Fatal(err)
			}
		}
		for id := int64(0); id < rowsN; id++ {
			if got := testQueryInt(t, db, "SELECT n FROM shop.par WHERE id = ?", id); got != n[id] {
				t.Errorf("row %d: n = %d, want %d", id, got, n[id])
			}
		}
		if got, want := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.log"), int64(perRow/10); got != want {
			t.Errorf("%d rows in the keyless table, want %d", got, want)
		}
		if es := testConflicts(t, logs); len(es) != 0 {
			t.Errorf("conflicts logged: %d, first %+v", len(es), es[0])
		}
		if n := a.slowApplied.Load(); n != 0 {
			t.Errorf("%d transactions took the checked path", n)
		}
		if seq2, _, _ := a.Applied(ctx, "four"); seq2 != seq {
			t.Errorf("Applied = %d, want %d", seq2, seq)
		}
	})
}

// TestApplyPair starts two real MariaDB servers, alpha and beta, for the
// tests that need both.
func TestApplyPair(t *testing.T) {
	alpha := mysqltest.Start(t, mysqltest.Options{ServerID: 1})
	beta := mysqltest.Start(t, mysqltest.Options{ServerID: 2})
	t.Run("Conflict", func(t *testing.T) { testConflictPair(t, alpha, beta) })
	t.Run("Tailed", func(t *testing.T) { testTailedPair(t, alpha, beta) })
	t.Run("Seed", func(t *testing.T) { testSeedPair(t, alpha, beta) })
}

func testItems(txns []*Txn) []*applyItem {
	out := make([]*applyItem, len(txns))
	for i, t := range txns {
		out[i] = &applyItem{t: t}
	}
	return out
}

func TestApplyPartition(t *testing.T) {
	tb := testTable{schema: "s", name: "t", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v"}}}
	nokey := testTable{schema: "s", name: "n", cols: []Column{{Name: "a"}}}
	r := func(id int64) []Value { return []Value{vI(id), vI(0)} }
	txns := []*Txn{
		testTxn("o", 1, time.Time{}, tb.ins(r(1))),
		testTxn("o", 2, time.Time{}, tb.ins(r(2))),
		testTxn("o", 3, time.Time{}, tb.upd(r(1), r(3))), // moves 1 to 3: joins 1
		testTxn("o", 4, time.Time{}, tb.ins(r(3))),       // joins 1 through 3
		testTxn("o", 5, time.Time{}, nokey.ins([]Value{vI(1)})),
		testTxn("o", 6, time.Time{}, nokey.ins([]Value{vI(2)})), // same keyless table: joins 5
		testTxn("o", 7, time.Time{}, tb.ins(r(4))),
	}
	parts := applyPartition(testItems(txns), 3)
	where := map[uint64]int{}
	for p, items := range parts {
		last := uint64(0)
		for _, it := range items {
			where[it.t.Seq] = p
			if it.t.Seq <= last {
				t.Errorf("part %d out of stream order: %d after %d", p, it.t.Seq, last)
			}
			last = it.t.Seq
		}
	}
	if len(where) != len(txns) {
		t.Fatalf("%d of %d transactions placed", len(where), len(txns))
	}
	for _, same := range [][2]uint64{{1, 3}, {3, 4}, {5, 6}} {
		if where[same[0]] != where[same[1]] {
			t.Errorf("transactions %d and %d share a row but are in parts %d and %d", same[0], same[1], where[same[0]], where[same[1]])
		}
	}
	if len(parts) != 3 {
		t.Errorf("%d parts, want 3", len(parts))
	}
}

// TestApplyCrash kills the server (SIGKILL) while batches are being applied
// by several connections, restarts it and resumes from Applied: every
// transaction must be in exactly once.
func TestApplyCrash(t *testing.T) {
	s := mysqltest.Start(t, mysqltest.Options{ServerID: 1})
	s.Exec("CREATE DATABASE shop", "CREATE TABLE shop.ctr (id INT PRIMARY KEY, n INT NOT NULL)", "CREATE TABLE shop.ins (id INT PRIMARY KEY, ctr INT NOT NULL)")
	ctr := testTable{schema: "shop", name: "ctr", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "n"}}}
	ins := testTable{schema: "shop", name: "ins", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "ctr"}}}
	const counters, total = 16, 8000
	n := make([]int64, counters)
	var txns []*Txn
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	for id := range counters {
		txns = append(txns, testTxn("alpha", uint64(len(txns)+1), t0, ctr.ins([]Value{vI(int64(id)), vI(0)})))
	}
	for i := 0; len(txns) < total; i++ {
		id := i % counters
		// An update of a counter catches a double apply (its before image
		// no longer matches: a conflict); an insert catches a loss.
		txns = append(txns, testTxn("alpha", uint64(len(txns)+1), t0,
			ctr.upd([]Value{vI(int64(id)), vI(n[id])}, []Value{vI(int64(id)), vI(n[id] + 1)}),
			ins.ins([]Value{vI(int64(i)), vI(int64(id))})))
		n[id]++
	}
	ctx := context.Background()
	a, logs := testApplier(t, s, "beta", ApplierOptions{Workers: 4})
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < len(txns); i += 512 {
			if err := a.Apply(ctx, txns[i:min(i+512, len(txns))]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	watch := s.DB("")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var c int64
		watch.QueryRow("SELECT COUNT(*) FROM shop.ins").Scan(&c)
		if c >= total/4+300 { // inside an Apply call, not at its end
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d rows applied after 60 s", c)
		}
		time.Sleep(2 * time.Millisecond) // polling a real server, not synchronising
	}
	s.Kill()
	if err := <-errc; err == nil {
		t.Fatal("every Apply succeeded: the kill came too late to test anything")
	} else {
		t.Logf("Apply after the kill: %v", err)
	}
	s.Restart()

	b, _ := testApplier(t, s, "beta", ApplierOptions{Workers: 4, Conflicts: logs})
	seq, _, err := b.Applied(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	db := s.DB("")
	ahead := testQueryInt(t, db, "SELECT COUNT(*) FROM tandem.applied WHERE origin = 'alpha' AND seq > ?", seq)
	t.Logf("checkpoint after the crash: %d of %d; %d marker rows (a row per local transaction) committed past it", seq, total, ahead)
	if seq == 0 || seq >= total {
		t.Fatalf("checkpoint %d: the crash should fall inside the stream", seq)
	}
	// Resume as the engine does (from the checkpoint), then send the whole
	// stream again for good measure.
	for _, from := range []uint64{seq, 0} {
		for i := int(from); i < len(txns); i += 512 {
			if err := b.Apply(ctx, txns[i:min(i+512, len(txns))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for id := range counters {
		if got := testQueryInt(t, db, "SELECT n FROM shop.ctr WHERE id = ?", id); got != n[id] {
			t.Errorf("counter %d = %d, want %d", id, got, n[id])
		}
	}
	if got, want := testQueryInt(t, db, "SELECT COUNT(*) FROM shop.ins"), int64(total-counters); got != want {
		t.Errorf("%d inserted rows, want %d", got, want)
	}
	if es := testConflicts(t, logs); len(es) != 0 {
		t.Errorf("%d conflicts logged (a transaction applied twice?), first: %+v", len(es), es[0].Row)
	}
	if seq, _, _ := b.Applied(ctx, "alpha"); seq != total {
		t.Errorf("Applied = %d at the end, want %d", seq, total)
	}
}

// FuzzApplyLiteral checks that no value, however made, breaks out of its
// literal: the rendered SQL is one token (or an introducer and a hex
// literal, or a cast of one), with quotes only where the form puts them.
func FuzzApplyLiteral(f *testing.F) {
	f.Add(uint8(Decimal), "1.5", []byte(nil), "utf8mb4")
	f.Add(uint8(Date), "2020-01-01' OR 1=1 --", []byte(nil), "")
	f.Add(uint8(Text), "", []byte("a'b\\c`d;--"), "latin1")
	f.Add(uint8(Text), "", []byte("x"), "latin1 X'00'; DROP")
	f.Add(uint8(JSON), `{"a":"'"}`, []byte(nil), "")
	f.Add(uint8(Enum), "a'; DROP TABLE t; --", []byte(nil), "")
	f.Add(uint8(Bytes), "", []byte(strings.Repeat("'", 300)), "")
	f.Fuzz(func(t *testing.T, kind uint8, s string, p []byte, cs string) {
		var b strings.Builder
		c := Column{Name: "c", Charset: cs}
		v := Value{Kind: Kind(kind % 16), S: s, B: p, I: int64(len(s)), U: uint64(len(p)), F: float64(len(s)) / 3}
		if err := applyLiteral(&b, &c, v, kind >= 128); err != nil {
			return
		}
		out := b.String()
		body := out
		switch v.Kind {
		case Date, DateTime, Timestamp, Time:
			if !strings.HasPrefix(out, "'") || !strings.HasSuffix(out, "'") {
				t.Fatalf("%s literal %q is not quoted", v.Kind, out)
			}
			body = out[1 : len(out)-1]
		case Text, Bytes, Enum, Set, JSON:
			i := strings.Index(out, "X'")
			j := strings.LastIndex(out, "'")
			if i < 0 || j <= i+1 {
				t.Fatalf("%s literal %q has no hex literal", v.Kind, out)
			}
			for _, r := range out[i+2 : j] {
				if !strings.ContainsRune("0123456789abcdef", r) {
					t.Fatalf("%s literal %q: %q in the hex digits", v.Kind, out, r)
				}
			}
			want := v.S
			if v.Kind == Text || v.Kind == Bytes {
				want = string(v.B)
			}
			if got, _ := hex.DecodeString(out[i+2 : j]); string(got) != want {
				t.Fatalf("%s literal %q reads as %q, want %q", v.Kind, out, got, want)
			}
			body = out[:i] + out[j+1:]
		}
		bads := []string{"'", "\\", ";", "--", "/*", "#", "`", "\x00"}
		if body != out && v.Kind != Text && v.Kind != Bytes && v.Kind != Enum && v.Kind != Set && v.Kind != JSON {
			bads = bads[:2] // inside quotes only a quote or a backslash could end them
		}
		for _, bad := range bads {
			if strings.Contains(body, bad) {
				t.Fatalf("%s literal %q contains %q outside its quotes", v.Kind, out, bad)
			}
		}
	})
}

// TestApplyHex checks the hex literals against encoding/hex, across the
// boundary of applyHexOf's buffer.
func TestApplyHex(t *testing.T) {
	p := make([]byte, 600)
	for i := range p {
		p[i] = byte(i * 7)
	}
	for n := 0; n <= len(p); n += 1 + n/8 {
		want := "X'" + hex.EncodeToString(p[:n]) + "'"
		var b, s strings.Builder
		applyHex(&b, p[:n])
		applyHexString(&s, string(p[:n]))
		if b.String() != want || s.String() != want {
			t.Fatalf("%d bytes: applyHex = %q, applyHexString = %q, want %q", n, b.String(), s.String(), want)
		}
	}
}

// TestApplyTupleMatch: merged updates and deletes whose before images hold
// only integers and strings match them as one row IN list; any other
// value (NULL here) keeps the per-row arms.
func TestApplyTupleMatch(t *testing.T) {
	tb := testTable{schema: "shop", name: "t", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "k"}, {Name: "v", Charset: "utf8mb4"}}}
	row := func(id int64, v Value) []Value { return []Value{vI(id), vI(id), v} }
	group := func(v Value) *applyGroup {
		g := &applyGroup{op: Delete}
		for id := int64(1); id <= 3; id++ {
			r := tb.del(row(id, v))
			g.rows = append(g.rows, &r)
		}
		return g
	}
	for _, tt := range []struct {
		name  string
		v     Value
		tuple bool
	}{
		{"strings", vB(Text, "abc"), true},
		{"a NULL", Value{Kind: Null}, false},
		{"a datetime", vS(DateTime, "2026-01-01 00:00:00"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := applyGroupSQL(&b, group(tt.v), false); err != nil {
				t.Fatal(err)
			}
			q := b.String()
			want := "WHERE `id` IN (1,2,3) AND IF((`id`,`k`,`v`) IN ((1,1,"
			if got := strings.Contains(q, want); got != tt.tuple {
				t.Errorf("tuple form %v, want %v:\n%s", got, tt.tuple, q)
			}
			if got := strings.Contains(q, " OR "); got == tt.tuple {
				t.Errorf("per-row arms %v, want %v:\n%s", got, !tt.tuple, q)
			}
		})
	}
}
