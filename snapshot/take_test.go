package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemhost/tandem/watcher/index"
)

// liveTree is a synced tree with its real index, as the daemon has them.
type liveTree struct {
	tb    testing.TB
	dir   string
	db    *index.DB
	idx   Changes
	store *Store
	clock time.Time
}

// newLiveTree makes a tree under a temp dir with files, an index of it and
// an empty snapshot store.
func newLiveTree(tb testing.TB, files map[string]string) *liveTree {
	tb.Helper()
	base := tb.TempDir()
	lt := &liveTree{tb: tb, dir: filepath.Join(base, "www"), clock: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)}
	if err := os.Mkdir(lt.dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for p, c := range files {
		lt.write(p, c)
	}
	dbPath := filepath.Join(base, "index.db")
	db, err := index.Open(dbPath, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	lt.db = db
	lt.idx = IndexChanges(db, dbPath)
	lt.store = NewStore(filepath.Join(base, "snapshots"), nil)
	lt.scan()
	return lt
}

func (lt *liveTree) path(rel string) string { return filepath.Join(lt.dir, filepath.FromSlash(rel)) }

func (lt *liveTree) write(rel, content string) {
	lt.tb.Helper()
	p := lt.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		lt.tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		lt.tb.Fatal(err)
	}
}

// scan brings the index up to date with the tree, as the watcher would.
func (lt *liveTree) scan() {
	lt.tb.Helper()
	if _, err := index.Scan(context.Background(), lt.db, "www", lt.dir, "alpha", index.ScanOptions{}); err != nil {
		lt.tb.Fatal(err)
	}
}

func (lt *liveTree) opts() TakeOptions {
	return TakeOptions{
		Roots: []Root{{Name: "www", Dir: lt.dir}},
		Index: lt.idx,
		Now:   func() time.Time { return lt.clock },
	}
}

// take takes a snapshot an hour after the previous one.
func (lt *liveTree) take() Info {
	lt.tb.Helper()
	lt.clock = lt.clock.Add(time.Hour)
	info, err := lt.store.Take(context.Background(), lt.opts())
	if err != nil {
		lt.tb.Fatalf("Take: %v", err)
	}
	if !info.Good() {
		lt.tb.Fatalf("Take = %+v, want complete", info)
	}
	return info
}

func (lt *liveTree) snapPath(id, rel string) string {
	return filepath.Join(lt.store.RootPath(id, "www"), filepath.FromSlash(rel))
}

