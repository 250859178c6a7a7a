package binlog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/mysqltest"
)

func TestSeedSeqOf(t *testing.T) {
	cases := map[string]uint64{
		"":             0,
		"0-1-42":       42,
		"0-1-42,1-2-7": 42,
		"3E11FA47-71CA-11E1-9E33-C80AA9429562:1-77":                                              77,
		"3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:9-12,4E11FA47-71CA-11E1-9E33-C80AA9429562:1-3": 12,
	}
	for in, want := range cases {
		if got, err := seedSeqOf(in); err != nil || got != want {
			t.Errorf("seedSeqOf(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"0-1", "x-y-z", "uuid:a-b"} {
		if _, err := seedSeqOf(bad); err == nil {
			t.Errorf("seedSeqOf(%q) succeeded, want an error", bad)
		}
	}
}

// testSeedPair copies two databases of alpha to beta, which has none of
// them, with Dump and Load.
func testSeedPair(t *testing.T, alpha, beta *mysqltest.Server) {
	beta.Exec("FLUSH BINARY LOGS")
	ctx := context.Background()
	var sqls []string
	for _, r := range everyRows {
		sqls = append(sqls, r.sql)
	}
	alpha.Exec("CREATE DATABASE store CHARACTER SET latin1", fmt.Sprintf(everyDDL, "store"),
		"CREATE TABLE store.big (id INT PRIMARY KEY, v VARCHAR(40)) ",
		"CREATE TABLE store.nokey (a INT, b TEXT)",
		"CREATE DATABASE other",
		"CREATE TABLE other.t (id BIGINT UNSIGNED PRIMARY KEY)",
		"INSERT INTO other.t VALUES (1), (18446744073709551615)",
		"INSERT INTO store.nokey VALUES (1, 'a'), (1, 'a'), (NULL, NULL)",
		// A child table whose name sorts before its parent's.
		"CREATE TABLE store.zparent (id INT PRIMARY KEY)",
		"CREATE TABLE store.achild (id INT PRIMARY KEY, pid INT NOT NULL, FOREIGN KEY (pid) REFERENCES store.zparent (id))",
		"INSERT INTO store.zparent VALUES (1), (2)",
		"INSERT INTO store.achild VALUES (10, 1), (20, 2)")
	conn, err := alpha.DB("").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET time_zone = '+05:00'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO store.every VALUES "+strings.Join(sqls, ",")); err != nil {
		t.Fatal(err)
	}
	var vals []string
	for i := 0; i < 2500; i++ {
		vals = append(vals, fmt.Sprintf("(%d, 'row %d')", i, i))
	}
	alpha.Exec("INSERT INTO store.big VALUES " + strings.Join(vals, ","))
	adb := alpha.DB("")
	before := testQueryString(t, adb, "SELECT @@gtid_binlog_pos")

	b, _ := testApplier(t, beta, "beta", ApplierOptions{})
	var progress []SeedProgress
	emitted, wrote := 0, false
	gtid, err := Dump(ctx, adb, DumpOptions{Origin: "alpha", Databases: []string{"other", "store"}, BatchRows: 1000, Progress: func(p SeedProgress) { progress = append(progress, p) }},
		func(tx *Txn) error {
			emitted++
			if !wrote {
				// A write after the snapshot began: not in the dump, and
				// after the position the dump reports.
				alpha.Exec("INSERT INTO store.big VALUES (9999, 'after the snapshot')")
				wrote = true
			}
			return b.Load(ctx, tx)
		})
	if err != nil {
		t.Fatal(err)
	}
	adb.SetMaxOpenConns(1) // the pool's one connection must not be the dump's
	if cs := testQueryString(t, adb, "SELECT @@character_set_results"); cs == "NULL" {
		t.Errorf("the dump left its session settings in the caller's pool")
	}
	adb.SetMaxOpenConns(0)
	if gtid != before {
		t.Errorf("Dump at GTID %q, want %q (the position before the later write)", gtid, before)
	}
	if after := testQueryString(t, adb, "SELECT @@gtid_binlog_pos"); after == gtid {
		t.Errorf("the write during the dump did not move the position past %q", gtid)
	}
	if err := b.FinishLoad(ctx, "alpha", gtid); err != nil {
		t.Fatal(err)
	}
	bdb := beta.DB("")
	for _, tbl := range []string{"store.every", "store.nokey", "store.achild", "store.zparent", "other.t"} {
		sa, err := alpha.Checksum(tbl)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := beta.Checksum(tbl)
		if err != nil {
			t.Fatalf("%s on beta: %v", tbl, err)
		}
		if sa != sb {
			t.Errorf("CHECKSUM TABLE %s: alpha %d, beta %d", tbl, sa, sb)
		}
	}
	if n := testQueryInt(t, bdb, "SELECT COUNT(*) FROM store.big"); n != 2500 {
		t.Errorf("beta has %d rows in store.big, want the 2500 of the snapshot", n)
	}
	if cs := testQueryString(t, bdb, "SELECT default_character_set_name FROM information_schema.schemata WHERE schema_name = 'store'"); cs != "latin1" {
		t.Errorf("beta's store has character set %s, want latin1", cs)
	}
	seq, got, err := b.Applied(ctx, "alpha")
	if err != nil || got != gtid || seq == 0 {
		t.Errorf("Applied(alpha) = %d %q %v, want the dump's %q", seq, got, err, gtid)
	}
	// Streaming continues after the snapshot: the write made during the
	// dump (the next seq) is applied, anything at or before the snapshot's
	// seq is not.
	big := testTable{schema: "store", name: "big", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v", Charset: "latin1"}}}
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	if err := b.Apply(ctx, []*Txn{
		testTxn("alpha", seq, t0, big.ins([]Value{vI(5000), vB(Text, "old")})),
		testTxn("alpha", seq+1, t0, big.ins([]Value{vI(9999), vB(Text, "after the snapshot")})),
	}); err != nil {
		t.Fatal(err)
	}
	if got := testQueryString(t, bdb, "SELECT GROUP_CONCAT(id) FROM store.big WHERE id >= 2500"); got != "9999" {
		t.Errorf("rows applied after the seed: %s, want 9999", got)
	}
	sa, _ := alpha.Checksum("store.big")
	if sb, _ := beta.Checksum("store.big"); sa != sb {
		t.Errorf("CHECKSUM TABLE store.big: alpha %d, beta %d", sa, sb)
	}
	// store.big's 2500 rows come in three Txns of at most 1000.
	bigTxns := 0
	for _, p := range progress {
		if p.Table == "big" && p.Rows > 0 {
			bigTxns++
		}
	}
	last := progress[len(progress)-1]
	if bigTxns != 3 || last.Tables != 6 || last.Done != 5 || len(progress) != emitted {
		t.Errorf("progress: %d calls for %d Txns, %d for store.big, last %+v", len(progress), emitted, bigTxns, last)
	}
	// What a dump cannot copy exactly is refused, naming the column.
	alpha.Exec("CREATE DATABASE geo", "CREATE TABLE geo.places (id INT PRIMARY KEY, p POINT)", "INSERT INTO geo.places VALUES (1, POINT(1, 2))")
	_, err = Dump(ctx, adb, DumpOptions{Origin: "alpha", Databases: []string{"geo"}}, func(*Txn) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "geo.places") || !strings.Contains(err.Error(), "point") {
		t.Errorf("Dump of a POINT column = %v, want an error naming geo.places and the type", err)
	}
	if err := b.Load(ctx, &Txn{Rows: []Row{big.upd([]Value{vI(1), vB(Text, "a")}, []Value{vI(1), vB(Text, "b")})}}); err == nil {
		t.Errorf("Load of an update succeeded, want an error")
	}
	// Nothing the seed wrote on beta may go back to alpha: every
	// statement ran with skip_replication (beta's binlog shows the flag
	// set and never cleared) and the DDL with the marker.
	for _, q := range testQueryEvents(t, bdb) {
		if strings.HasPrefix(q, "CREATE") && !strings.Contains(q, DDLMarker) {
			t.Errorf("beta's binlog has %q without the marker", q)
		}
	}
}
