package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/internal/mysqltest"
	"github.com/tandemhost/tandem/snapshot"
	"github.com/tandemhost/tandem/watcher/index"
)

type snapshotFixture struct {
	cfg, dir, www, snaps string
}

func newSnapshotFixture(t *testing.T) *snapshotFixture {
	t.Helper()
	f := &snapshotFixture{}
	f.cfg = writeConfig(t, minimalConfig+"[[sync]]\npath = \"$DIR/www\"\nexclude = [\"cache/\"]\n[snapshot]\ndir = \"$DIR/snapshots\"\n")
	f.dir = filepath.Dir(f.cfg)
	f.www = filepath.Join(f.dir, "www")
	f.snaps = filepath.Join(f.dir, "snapshots")
	f.write(t, "index.php", "<?php one")
	f.write(t, "uploads/a.jpg", "JPEG")
	f.write(t, "cache/x", "not synced")
	return f
}

func (f *snapshotFixture) write(t testing.TB, rel, content string) {
	t.Helper()
	p := filepath.Join(f.www, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *snapshotFixture) list(t *testing.T) []snapshot.Info {
	t.Helper()
	code, out, errs := cli(t, "snapshot", "list", "--json", "-c", f.cfg)
	if code != exitOK {
		t.Fatalf("snapshot list --json = %d: %s", code, errs)
	}
	var list []snapshot.Info
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("snapshot list --json: %v\n%s", err, out)
	}
	return list
}

func TestSnapshotCLI(t *testing.T) {
	f := newSnapshotFixture(t)
	code, out, errs := cli(t, "snapshot", "list", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "no snapshots") {
		t.Errorf("list before any = %d %q %q", code, out, errs)
	}
	// No daemon: take opens the index and scans itself.
	code, out, errs = cli(t, "snapshot", "take", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "Took snapshot") {
		t.Fatalf("take without a daemon = %d %q %q", code, out, errs)
	}
	list := f.list(t)
	if len(list) != 1 || !list[0].Good() || list[0].Totals.Files != 2 {
		t.Fatalf("after take: %+v, want one complete snapshot of 2 files (cache/ excluded)", list)
	}
	first := list[0].ID

	f.write(t, "index.php", "<?php two")
	if code, _, errs := cli(t, "snapshot", "take", "-c", f.cfg); code != exitOK {
		t.Fatalf("second take = %d %s", code, errs)
	}
	list = f.list(t)
	if len(list) != 2 || list[1].Totals.Copied != 1 || list[1].Totals.Linked != 1 || list[1].Roots[0].Full {
		t.Fatalf("second snapshot = %+v, want 1 copied, 1 linked, from the index", list[1])
	}

	code, out, _ = cli(t, "snapshot", "show", first, "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "complete") || !strings.Contains(out, "index seq") {
		t.Errorf("show = %d %q", code, out)
	}

	live := filepath.Join(f.www, "index.php")
	code, _, errs = cli(t, "snapshot", "restore", live, "--at", first, "-c", f.cfg)
	if code != exitFailure || !strings.Contains(errs, "--force") {
		t.Errorf("restore over a live file without --force = %d %q", code, errs)
	}
	to := t.TempDir()
	code, _, errs = cli(t, "snapshot", "restore", live, "--at", first, "--to", to, "-c", f.cfg)
	if got, _ := os.ReadFile(filepath.Join(to, "index.php")); code != exitOK || string(got) != "<?php one" {
		t.Errorf("restore --to = %d %q, file %q", code, errs, got)
	}
	code, out, errs = cli(t, "snapshot", "restore", "--force", live, "--at", first, "-c", f.cfg)
	if got, _ := os.ReadFile(live); code != exitOK || string(got) != "<?php one" || !strings.Contains(out, "replicates") {
		t.Errorf("restore --force = %d %q %q, file %q", code, out, errs, got)
	}
	if code, _, errs := cli(t, "snapshot", "restore", "/etc/passwd", "--at", first, "-c", f.cfg); code != exitUsage || !strings.Contains(errs, "not in a synced tree") {
		t.Errorf("restore outside the trees = %d %q", code, errs)
	}

	code, out, _ = cli(t, "snapshot", "verify", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "OK") {
		t.Errorf("verify = %d %q", code, out)
	}
	// Corrupt one file of the newest snapshot and delete another.
	second := list[1].ID
	root := filepath.Join(f.snaps, second, "files", "%2F"+strings.ReplaceAll(strings.TrimPrefix(f.www, "/"), "/", "%2F"))
	if err := os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php TWO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "uploads", "a.jpg")); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, "snapshot", "verify", second, "-c", f.cfg)
	if code != exitFailure || !strings.Contains(out, "corrupted: "+f.www+"/index.php") || !strings.Contains(out, "missing: "+f.www+"/uploads/a.jpg") {
		t.Errorf("verify of a damaged snapshot = %d %q, want exit 1 naming both files", code, out)
	}

	code, out, _ = cli(t, "snapshot", "prune", "--dry-run", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "Would remove 1 of 2") {
		t.Errorf("prune --dry-run = %d %q", code, out)
	}
}