func inode(tb testing.TB, p string) uint64 {
	tb.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func readFile(tb testing.TB, p string) string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestTakeLinksUnchangedCopiesChanged(t *testing.T) {
	lt := newLiveTree(t, map[string]string{
		"index.php":       "<?php echo 1;",
		"img/logo.png":    "PNG....",
		"img/old.png":     "old",
		"blog/post-1.md":  "hello",
		"blog/a/b/deep.x": "deep",
	})
	if err := os.Symlink("img/logo.png", lt.path("logo")); err != nil {
		t.Fatal(err)
	}
	lt.scan()
	first := lt.take()
	if !first.Roots[0].Full {
		t.Errorf("first snapshot Roots = %+v, want a full walk", first.Roots)
	}
	if got := first.Totals; got.Files != 5 || got.Symlinks != 1 || got.Copied != 5 || got.Linked != 0 {
		t.Errorf("first snapshot totals = %+v, want 5 files copied and 1 symlink", got)
	}

	lt.write("index.php", "<?php echo 2;")
	lt.write("blog/post-2.md", "new post")
	if err := os.Remove(lt.path("img/old.png")); err != nil {
		t.Fatal(err)
	}
	lt.scan()
	second := lt.take()
	if second.Roots[0].Full {
		t.Errorf("second snapshot walked the tree in full; want it from the index's changes")
	}
	if second.Parent != first.ID {
		t.Errorf("second.Parent = %q, want %q", second.Parent, first.ID)
	}
	for _, rel := range []string{"img/logo.png", "blog/post-1.md", "blog/a/b/deep.x", "logo"} {
		if a, b := inode(t, lt.snapPath(first.ID, rel)), inode(t, lt.snapPath(second.ID, rel)); a != b {
			t.Errorf("%s: inode %d in the second snapshot, %d in the first; want the same (hard link)", rel, b, a)
		}
		if a, b := inode(t, lt.snapPath(second.ID, rel)), inode(t, lt.path(rel)); a == b {
			t.Errorf("%s: the snapshot shares the live file's inode", rel)
		}
	}
	if a, b := inode(t, lt.snapPath(first.ID, "index.php")), inode(t, lt.snapPath(second.ID, "index.php")); a == b {
		t.Errorf("changed index.php shares inode %d with the previous snapshot", a)
	}
	if got := readFile(t, lt.snapPath(second.ID, "index.php")); got != "<?php echo 2;" {
		t.Errorf("second snapshot's index.php = %q", got)
	}
	if got := readFile(t, lt.snapPath(first.ID, "index.php")); got != "<?php echo 1;" {
		t.Errorf("first snapshot's index.php = %q after the change", got)
	}
	if got := readFile(t, lt.snapPath(second.ID, "blog/post-2.md")); got != "new post" {
		t.Errorf("second snapshot's new post = %q", got)
	}
	if _, err := os.Lstat(lt.snapPath(second.ID, "img/old.png")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted img/old.png in the second snapshot: %v, want it absent", err)
	}
	if target, err := os.Readlink(lt.snapPath(second.ID, "logo")); err != nil || target != "img/logo.png" {
		t.Errorf("symlink logo = %q, %v", target, err)
	}
	if got := second.Totals; got.Copied != 2 || got.Files != 5 {
		t.Errorf("second totals = %+v, want 2 copied of 5 files", got)
	}
	// The manifest reuses hashes and agrees with the files.
	if bad := verifyAll(t, lt.store, second.ID); len(bad) != 0 {
		t.Errorf("Verify(second) = %v, want nothing wrong", bad)
	}
}

func TestLiveChangesLeaveSnapshotsAlone(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"a.txt": "version one", "dir/b.txt": "bee"})
	first := lt.take()
	second := lt.take() // nothing changed: everything linked twice over
	if second.Totals.Linked != 2 || second.Totals.Copied != 0 {
		t.Fatalf("unchanged second snapshot totals = %+v, want 2 linked", second.Totals)
	}

	// In-place write (same inode) and chmod of the live files.
	f, err := os.OpenFile(lt.path("a.txt"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("VERSION TWO"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chmod(lt.path("dir/b.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lt.path("dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{first.ID, second.ID} {
		if got := readFile(t, lt.snapPath(id, "a.txt")); got != "version one" {
			t.Errorf("snapshot %s a.txt = %q after an in-place write to the live file", id, got)
		}
		for rel, want := range map[string]os.FileMode{"dir/b.txt": 0o644, "dir": 0o755} {
			fi, err := os.Stat(lt.snapPath(id, rel))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("snapshot %s %s mode = %v after chmod of the live one, want %v", id, rel, fi.Mode().Perm(), want)
			}
		}
	}
	lt.scan()
	third := lt.take()
	if got := readFile(t, lt.snapPath(third.ID, "a.txt")); got != "VERSION TWO" {
		t.Errorf("third snapshot a.txt = %q", got)
	}
	fi, _ := os.Stat(lt.snapPath(third.ID, "dir/b.txt"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("third snapshot dir/b.txt mode = %v, want 0600", fi.Mode().Perm())
	}
	if inode(t, lt.snapPath(third.ID, "dir/b.txt")) == inode(t, lt.snapPath(second.ID, "dir/b.txt")) {
		t.Errorf("chmodded dir/b.txt is linked to the previous snapshot, whose mode differs")
	}
	fi, _ = os.Stat(lt.snapPath(third.ID, "dir"))
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("third snapshot dir mode = %v, want 0700", fi.Mode().Perm())
	}
}

func TestTakeWithoutIndexComparesInFull(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"a": "1", "b": "2", "c/d": "3"})
	opts := lt.opts()
	opts.Index = nil
	lt.clock = lt.clock.Add(time.Hour)
	first, err := lt.store.Take(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	lt.write("b", "two") // not scanned: the index would not know
	lt.clock = lt.clock.Add(time.Hour)
	second, err := lt.store.Take(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Roots[0].Full || second.Totals.Copied != 1 || second.Totals.Linked != 2 {
		t.Errorf("second snapshot without index: roots %+v totals %+v, want full, 1 copied, 2 linked", second.Roots, second.Totals)
	}
	if inode(t, lt.snapPath(first.ID, "c/d")) != inode(t, lt.snapPath(second.ID, "c/d")) {
		t.Errorf("unchanged c/d not linked by the full compare")
	}
	if got := readFile(t, lt.snapPath(second.ID, "b")); got != "two" {
		t.Errorf("b = %q, want two", got)
	}
}

// TestTakeFailsMidway kills a snapshot part-way (an injected error after a
// few files, as a crash or a full disk would stop it): the older snapshot
// is intact, the failed one is recorded as failed and never used as the
// parent of the next.
func TestTakeFailsMidway(t *testing.T) {
	files := map[string]string{}
	for i := range 20 {
		files[fmt.Sprintf("f%02d", i)] = strings.Repeat("x", i)
	}
	lt := newLiveTree(t, files)
	first := lt.take()
	for i := range 20 {
		lt.write(fmt.Sprintf("f%02d", i), "changed")
	}
	lt.scan()
	opts := lt.opts()
	n := 0
	boom := errors.New("injected crash")
	opts.hook = func(root, rel string) error {
		if n++; n == 7 {
			return boom
		}
		return nil
	}
	lt.clock = lt.clock.Add(time.Hour)
	failed, err := lt.store.Take(context.Background(), opts)
	if !errors.Is(err, boom) {
		t.Fatalf("Take with a failure = %v, want the injected error", err)
	}
	if failed.Good() || failed.Error == "" {
		t.Errorf("failed snapshot info = %+v, want status failed with the error", failed)
	}
	list, err := lt.store.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !list[0].Good() || list[1].Status != StatusFailed || !strings.Contains(list[1].Error, "injected crash") {
		t.Fatalf("List after a failed take = %+v, want the first complete and the second failed", list)
	}
	if bad := verifyAll(t, lt.store, first.ID); len(bad) != 0 {
		t.Errorf("first snapshot after a failed take: %v", bad)
	}
	if got := readFile(t, lt.snapPath(first.ID, "f05")); got != "xxxxx" {
		t.Errorf("first snapshot f05 = %q", got)
	}
	if _, err := os.Stat(filepath.Join(lt.store.Path(failed.ID), filesDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed snapshot kept its partial files: %v", err)
	}
	if l, ok, _ := lt.store.Latest(); !ok || l.ID != first.ID {
		t.Errorf("Latest = %v, %v; want the first (the failed one is not good)", l.ID, ok)
	}

	// A crash that leaves the temp dir: the next take removes it, and is
	// built from the first snapshot.
	stale := filepath.Join(lt.store.Dir(), tmpPrefix+"2026-11-22T090000Z")
	if err := os.MkdirAll(filepath.Join(stale, filesDir, "www"), 0o700); err != nil {
		t.Fatal(err)
	}
	third := lt.take()
	if third.Parent != first.ID {
		t.Errorf("after a failure, Parent = %q, want the last good %q", third.Parent, first.ID)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp dir still there: %v", err)
	}
	if got := readFile(t, lt.snapPath(third.ID, "f05")); got != "changed" {
		t.Errorf("third snapshot f05 = %q", got)
	}
}

func TestTakeBusy(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"a": "1"})
	unlock, err := lt.store.lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := lt.store.Take(context.Background(), lt.opts()); !errors.Is(err, ErrBusy) {
		t.Errorf("Take while locked = %v, want ErrBusy", err)
	}
}

// TestCopyChangingFile writes to a file while it is being copied, on every
// attempt: the snapshot completes and the manifest says so.
func TestCopyChangingFile(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"log": strings.Repeat("a", 1<<20)})
	opts := lt.opts()
	opts.Index = nil
	// Append to the file after each copy attempt, before the re-check.
	opts.duringCopy = func(root, rel string) {
		f, err := os.OpenFile(lt.path("log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("more"))
		f.Close()
	}
	lt.clock = lt.clock.Add(time.Hour)
	info, err := lt.store.Take(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if info.Totals.Changing != 1 {
		t.Errorf("Totals.Changing = %d, want 1", info.Totals.Changing)
	}
	var got *Entry
	lt.store.Manifest(info.ID, func(e *Entry) error {
		if e.Path == "log" {
			c := *e
			got = &c
		}
		return nil
	})
	if got == nil || !got.Changing {
		t.Errorf("manifest entry of log = %+v, want Changing", got)
	}
	if !bytes.HasPrefix([]byte(readFile(t, lt.snapPath(info.ID, "log"))), []byte("aaaa")) {
		t.Errorf("copy of a changing file lost its content")
	}
}

// verifyAll verifies every file of snapshot id and returns the problems.
func verifyAll(tb testing.TB, s *Store, id string) []Problem {
	tb.Helper()
	res, err := s.Verify(context.Background(), id, VerifyOptions{})
	if err != nil {
		tb.Fatalf("Verify(%s): %v", id, err)
	}
	return res.Problems
}

// TestTakeDiskFull takes snapshots into a 2 MiB tmpfs: the one that does
// not fit fails, is recorded as failed, and leaves the older one intact.
func TestTakeDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "mounting a small tmpfs needs root"
		if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
			t.Fatal(msg + "; TANDEM_REQUIRE_INTEGRATION is set, so this cannot be skipped")
		}
		t.Skip(msg)
	}
	lt := newLiveTree(t, map[string]string{"small": "a small file", "dir/other": "another"})
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	lt.store = NewStore(filepath.Join(mnt, "snapshots"), nil)
	first := lt.take()

	lt.write("big", strings.Repeat("B", 3<<20))
	lt.scan()
	lt.clock = lt.clock.Add(time.Hour)
	failed, err := lt.store.Take(context.Background(), lt.opts())
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Take onto a full disk = %v, want ENOSPC", err)
	}
	list, _ := lt.store.List()
	if len(list) != 2 || list[1].ID != failed.ID || list[1].Good() || !strings.Contains(list[1].Error, "no space left") {
		t.Fatalf("List after a full disk = %+v, want the failed snapshot recorded with its error", list)
	}
	if bad := verifyAll(t, lt.store, first.ID); len(bad) != 0 {
		t.Errorf("first snapshot after the full disk: %v", bad)
	}
	// Retention does not count the failure; the next good one replaces it.
	if err := os.Remove(lt.path("big")); err != nil {
		t.Fatal(err)
	}
	lt.scan()
	third := lt.take()
	if third.Parent != first.ID || third.Totals.Linked != 2 {
		t.Errorf("after the failure: parent %s, totals %+v; want parent %s and 2 links", third.Parent, third.Totals, first.ID)
	}
	plan, err := lt.store.Prune(context.Background(), Keep{Hourly: 24}, lt.clock, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range plan {
		if d.Info.ID == failed.ID && d.Keep {
			t.Errorf("failed snapshot kept after a newer good one: %s", d.Reason)
		}
	}
}

