package snapshot

// The tests here start a real MariaDB (internal/mysqltest).

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/mysqltest"
)

func TestDumpAndRestoreDB(t *testing.T) {
	srv := mysqltest.Start(t, mysqltest.Options{})
	srv.Exec(
		"CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, price DECIMAL(10,2), "+
			"data BLOB, note TEXT NULL, created DATETIME(6), ratio DOUBLE, flags BIT(4), doubled INT AS (id * 2) VIRTUAL)",
		"CREATE TABLE shop.`odd``name` (k VARCHAR(10) PRIMARY KEY, v JSON)",
		"CREATE TABLE shop.empty (x INT)",
		"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
	)
	db := srv.DB("shop")
	if _, err := db.Exec("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'"); err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		id   int
		name string
		data []byte
		note any
	}{
		{0, "zero id", []byte{}, nil},
		{1, "it's \"quoted\" \\ back\nslash", []byte{0, 1, 2, 0xff, '\'', '\\'}, "line1\r\nline2\x1a;"},
		{2, "ünïcødé ✓ 🙂", nil, "-- not a comment; /* nor this */"},
	}
	for _, r := range rows {
		if _, err := db.Exec("INSERT INTO items (id, name, price, data, note, created, ratio, flags) VALUES (?, ?, 12.34, ?, ?, '2026-11-22 03:15:00.123456', 0.1, b'1010')",
			r.id, r.name, r.data, r.note); err != nil {
			t.Fatal(err)
		}
	}
	// About 1.8 MB of rows: the dump cuts them into two INSERTs.
	if _, err := db.Exec("INSERT INTO items (id, name, price, data) SELECT seq, REPEAT('n', seq % 90), seq, REPEAT('x', 500) FROM seq_3_to_2999"); err != nil {
		t.Fatal(err)
	}
	srv.Exec("INSERT INTO shop.`odd``name` VALUES ('a', '{\"k\": [1, \"two\"]}'), ('b', NULL)")

	checksums := func(schema string) map[string]int64 {
		out := map[string]int64{}
		for _, tb := range []string{"items", "`odd``name`", "empty"} {
			sum, err := srv.Checksum(schema + "." + tb)
			if err != nil {
				t.Fatal(err)
			}
			out[tb] = sum
		}
		return out
	}
	want := checksums("shop")

	store := NewStore(filepath.Join(t.TempDir(), "snapshots"), nil)
	clock := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	opts := TakeOptions{DB: NewDumper(srv.DSN(""), []string{"shop"}, nil), Now: func() time.Time { return clock }}
	ctx := context.Background()
	first, err := store.Take(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.GTID == "" || first.BinlogFile == "" || first.BinlogPos == 0 {
		t.Errorf("dump position = %q %q %d, want a GTID and binlog position", first.GTID, first.BinlogFile, first.BinlogPos)
	}
	if len(first.Tables) != 3 {
		t.Fatalf("dumped tables = %+v, want 3", first.Tables)
	}

	// Change one table; the others are linked in the next snapshot.
	srv.Exec("UPDATE shop.items SET name = 'changed' WHERE id = 2", "DELETE FROM shop.items WHERE id = 1")
	clock = clock.Add(time.Hour)
	second, err := store.Take(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, tb := range second.Tables {
		p1 := filepath.Join(store.Path(first.ID), dbDir, first.Tables[i].File)
		p2 := filepath.Join(store.Path(second.ID), dbDir, tb.File)
		same := inode(t, p1) == inode(t, p2)
		if wantLinked := tb.Table != "items"; same != wantLinked || tb.Linked != wantLinked {
			t.Errorf("table %s: linked %v (same inode %v), want %v", tb.Table, tb.Linked, same, wantLinked)
		}
	}
	if bad := verifyAll(t, store, second.ID); len(bad) != 0 {
		t.Errorf("Verify(second) = %v", bad)
	}

	// Restore the first snapshot into a scratch database.
	res, err := store.RestoreDB(ctx, RestoreDBOptions{ID: first.ID, DSN: srv.DSN(""), ToDatabase: "scratch"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tables != 3 || res.Rows != 3002 {
		t.Errorf("RestoreDB = %+v, want 3 tables, 3002 rows", res)
	}
	if got := checksums("scratch"); !mapsEqualInt(got, want) {
		t.Errorf("restored checksums %v, want the first snapshot's %v", got, want)
	}
	var name string
	var note *string
	if err := srv.DB("scratch").QueryRow("SELECT name, note FROM items WHERE id = 1").Scan(&name, &note); err != nil {
		t.Fatal(err)
	}
	if name != rows[1].name || note == nil || *note != rows[1].note {
		t.Errorf("restored row 1 = %q, %v", name, note)
	}

	// Again: the tables exist now.
	_, err = store.RestoreDB(ctx, RestoreDBOptions{ID: first.ID, DSN: srv.DSN(""), ToDatabase: "scratch"})
	if !errors.Is(err, ErrExists) {
		t.Errorf("RestoreDB over existing tables = %v, want ErrExists", err)
	}
	srv.Exec("DELETE FROM scratch.items WHERE id > 100")
	if _, err := store.RestoreDB(ctx, RestoreDBOptions{ID: first.ID, DSN: srv.DSN(""), ToDatabase: "scratch", Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := checksums("scratch"); !mapsEqualInt(got, want) {
		t.Errorf("after a forced restore, checksums %v, want %v", got, want)
	}
}

func mapsEqualInt(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSplitter(t *testing.T) {
	in := "-- header; with semicolon\nCREATE TABLE `a;b` (x TEXT);\n/* c; */INSERT INTO t VALUES ('a;\\'b', \"c;\"), ('#x');\n# tail\n"
	sp := newSplitter(strings.NewReader(in))
	var got []string
	for {
		s, err := sp.next()
		if err != nil {
			break
		}
		got = append(got, s)
	}
	want := []string{"CREATE TABLE `a;b` (x TEXT)", "INSERT INTO t VALUES ('a;\\'b', \"c;\"), ('#x')"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("statements = %q, want %q", got, want)
	}
	if _, err := newSplitter(strings.NewReader("SELECT 'open")).next(); err != errUnterminated {
		t.Errorf("unterminated = %v", err)
	}
}

// TestDumpIsConsistent writes to two tables while a dump runs (right after
// its transaction starts): the dump has none of those writes, in either
// table, and its GTID is the position before them.
func TestDumpIsConsistent(t *testing.T) {
	srv := mysqltest.Start(t, mysqltest.Options{})
	srv.Exec(
		"CREATE DATABASE app",
		"CREATE TABLE app.orders (id INT PRIMARY KEY)",
		"CREATE TABLE app.lines (id INT PRIMARY KEY, order_id INT)",
		"INSERT INTO app.orders VALUES (1)",
		"INSERT INTO app.lines VALUES (1, 1)",
	)
	d := NewDumper(srv.DSN(""), []string{"app"}, nil)
	d.afterStart = func() {
		// One transaction touching both tables, committed mid-dump.
		db := srv.DB("app")
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		tx.Exec("INSERT INTO orders VALUES (2)")
		tx.Exec("INSERT INTO lines VALUES (2, 2)")
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	store := NewStore(filepath.Join(t.TempDir(), "snapshots"), nil)
	info, err := store.Take(context.Background(), TakeOptions{DB: d})
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range info.Tables {
		if tb.Rows != 1 {
			t.Errorf("dump of %s has %d rows, want 1: it saw a write committed after its snapshot", tb.Table, tb.Rows)
		}
	}
	var now string
	if err := srv.DB("").QueryRow("SELECT @@gtid_binlog_pos").Scan(&now); err != nil {
		t.Fatal(err)
	}
	if info.GTID == "" || info.GTID == now {
		t.Errorf("dump GTID %q, server now at %q: want the position before the mid-dump commit", info.GTID, now)
	}
	// Loading it and replaying from its GTID would give the server's state:
	// check the dump loads to exactly the snapshot's rows.
	if _, err := store.RestoreDB(context.Background(), RestoreDBOptions{ID: info.ID, DSN: srv.DSN(""), ToDatabase: "back"}); err != nil {
		t.Fatal(err)
	}
	var n int
	srv.DB("back").QueryRow("SELECT COUNT(*) FROM orders").Scan(&n)
	if n != 1 {
		t.Errorf("restored orders has %d rows, want 1", n)
	}
}
