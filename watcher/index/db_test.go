package index

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/tandemhost/tandem/conflict"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testRoot = "/var/www"

func openTestDB(tb testing.TB, path string) *DB {
	tb.Helper()
	db, err := Open(path, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

func newTestDB(tb testing.TB) *DB {
	tb.Helper()
	db := openTestDB(tb, filepath.Join(tb.TempDir(), "index.db"))
	tb.Cleanup(func() { db.Close() })
	return db
}

func fileRec(path string, size int64, v conflict.Vector) Record {
	return Record{Path: path, Type: File, Size: size, Mode: 0o644, Hash: [32]byte{byte(size)}, Vector: v, Origin: "alpha"}
}

func vec(node string, n uint64) conflict.Vector { return conflict.Vector{{Node: node, Value: n}} }

func mustGet(tb testing.TB, db *DB, root, path string) Record {
	tb.Helper()
	r, ok, err := db.Get(root, path)
	if err != nil || !ok {
		tb.Fatalf("Get(%q) = ok %v, err %v; want a record", path, ok, err)
	}
	return r
}

func since(tb testing.TB, db *DB, root string, seq uint64) []Record {
	tb.Helper()
	var out []Record
	if err := db.Since(root, seq, func(r Record) error { out = append(out, r); return nil }); err != nil {
		tb.Fatal(err)
	}
	return out
}

func paths(recs []Record) string {
	var p []string
	for _, r := range recs {
		p = append(p, r.Path)
	}
	return strings.Join(p, " ")
}

func TestPutGetRoundTrip(t *testing.T) {
	db := newTestDB(t)
	want := sampleRecords()
	stored, err := db.Put(testRoot, want...)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		w.Seq = uint64(i + 1)
		if stored[i].Seq != w.Seq {
			t.Errorf("Put returned Seq %d for %s, want %d", stored[i].Seq, w.Path, w.Seq)
		}
		if got := mustGet(t, db, testRoot, w.Path); !reflect.DeepEqual(got, w) {
			t.Errorf("Get(%s):\n got %+v\nwant %+v", w.Path, got, w)
		}
	}
	if _, ok, _ := db.Get(testRoot, "nope"); ok {
		t.Error("Get of a missing path found a record")
	}
	if _, ok, _ := db.Get("/other", want[0].Path); ok {
		t.Error("Get in another root found a record")
	}
	if _, err := db.Put(testRoot, Record{Path: "../escape", Type: File}); err == nil {
		t.Error("Put of a path with .. succeeded")
	}
}

func TestSinceOrder(t *testing.T) {
	db := newTestDB(t)
	if _, err := db.Put(testRoot, fileRec("a", 1, nil), fileRec("b", 2, nil), fileRec("c", 3, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(testRoot, fileRec("a", 4, nil)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		after uint64
		want  string
	}{
		{0, "b c a"},
		{2, "c a"},
		{3, "a"},
		{4, ""},
	}
	for _, tt := range tests {
		got := since(t, db, testRoot, tt.after)
		if paths(got) != tt.want {
			t.Errorf("Since(%d) = %q, want %q", tt.after, paths(got), tt.want)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq {
				t.Errorf("Since(%d) not in seq order: %d after %d", tt.after, got[i].Seq, got[i-1].Seq)
			}
		}
	}
	if seq, _ := db.Seq(testRoot); seq != 4 {
		t.Errorf("Seq = %d, want 4", seq)
	}
}

func TestSinceAcrossChunks(t *testing.T) {
	db := newTestDB(t)
	var recs []Record
	for i := range 3*chunk + 7 {
		recs = append(recs, fileRec(fmt.Sprintf("f%05d", i), int64(i), nil))
	}
	if _, err := db.Put(testRoot, recs...); err != nil {
		t.Fatal(err)
	}
	var got []Record
	err := db.Since(testRoot, 0, func(r Record) error {
		got = append(got, r)
		if len(got) == chunk+1 {
			// A change during the iteration is seen once, in its new place,
			// if it is within the range; this one is past it.
			if _, err := db.Put(testRoot, fileRec("f00000", 99, nil)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("Since(0) yielded %d records, want %d", len(got), len(recs))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) {
			t.Fatalf("Since(0)[%d].Seq = %d, want %d", i, r.Seq, i+1)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := db.Since(testRoot, 0, func(Record) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Since with fn failing = %v after %d calls, want stop after 1", err, n)
	}
}

func TestApplyMovesWatermarkAtomically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db := openTestDB(t, path)
	if wm, _ := db.Watermark(testRoot, "beta"); wm != 0 {
		t.Errorf("Watermark of a new index = %d, want 0", wm)
	}
	in := fileRec("from/beta", 10, vec("beta", 5))
	in.Origin = "beta"
	stored, err := db.Apply(testRoot, "beta", 17, in)
	if err != nil {
		t.Fatal(err)
	}
	if stored[0].Seq != 1 {
		t.Errorf("applied record got Seq %d, want 1", stored[0].Seq)
	}
	// Refused batches store nothing and leave the watermark alone.
	if _, err := db.Apply(testRoot, "beta", 16, fileRec("stale", 1, nil)); !errors.Is(err, ErrWatermark) {
		t.Errorf("Apply below the watermark = %v, want ErrWatermark", err)
	}
	if _, err := db.Apply(testRoot, "beta", 30, fileRec("ok", 1, nil), Record{Path: "bad", Type: 9}); err == nil {
		t.Error("Apply with an invalid record succeeded")
	}
	if _, err := db.Apply(testRoot, "gamma", 3); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTestDB(t, path)
	defer db.Close()
	for peer, want := range map[string]uint64{"beta": 17, "gamma": 3, "delta": 0} {
		if wm, err := db.Watermark(testRoot, peer); err != nil || wm != want {
			t.Errorf("after reopen, Watermark(%s) = %d, %v; want %d", peer, wm, err, want)
		}
	}
	if wm, _ := db.Watermark("/other", "beta"); wm != 0 {
		t.Errorf("Watermark in another root = %d, want 0", wm)
	}
	got := mustGet(t, db, testRoot, "from/beta")
	in.Seq = 1
	if !reflect.DeepEqual(got, in) {
		t.Errorf("after reopen, applied record = %+v, want %+v", got, in)
	}
	for _, p := range []string{"stale", "ok"} {
		if _, ok, _ := db.Get(testRoot, p); ok {
			t.Errorf("record %q of a refused Apply was stored", p)
		}
	}
	if _, err := db.Apply(testRoot, "beta", 17); err != nil {
		t.Errorf("Apply at the watermark = %v, want nil", err)
	}
}

func TestWalkSubtree(t *testing.T) {
	db := newTestDB(t)
	all := []string{"a", "a/b", "a/b!", "a/b/c", "a/b/d", "a/b/d/e", "a/bc", "a/b.txt", "b", "ab"}
	var recs []Record
	for _, p := range all {
		recs = append(recs, fileRec(p, 1, nil))
	}
	if _, err := db.Put(testRoot, recs...); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ prefix, want string }{
		{"a/b", "a/b a/b/c a/b/d a/b/d/e"},
		{"a/b/d", "a/b/d a/b/d/e"},
		{"a", "a a/b a/b/c a/b/d a/b/d/e a/b! a/b.txt a/bc"},
		{"", "a a/b a/b/c a/b/d a/b/d/e a/b! a/b.txt a/bc ab b"},
		{"zzz", ""},
	}
	for _, tt := range tests {
		var got []Record
		if err := db.Walk(testRoot, tt.prefix, func(r Record) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if paths(got) != tt.want {
			t.Errorf("Walk(%q) = %q, want %q", tt.prefix, paths(got), tt.want)
		}
	}
	kids, orphans, err := db.children(testRoot, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 2 || kids["c"].Path != "a/b/c" || kids["d"].Path != "a/b/d" || len(orphans) != 0 {
		t.Errorf("children(a/b) = %v, orphans %v; want c and d", kids, orphans)
	}
}

func TestWalkAcrossChunks(t *testing.T) {
	db := newTestDB(t)
	var recs []Record
	for i := range 2*chunk + 3 {
		recs = append(recs, fileRec("d/"+strconv.Itoa(i), 1, nil))
	}
	recs = append(recs, fileRec("e", 1, nil))
	if _, err := db.Put(testRoot, recs...); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := db.Walk(testRoot, "d", func(r Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2*chunk+3 {
		t.Errorf("Walk(d) yielded %d records, want %d", n, 2*chunk+3)
	}
}

func TestChildrenReportsOrphans(t *testing.T) {
	db := newTestDB(t)
	if _, err := db.Put(testRoot, fileRec("x/y/z", 1, nil), fileRec("x/w", 1, nil), fileRec("v", 1, nil)); err != nil {
		t.Fatal(err)
	}
	kids, orphans, err := db.children(testRoot, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 1 || kids["v"].Path != "v" || !orphans["x"] || len(orphans) != 1 {
		t.Errorf("children(root) = %v, orphans %v; want v and orphan x", kids, orphans)
	}
}

func TestCounts(t *testing.T) {
	db := newTestDB(t)
	dir := Record{Path: "d", Type: Dir, Mode: 0o755}
	link := Record{Path: "d/l", Type: Symlink, Target: "f", Size: 1}
	if _, err := db.Put(testRoot, dir, link, fileRec("d/f", 100, nil), fileRec("g", 50, nil)); err != nil {
		t.Fatal(err)
	}
	gone := fileRec("g", 50, nil)
	gone.Deleted = true
	if _, err := db.Put(testRoot, fileRec("d/f", 30, nil), gone); err != nil {
		t.Fatal(err)
	}
	want := Counts{Files: 1, Dirs: 1, Symlinks: 1, Bytes: 30, Tombstones: 1}
	if got, err := db.Count(testRoot); err != nil || got != want {
		t.Errorf("Count = %+v, %v; want %+v", got, err, want)
	}
	if got := since(t, db, testRoot, math.MaxUint64); len(got) != 0 {
		t.Errorf("Since(max) = %q, want nothing", paths(got))
	}
	if got, _ := db.Count("/empty"); got != (Counts{}) {
		t.Errorf("Count of an unknown root = %+v, want zero", got)
	}
	if n, err := db.PurgeTombstones(testRoot, math.MaxUint64); err != nil || n != 1 {
		t.Errorf("PurgeTombstones(max) = %d, %v; want 1", n, err)
	}
	want.Tombstones = 0
	if got, _ := db.Count(testRoot); got != want {
		t.Errorf("Count after purge = %+v, want %+v", got, want)
	}
}

func TestPurgeTombstones(t *testing.T) {
	db := newTestDB(t)
	var recs []Record
	for i := range 3000 {
		r := fileRec(fmt.Sprintf("f%04d", i), 1, nil)
		r.Deleted = i%3 == 0
		recs = append(recs, r)
	}
	if _, err := db.Put(testRoot, recs...); err != nil {
		t.Fatal(err)
	}
	// Seqs 1..3000; tombstones at seqs 1, 4, 7, ...: 667 of them up to 2000.
	n, err := db.PurgeTombstones(testRoot, 2000)
	if err != nil || n != 667 {
		t.Fatalf("PurgeTombstones(2000) = %d, %v; want 667", n, err)
	}
	if _, ok, _ := db.Get(testRoot, "f0000"); ok {
		t.Error("purged tombstone f0000 still there")
	}
	if r := mustGet(t, db, testRoot, "f2997"); !r.Deleted {
		t.Error("tombstone above the purge seq lost")
	}
	if got := since(t, db, testRoot, 0); len(got) != 3000-667 {
		t.Errorf("Since(0) after purge yields %d records, want %d", len(got), 3000-667)
	}
	if c, _ := db.Count(testRoot); c.Tombstones != 1000-667 || c.Files != 2000 {
		t.Errorf("Count after purge = %+v, want 333 tombstones and 2000 files", c)
	}
}

func TestOpenLockedNamesHolder(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 100 * time.Millisecond
	path := filepath.Join(t.TempDir(), "index.db")
	db := openTestDB(t, path)
	defer db.Close()
	_, err := Open(path, zaptest.NewLogger(t))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("second Open error %q does not name the holder (%s)", err, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("index file mode = %v, want no group or other access", fi.Mode())
	}
}

func TestCommitScanDropsSuperseded(t *testing.T) {
	db := newTestDB(t)
	stored, err := db.Put(testRoot, fileRec("a", 1, vec("alpha", 1)), fileRec("b", 1, vec("alpha", 1)))
	if err != nil {
		t.Fatal(err)
	}
	// The scan looked at a (seq 1) and b (seq 2); then beta's version of a
	// was applied, and c was created by someone else.
	applied := fileRec("a", 9, vec("beta", 1))
	if _, err := db.Apply(testRoot, "beta", 1, applied); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(testRoot, fileRec("c", 1, vec("beta", 1))); err != nil {
		t.Fatal(err)
	}
	release := db.Hold(testRoot, "d")
	got, err := db.commitScan(testRoot, []change{
		{rec: fileRec("a", 2, vec("alpha", 2)), base: stored[0].Seq},
		{rec: fileRec("b", 2, vec("alpha", 2)), base: stored[1].Seq},
		{rec: fileRec("c", 2, vec("alpha", 1)), base: 0},
		{rec: fileRec("d", 2, vec("alpha", 1)), base: 0},
	})
	release()
	if err != nil {
		t.Fatal(err)
	}
	if paths(got) != "b" {
		t.Errorf("commitScan stored %q, want only b", paths(got))
	}
	if r := mustGet(t, db, testRoot, "a"); r.Size != 9 {
		t.Errorf("a = %+v, want beta's applied version", r)
	}
	if _, ok, _ := db.Get(testRoot, "d"); ok {
		t.Error("change to a held path was stored")
	}
}

func TestReopenRejectsUnknownFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db := openTestDB(t, path)
	if err := db.bolt.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, be64(99)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(path, zaptest.NewLogger(t)); err == nil {
		db.Close()
		t.Fatal("Open of a newer format succeeded")
	}
}