// TestTakeTypeChanges replaces a file by a directory and a directory by a
// file between snapshots: the index lists the path and the tombstones of
// the old contents, and the snapshot follows.
func TestTakeTypeChanges(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"x": "file x", "d/a": "a", "d/b": "b", "keep/f": "f"})
	first := lt.take()
	if err := os.Remove(lt.path("x")); err != nil {
		t.Fatal(err)
	}
	lt.write("x/inner", "inner")
	if err := os.RemoveAll(lt.path("d")); err != nil {
		t.Fatal(err)
	}
	lt.write("d", "now a file")
	lt.write("new/dir/file", "new")
	lt.scan()
	second := lt.take()
	want := map[string]string{"x/inner": "inner", "d": "now a file", "keep/f": "f", "new/dir/file": "new"}
	for rel, content := range want {
		if got := readFile(t, lt.snapPath(second.ID, rel)); got != content {
			t.Errorf("second snapshot %s = %q, want %q", rel, got, content)
		}
	}
	if got := readFile(t, lt.snapPath(first.ID, "d/a")); got != "a" {
		t.Errorf("first snapshot d/a = %q", got)
	}
	if bad := verifyAll(t, lt.store, second.ID); len(bad) != 0 {
		t.Errorf("Verify(second) = %v", bad)
	}
	n := 0
	lt.store.Manifest(second.ID, func(e *Entry) error { n++; return nil })
	if n != 8 { // x, x/inner, d, keep, keep/f, new, new/dir, new/dir/file
		t.Errorf("second manifest has %d entries, want 8", n)
	}
}