func TestSnapshotCLIUsage(t *testing.T) {
	f := newSnapshotFixture(t)
	for _, args := range [][]string{
		{"snapshot", "nope"},
		{"snapshot", "list", "--dry-run"},
		{"snapshot", "restore", "--at", "x"},
		{"snapshot", "show"},
		{"snapshot", "verify", "--sample", "0"},
	} {
		if code, _, errs := cli(t, append(args, "-c", f.cfg)...); code != exitUsage || errs == "" {
			t.Errorf("%v = %d %q, want usage error", args, code, errs)
		}
	}
	off := writeConfig(t, minimalConfig)
	if code, _, errs := cli(t, "snapshot", "list", "-c", off); code != exitUsage || !strings.Contains(errs, "snapshots are off") {
		t.Errorf("list without [snapshot] = %d %q", code, errs)
	}
	code, _, errs := cli(t, "snapshot", "restore", filepath.Join(f.www, "index.php"), "--at", "2020-01-01", "-c", f.cfg)
	if code != exitFailure || !strings.Contains(errs, "no complete snapshot") {
		t.Errorf("restore with no snapshot = %d %q", code, errs)
	}
}

// TestSnapshotTakeThroughDaemon serves the scheduler's routes on the
// control socket as the daemon does: take goes through it, and with the
// index held and no answer, take says so instead of waiting.
func TestSnapshotTakeThroughDaemon(t *testing.T) {
	f := newSnapshotFixture(t)
	cfg, err := LoadConfig(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := index.Open(indexPath(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sched, err := newSnapshotScheduler(cfg, db, nil)
	if err != nil || sched == nil {
		t.Fatalf("newSnapshotScheduler = %v, %v", sched, err)
	}
	if _, err := index.Scan(context.Background(), db, cfg.Sync[0].ID(), cfg.Sync[0].Path, "alpha", index.ScanOptions{}); err != nil {
		t.Fatal(err)
	}

	// The index is held and nothing answers: a clear error, not a hang.
	code, _, errs := cli(t, "snapshot", "take", "-c", f.cfg)
	if code != exitFailure || !strings.Contains(errs, "locked") {
		t.Errorf("take with the index held = %d %q, want a locked error", code, errs)
	}

	ln, err := control.Listen(control.SocketPath(cfg.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mux := http.NewServeMux()
	sched.Routes(mux)
	served := make(chan error, 1)
	go func() { served <- control.Serve(ctx, ln, mux) }()
	ran := make(chan error, 1)
	go func() { ran <- sched.Run(ctx) }()
	defer func() {
		cancel()
		<-served
		<-ran
	}()
	code, out, errs := cli(t, "snapshot", "take", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "Took snapshot") {
		t.Fatalf("take through the daemon = %d %q %q", code, out, errs)
	}
	if st := sched.Status(); st.LastGood == "" || st.NextDue.IsZero() {
		t.Errorf("scheduler status after take = %+v", st)
	}
}

func TestSnapshotPrintStatus(t *testing.T) {
	now := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	var b strings.Builder
	printSnapshotStatus(&b, &snapshot.Status{LastGood: "2026-11-22T030000Z", LastGoodTime: now.Add(-time.Hour),
		LastGoodBytes: 4 << 20, LastGoodNewBytes: 1 << 20, NextDue: now, LastError: "disk full\nmore"}, now)
	out := b.String()
	for _, want := range []string{"last 2026-11-22T030000Z (1h0m0s ago, 4.0 MiB, 1.0 MiB new)", "snapshot error: disk full"} {
		if !strings.Contains(out, want) {
			t.Errorf("printSnapshotStatus = %q, want it to contain %q", out, want)
		}
	}
	b.Reset()
	printSnapshotStatus(&b, nil, now)
	if b.Len() != 0 {
		t.Errorf("printSnapshotStatus(nil) = %q", b.String())
	}
}

// TestSnapshotCLIDatabase starts a real MariaDB: take dumps the database,
// restore-db loads the dump into a scratch database.
func TestSnapshotCLIDatabase(t *testing.T) {
	srv := mysqltest.Start(t, mysqltest.Options{})
	srv.Exec("CREATE DATABASE shop", "CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT)",
		"INSERT INTO shop.items VALUES (1, 'chair'), (2, 'table')")
	cfg := writeConfig(t, minimalConfig+"[mysql]\ndsn = \""+srv.DSN("")+"\"\nserver_id = 77\ndatabases = [\"shop\"]\n[snapshot]\ndir = \"$DIR/snapshots\"\nmysql_dump = true\n")
	code, out, errs := cli(t, "snapshot", "take", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "Database dump: 1 tables") {
		t.Fatalf("take with mysql_dump = %d %q %q", code, out, errs)
	}
	srv.Exec("DELETE FROM shop.items")
	code, out, errs = cli(t, "snapshot", "restore-db", "--at", time.Now().UTC().Add(time.Minute).Format(time.RFC3339), "--to-database", "scratch", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "Loaded 1 tables (2 rows)") {
		t.Fatalf("restore-db = %d %q %q", code, out, errs)
	}
	var n int
	if err := srv.DB("scratch").QueryRow("SELECT COUNT(*) FROM items WHERE name IN ('chair', 'table')").Scan(&n); err != nil || n != 2 {
		t.Errorf("scratch.items has %d of the 2 rows (%v)", n, err)
	}
	code, _, errs = cli(t, "snapshot", "restore-db", "--at", time.Now().UTC().Add(time.Minute).Format(time.RFC3339), "--to-database", "scratch", "-c", cfg)
	if code != exitFailure || !strings.Contains(errs, "--force") {
		t.Errorf("restore-db over existing tables = %d %q, want a refusal naming --force", code, errs)
	}
}