// TestTakeAfterIndexRebuilt: a new index (another incarnation) has
// sequence numbers that mean nothing against the snapshot's, so Take
// compares the live tree in full, and still links what is unchanged.
func TestTakeAfterIndexRebuilt(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"a": "1", "b/c": "2"})
	first := lt.take()
	dbPath := filepath.Join(t.TempDir(), "index.db")
	db, err := index.Open(dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lt.db, lt.idx = db, IndexChanges(db, dbPath)
	lt.write("a", "one")
	lt.scan()
	second := lt.take()
	if !second.Roots[0].Full || second.Totals.Copied != 1 || second.Totals.Linked != 1 {
		t.Errorf("after an index rebuild: roots %+v totals %+v, want a full compare, 1 copied, 1 linked", second.Roots, second.Totals)
	}
	if inode(t, lt.snapPath(first.ID, "b/c")) != inode(t, lt.snapPath(second.ID, "b/c")) {
		t.Errorf("unchanged b/c not linked")
	}
	third := lt.take()
	if third.Roots[0].Full || third.Totals.Linked != 2 {
		t.Errorf("next snapshot on the new index: roots %+v totals %+v, want from the index, 2 linked", third.Roots, third.Totals)
	}
}

func TestTakeRecordsPosition(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"a": "1"})
	opts := lt.opts()
	opts.Position = func(context.Context) (Position, error) {
		return Position{GTID: "0-1-42", File: "binlog.000003", Pos: 1234}, nil
	}
	info, err := lt.store.Take(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := lt.store.Get(info.ID)
	if err != nil || got.GTID != "0-1-42" || got.BinlogFile != "binlog.000003" || got.BinlogPos != 1234 {
		t.Errorf("snapshot.json position = %q %q %d, %v", got.GTID, got.BinlogFile, got.BinlogPos, err)
	}
}

// TestIndexListedButUnchanged: the index lists a path whose file did not
// change (its record was rewritten): the snapshot links it.
func TestIndexListedButUnchanged(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"a": "1", "b": "2"})
	first := lt.take()
	r, ok, err := lt.db.Get("www", "a")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, err := lt.db.Put("www", r); err != nil { // a new seq, same file
		t.Fatal(err)
	}
	second := lt.take()
	if second.Totals.Copied != 0 || second.Totals.Linked != 2 {
		t.Errorf("totals = %+v, want both linked", second.Totals)
	}
	if inode(t, lt.snapPath(first.ID, "a")) != inode(t, lt.snapPath(second.ID, "a")) {
		t.Errorf("a was copied again though unchanged")
	}
}

// TestRacyCopy: a file copied right after it changed is not trusted by its
// stat next time (a write in the same timestamp tick would not show), so
// the next snapshot copies it again even when the index lists it with the
// same stat.
func TestRacyCopy(t *testing.T) {
	racyWindow = time.Hour
	defer func() { racyWindow = 0 }()
	lt := newLiveTree(t, map[string]string{"a": "1"})
	first := lt.take()
	var ctime int64 = -1
	lt.store.Manifest(first.ID, func(e *Entry) error { ctime = e.CtimeNs; return nil })
	if ctime != 0 {
		t.Errorf("manifest ctime of a file copied within the racy window = %d, want 0 (untrusted)", ctime)
	}
	r, _, _ := lt.db.Get("www", "a")
	lt.db.Put("www", r)
	second := lt.take()
	if second.Totals.Copied != 1 {
		t.Errorf("second totals = %+v, want the racy file copied again", second.Totals)
	}
}
