package index

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// scanTree is a sync root on disk with its index.
type scanTree struct {
	tb   testing.TB
	dir  string
	db   *DB
	prog *Progress
}

func newScanTree(tb testing.TB) *scanTree {
	tb.Helper()
	return &scanTree{tb: tb, dir: filepath.Join(tb.TempDir(), "www"), db: newTestDB(tb), prog: new(Progress)}
}

// later is a clock an hour ahead, so no test file counts as just changed
// (see racyWindow) and unchanged files are not hashed again.
func later() time.Time { return time.Now().Add(time.Hour) }

func (s *scanTree) path(rel string) string { return filepath.Join(s.dir, filepath.FromSlash(rel)) }

func (s *scanTree) write(rel, content string) {
	s.tb.Helper()
	p := s.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.tb.Fatal(err)
	}
}

func (s *scanTree) mkdir(rel string) {
	s.tb.Helper()
	if err := os.MkdirAll(s.path(rel), 0o755); err != nil {
		s.tb.Fatal(err)
	}
}

func (s *scanTree) symlink(target, rel string) {
	s.tb.Helper()
	if err := os.Symlink(target, s.path(rel)); err != nil {
		s.tb.Fatal(err)
	}
}

func (s *scanTree) scanWith(opts ScanOptions) ([]Record, error) {
	s.tb.Helper()
	if opts.Progress == nil {
		opts.Progress = s.prog
	}
	if opts.Now == nil {
		opts.Now = later
	}
	return Scan(context.Background(), s.db, s.dir, s.dir, "alpha", opts)
}

// scan scans the whole tree and returns the changed records; the Progress
// counters start from zero.
func (s *scanTree) scan() []Record {
	s.tb.Helper()
	*s.prog = Progress{}
	recs, err := s.scanWith(ScanOptions{})
	if err != nil {
		s.tb.Fatalf("Scan: %v", err)
	}
	return recs
}

func (s *scanTree) get(rel string) Record {
	s.tb.Helper()
	return mustGet(s.tb, s.db, s.dir, rel)
}

func (s *scanTree) counts() Counts {
	s.tb.Helper()
	c, err := s.db.Count(s.dir)
	if err != nil {
		s.tb.Fatal(err)
	}
	return c
}

func seqOrdered(tb testing.TB, recs []Record) {
	tb.Helper()
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq {
			tb.Fatalf("changes not in Seq order: %s (%d) after %s (%d)", recs[i].Path, recs[i].Seq, recs[i-1].Path, recs[i-1].Seq)
		}
	}
}

func sortedPaths(recs []Record) string {
	p := strings.Fields(paths(recs))
	slices.Sort(p)
	return strings.Join(p, " ")
}

func byPath(recs []Record) map[string]Record {
	m := map[string]Record{}
	for _, r := range recs {
		m[r.Path] = r
	}
	return m
}

// sampleTree writes the tree most tests start from.
func sampleTree(s *scanTree) {
	s.write("index.php", "<?php echo 1;")
	s.write("a/x.txt", "x content")
	s.write("a/b/y.txt", "y")
	s.mkdir("empty")
	s.symlink("a/x.txt", "link")
}

func TestScanNewTree(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	recs := s.scan()
	seqOrdered(t, recs)
	got := byPath(recs)
	want := map[string]Type{"index.php": File, "a": Dir, "a/x.txt": File, "a/b": Dir, "a/b/y.txt": File, "empty": Dir, "link": Symlink}
	if len(recs) != len(want) {
		t.Errorf("first scan changed %q, want %d records", paths(recs), len(want))
	}
	for p, typ := range want {
		r, ok := got[p]
		if !ok {
			t.Errorf("first scan did not record %s", p)
			continue
		}
		if r.Type != typ || r.Origin != "alpha" || r.Vector.String() != "{alpha:1}" || r.Deleted {
			t.Errorf("record %s = %+v, want a live %s at {alpha:1} from alpha", p, r, typ)
		}
		if stored := s.get(p); stored.Seq != r.Seq || stored.Ino == 0 || stored.Dev == 0 {
			t.Errorf("stored %s = %+v, want Seq %d and a stat cache", p, stored, r.Seq)
		}
	}
	if h := blake3.Sum256([]byte("x content")); got["a/x.txt"].Hash != h || got["a/x.txt"].Size != 9 {
		t.Errorf("a/x.txt = %+v, want size 9 and hash %x", got["a/x.txt"], h)
	}
	if r := got["link"]; r.Target != "a/x.txt" || r.Hash != ([32]byte{}) {
		t.Errorf("link = %+v, want target a/x.txt, no hash", r)
	}
	if r := got["a"]; r.Mode != 0o755 || r.Size != 0 || r.MtimeNs != 0 || r.UID != uint32(os.Getuid()) {
		t.Errorf("dir a = %+v, want mode 0755, our uid, no size or mtime", r)
	}
	for _, pair := range [][2]string{{"a", "a/x.txt"}, {"a", "a/b"}, {"a/b", "a/b/y.txt"}} {
		if got[pair[0]].Seq > got[pair[1]].Seq {
			t.Errorf("%s got Seq %d, after its content %s (%d)", pair[0], got[pair[0]].Seq, pair[1], got[pair[1]].Seq)
		}
	}
	wantCounts := Counts{Files: 3, Dirs: 3, Symlinks: 1, Bytes: 13 + 9 + 1}
	if c := s.counts(); c != wantCounts {
		t.Errorf("Count = %+v, want %+v", c, wantCounts)
	}
	if d, f, h := s.prog.Dirs.Load(), s.prog.Files.Load(), s.prog.Hashed.Load(); d != 4 || f != 4 || h != 3 {
		t.Errorf("Progress = %d dirs, %d files, %d hashed; want 4, 4, 3", d, f, h)
	}
}

func TestScanNoChangesHashesNothing(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	seq, _ := s.db.Seq(s.dir)
	if recs := s.scan(); len(recs) != 0 {
		t.Errorf("second scan changed %q, want nothing", paths(recs))
	}
	if h, b := s.prog.Hashed.Load(), s.prog.HashedBytes.Load(); h != 0 || b != 0 {
		t.Errorf("second scan hashed %d files, %d bytes; want none", h, b)
	}
	if d, f := s.prog.Dirs.Load(), s.prog.Files.Load(); d != 4 || f != 4 {
		t.Errorf("second scan saw %d dirs, %d files; want 4, 4", d, f)
	}
	if after, _ := s.db.Seq(s.dir); after != seq {
		t.Errorf("Seq went from %d to %d on a scan with no changes", seq, after)
	}
}

func TestScanModifiedFile(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	first := byPath(s.scan())
	s.write("a/x.txt", "new x content, longer")
	recs := s.scan()
	if paths(recs) != "a/x.txt" {
		t.Fatalf("scan after a write changed %q, want a/x.txt", paths(recs))
	}
	r := recs[0]
	if r.Hash != blake3.Sum256([]byte("new x content, longer")) || r.Vector.String() != "{alpha:2}" || r.Seq <= first["link"].Seq {
		t.Errorf("a/x.txt after write = %+v, want the new hash, {alpha:2} and a new Seq", r)
	}
	if h := s.prog.Hashed.Load(); h != 1 {
		t.Errorf("scan hashed %d files, want 1", h)
	}
}

func TestScanChmodKeepsHash(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	before := s.scan()
	if err := os.Chmod(s.path("index.php"), 0o600|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	recs := s.scan()
	if paths(recs) != "index.php" {
		t.Fatalf("scan after chmod changed %q, want index.php", paths(recs))
	}
	old := byPath(before)["index.php"]
	if r := recs[0]; r.Mode != uint32(0o600|os.ModeSetgid) || r.Hash != old.Hash || r.Vector.String() != "{alpha:2}" {
		t.Errorf("index.php after chmod = %+v, want mode 0600|setgid, hash %x, {alpha:2}", r, old.Hash)
	}
}

func TestScanStatCacheOnly(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	old := s.get("a/x.txt")

	// chmod to the same mode touches only the ctime.
	if err := os.Chmod(s.path("a/x.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The same bytes written to a new inode, mtime put back.
	fi, err := os.Stat(s.path("index.php"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := s.path(TmpPrefix + "1")
	if err := os.WriteFile(tmp, []byte("<?php echo 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.path("index.php")); err != nil {
		t.Fatal(err)
	}
	oldIndex := s.get("index.php")

	if recs := s.scan(); len(recs) != 0 {
		t.Errorf("scan after ctime-only changes changed %q, want nothing", paths(recs))
	}
	if h := s.prog.Hashed.Load(); h != 2 {
		t.Errorf("scan hashed %d files, want 2", h)
	}
	r := s.get("a/x.txt")
	if r.Seq != old.Seq || r.Vector.String() != old.Vector.String() || r.CtimeNs == old.CtimeNs {
		t.Errorf("a/x.txt after chmod to the same mode = %+v, want Seq %d and vector kept, ctime refreshed", r, old.Seq)
	}
	r = s.get("index.php")
	if r.Seq != oldIndex.Seq || r.Ino == oldIndex.Ino {
		t.Errorf("index.php rewritten with the same bytes = %+v, want Seq %d kept and the new inode", r, oldIndex.Seq)
	}
	if recs := s.scan(); len(recs) != 0 || s.prog.Hashed.Load() != 0 {
		t.Errorf("third scan changed %q and hashed %d files, want nothing", paths(recs), s.prog.Hashed.Load())
	}
}

func TestScanDeletedFileIsTombstoned(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	old := s.get("a/b/y.txt")
	if err := os.Remove(s.path("a/b/y.txt")); err != nil {
		t.Fatal(err)
	}
	recs := s.scan()
	if paths(recs) != "a/b/y.txt" {
		t.Fatalf("scan after delete changed %q, want a/b/y.txt", paths(recs))
	}
	if r := recs[0]; !r.Deleted || r.Vector.String() != "{alpha:2}" || r.Hash != old.Hash || r.Ino != 0 {
		t.Errorf("tombstone = %+v, want deleted, {alpha:2}, last hash kept, no stat cache", r)
	}
	if c := s.counts(); c.Files != 2 || c.Tombstones != 1 {
		t.Errorf("Count = %+v, want 2 files and 1 tombstone", c)
	}
	if recs := s.scan(); len(recs) != 0 {
		t.Errorf("scan after the tombstone changed %q, want nothing", paths(recs))
	}
	// Coming back revives it with a newer version.
	s.write("a/b/y.txt", "y again")
	recs = s.scan()
	if len(recs) != 1 || recs[0].Deleted || recs[0].Vector.String() != "{alpha:3}" {
		t.Errorf("scan after re-creation = %+v, want a live a/b/y.txt at {alpha:3}", recs)
	}
}

func TestScanRemovedDirTombstonesSubtree(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	if err := os.RemoveAll(s.path("a")); err != nil {
		t.Fatal(err)
	}
	recs := s.scan()
	seqOrdered(t, recs)
	if got, want := paths(recs), "a/x.txt a/b/y.txt a/b a"; got != want {
		t.Errorf("scan after removing a changed %q, want %q (contents before their directory)", got, want)
	}
	for _, r := range recs {
		if !r.Deleted {
			t.Errorf("%s = %+v, want a tombstone", r.Path, r)
		}
	}
	if c := s.counts(); c.Live() != 3 || c.Tombstones != 4 {
		t.Errorf("Count = %+v, want 3 live and 4 tombstones", c)
	}
}

func TestScanDirReplacedByFile(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	if err := os.RemoveAll(s.path("a")); err != nil {
		t.Fatal(err)
	}
	s.write("a", "now a file")
	recs := s.scan()
	seqOrdered(t, recs)
	if got, want := paths(recs), "a/x.txt a/b/y.txt a/b a"; got != want {
		t.Fatalf("scan after dir a became a file changed %q, want %q", got, want)
	}
	if r := recs[3]; r.Deleted || r.Type != File || r.Vector.String() != "{alpha:2}" {
		t.Errorf("a = %+v, want a live file at {alpha:2}", r)
	}
}

func TestScanSymlinksNotFollowed(t *testing.T) {
	s := newScanTree(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.write("f", "f")
	s.symlink(outside, "out")
	s.symlink("missing/target", "dangling")
	recs := s.scan()
	got := byPath(recs)
	if len(recs) != 3 {
		t.Errorf("scan changed %q, want f, out and dangling only", paths(recs))
	}
	if r := got["out"]; r.Type != Symlink || r.Target != outside {
		t.Errorf("out = %+v, want a symlink to %s", r, outside)
	}
	if r := got["dangling"]; r.Type != Symlink || r.Target != "missing/target" {
		t.Errorf("dangling = %+v, want a symlink to missing/target", r)
	}
	// A scan of a path below a symlink does not go through it.
	recs, err := s.scanWith(ScanOptions{Paths: []string{"out/secret"}})
	if err != nil || len(recs) != 0 {
		t.Errorf("Scan(out/secret) = %q, %v; want nothing", paths(recs), err)
	}
	// Retargeting is a change.
	os.Remove(s.path("dangling"))
	s.symlink("f", "dangling")
	if recs := s.scan(); len(recs) != 1 || recs[0].Target != "f" {
		t.Errorf("scan after retargeting = %+v, want dangling -> f", recs)
	}
}

func TestScanSkipsSpecialFiles(t *testing.T) {
	s := newScanTree(t)
	s.write("f", "f")
	s.write("g", "g")
	if err := syscall.Mkfifo(s.path("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", s.path("sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recs := s.scan()
	if sortedPaths(recs) != "f g" {
		t.Errorf("scan changed %q, want only f and g", paths(recs))
	}
	// A recorded file replaced by a fifo is left alone, not hashed (which
	// would block) nor tombstoned.
	os.Remove(s.path("f"))
	if err := syscall.Mkfifo(s.path("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	if recs := s.scan(); len(recs) != 0 {
		t.Errorf("scan after f became a fifo changed %q, want nothing", paths(recs))
	}
}

func TestScanExcluded(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.write("cache/big", "cached")
	s.write("a/tmp.tmp", "t")
	s.write("a/"+TmpPrefix+"123", "partial")
	var mu sync.Mutex
	asked := map[string]bool{}
	excluded := func(rel string, isDir bool) bool {
		mu.Lock()
		asked[rel] = isDir
		mu.Unlock()
		return (rel == "cache" && isDir) || strings.HasSuffix(rel, ".tmp")
	}
	recs, err := s.scanWith(ScanOptions{Excluded: excluded})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if strings.HasPrefix(r.Path, "cache") || strings.Contains(r.Path, "tmp") {
			t.Errorf("scan recorded excluded path %s", r.Path)
		}
	}
	if len(recs) != 7 {
		t.Errorf("scan changed %q, want the 7 paths of the sample tree", paths(recs))
	}
	if _, ok := asked["cache/big"]; ok {
		t.Error("Excluded was asked about a path inside an excluded directory")
	}
	// Records of paths that became excluded stay as they are, even when the
	// path goes away: excluding a path must not delete it on the peer.
	os.RemoveAll(s.path("a/b"))
	recs, err = s.scanWith(ScanOptions{Excluded: func(rel string, isDir bool) bool { return rel == "a/b" || excluded(rel, isDir) }})
	if err != nil || len(recs) != 0 {
		t.Errorf("scan after removing newly excluded a/b = %q, %v; want nothing", paths(recs), err)
	}
	if r := s.get("a/b/y.txt"); r.Deleted {
		t.Errorf("a/b/y.txt = %+v, want left alone", r)
	}
}

func TestScanVanishedRoot(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	before := s.counts()
	seq, _ := s.db.Seq(s.dir)
	unchanged := func(what string) {
		t.Helper()
		if c := s.counts(); c != before {
			t.Errorf("%s: Count = %+v, want %+v", what, c, before)
		}
		if after, _ := s.db.Seq(s.dir); after != seq {
			t.Errorf("%s: Seq went from %d to %d", what, seq, after)
		}
	}

	moved := s.dir + ".unmounted"
	if err := os.Rename(s.dir, moved); err != nil {
		t.Fatal(err)
	}
	_, err := s.scanWith(ScanOptions{})
	if !errors.Is(err, ErrRootVanished) {
		t.Errorf("Scan of a missing root = %v, want ErrRootVanished", err)
	}
	unchanged("missing root")
	_, err = s.scanWith(ScanOptions{Paths: []string{"a/x.txt"}})
	if !errors.Is(err, ErrRootVanished) {
		t.Errorf("Scan(a/x.txt) of a missing root = %v, want ErrRootVanished", err)
	}
	unchanged("missing root, Paths")

	// An empty mount point (with only a leftover temp file) is no better.
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.write(TmpPrefix+"x", "")
	_, err = s.scanWith(ScanOptions{})
	if !errors.Is(err, ErrRootVanished) || !strings.Contains(err.Error(), "mount") {
		t.Errorf("Scan of an empty root = %v, want ErrRootVanished that says to mount the disk", err)
	}
	unchanged("empty root")

	// The operator says it is really empty.
	recs, err := s.scanWith(ScanOptions{AllowEmptyRoot: true})
	if err != nil || len(recs) != 7 {
		t.Errorf("Scan with AllowEmptyRoot = %d changes, %v; want 7 tombstones", len(recs), err)
	}
	if c := s.counts(); c.Live() != 0 || c.Tombstones != 7 {
		t.Errorf("Count = %+v, want 7 tombstones", c)
	}
}

func TestScanVanishedMountPoint(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	// Pretend a/b was a mount point: its recorded device differs from the
	// device it is on now.
	r := s.get("a/b")
	r.Dev++
	if _, err := s.db.Put(s.dir, r); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.path("a/b/y.txt")); err != nil {
		t.Fatal(err)
	}
	s.write("index.php", "changed elsewhere")
	recs, err := s.scanWith(ScanOptions{})
	if !errors.Is(err, ErrRootVanished) {
		t.Errorf("Scan with an empty former mount point = %v, want ErrRootVanished", err)
	}
	if r := s.get("a/b/y.txt"); r.Deleted {
		t.Error("a/b/y.txt was tombstoned although its mount point is empty")
	}
	if paths(recs) != "index.php" {
		t.Errorf("Scan changed %q, want the rest of the tree scanned (index.php)", paths(recs))
	}
	// It stays stopped until the disk is back.
	if _, err := s.scanWith(ScanOptions{}); !errors.Is(err, ErrRootVanished) {
		t.Errorf("second Scan with an empty former mount point = %v, want ErrRootVanished", err)
	}
}

func TestScanPaths(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	s.write("index.php", "v2, another length")
	s.write("a/x.txt", "changed too, but not asked")

	recs, err := s.scanWith(ScanOptions{Paths: []string{"index.php"}})
	if err != nil || paths(recs) != "index.php" {
		t.Errorf("Scan(index.php) = %q, %v; want index.php", paths(recs), err)
	}

	// A directory is scanned with its subtree; paths below it are covered.
	s.write("a/b/new.txt", "n")
	recs, err = s.scanWith(ScanOptions{Paths: []string{"a/b/y.txt", "a", "a/b"}})
	if err != nil || sortedPaths(recs) != "a/b/new.txt a/x.txt" {
		t.Errorf("Scan(a) = %q, %v; want a/b/new.txt a/x.txt", paths(recs), err)
	}

	// A path that is gone takes its subtree with it.
	if err := os.RemoveAll(s.path("a/b")); err != nil {
		t.Fatal(err)
	}
	recs, err = s.scanWith(ScanOptions{Paths: []string{"a/b"}})
	if err != nil || paths(recs) != "a/b/y.txt a/b/new.txt a/b" {
		t.Errorf("Scan(a/b) after removal = %q, %v; want a/b/y.txt a/b/new.txt a/b", paths(recs), err)
	}
	recs, err = s.scanWith(ScanOptions{Paths: []string{"a/b/y.txt", "never/existed"}})
	if err != nil || len(recs) != 0 {
		t.Errorf("Scan of paths already gone = %q, %v; want nothing", paths(recs), err)
	}

	// A new file in new directories brings the directories along.
	s.write("n1/n2/n3.txt", "deep")
	recs, err = s.scanWith(ScanOptions{Paths: []string{"n1/n2/n3.txt"}})
	if err != nil || paths(recs) != "n1 n1/n2 n1/n2/n3.txt" {
		t.Errorf("Scan(n1/n2/n3.txt) = %q, %v; want n1 n1/n2 n1/n2/n3.txt", paths(recs), err)
	}

	if _, err := s.scanWith(ScanOptions{Paths: []string{"../etc/passwd"}}); err == nil {
		t.Error("Scan(../etc/passwd) succeeded")
	}
}

func TestScanHeldPathIsNotAChange(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	s.scan()
	// The receiver is replacing a/x.txt and has not recorded it yet.
	release := s.db.Hold(s.dir, "a/x.txt")
	s.write("a/x.txt", "written by the receiver")
	if recs := s.scan(); len(recs) != 0 {
		t.Errorf("scan during Hold changed %q, want nothing", paths(recs))
	}
	release()
	release() // idempotent
	if recs := s.scan(); paths(recs) != "a/x.txt" {
		t.Errorf("scan after release changed %q, want a/x.txt", paths(recs))
	}
}

func TestScanRecentFileIsRehashed(t *testing.T) {
	s := newScanTree(t)
	s.write("f", "fresh")
	now := func() time.Time { return time.Now() }
	if _, err := s.scanWith(ScanOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	if r := s.get("f"); r.CtimeNs != 0 {
		t.Errorf("f hashed right after a write has CtimeNs %d, want 0 (not trusted)", r.CtimeNs)
	}
	*s.prog = Progress{}
	recs, err := s.scanWith(ScanOptions{Now: now})
	if err != nil || len(recs) != 0 || s.prog.Hashed.Load() != 1 {
		t.Errorf("second scan = %q, %v, %d hashed; want nothing changed, f hashed again", paths(recs), err, s.prog.Hashed.Load())
	}
	// Once old enough the cache is trusted.
	if _, err := s.scanWith(ScanOptions{Now: later}); err != nil {
		t.Fatal(err)
	}
	if r := s.get("f"); r.CtimeNs == 0 {
		t.Error("stat cache still untrusted after the file aged")
	}
}

func TestScanProgressReadConcurrently(t *testing.T) {
	s := newScanTree(t)
	for i := range 300 {
		s.write(filepath.Join("d"+string(rune('a'+i%10)), "f"+string(rune('a'+i/10))), strings.Repeat("x", i))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var last int64
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			last = s.prog.Files.Load() + s.prog.Hashed.Load() + s.prog.Dirs.Load() + s.prog.HashedBytes.Load()
		}
	})
	recs, err := s.scanWith(ScanOptions{Workers: 4})
	close(done)
	wg.Wait()
	if err != nil || len(recs) != 310 {
		t.Fatalf("Scan = %d changes, %v; want 310", len(recs), err)
	}
	_ = last
	if f, h, b := s.prog.Files.Load(), s.prog.Hashed.Load(), s.prog.HashedBytes.Load(); f != 300 || h != 300 || b != 299*300/2 {
		t.Errorf("Progress = %d files, %d hashed, %d bytes; want 300, 300, %d", f, h, b, 299*300/2)
	}
}

func TestScanCancelled(t *testing.T) {
	s := newScanTree(t)
	sampleTree(s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, s.db, s.dir, s.dir, "alpha", ScanOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Scan with a cancelled context = %v, want context.Canceled", err)
	}
}

func openFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

func TestScanCancelledMidwayReleasesEverything(t *testing.T) {
	s := newScanTree(t)
	for i := range 2000 {
		s.write(filepath.Join("d"+strings.Repeat("x", i%20), "f"+strings.Repeat("y", i/20)), strings.Repeat("z", 1000))
	}
	fds := openFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for s.prog.Hashed.Load() < 100 && ctx.Err() == nil {
			runtime.Gosched()
		}
		cancel()
	})
	recs, err := Scan(ctx, s.db, s.dir, s.dir, "alpha", ScanOptions{Progress: s.prog, Workers: 3, Now: later})
	wg.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Scan cancelled midway = %d changes, %v; want context.Canceled", len(recs), err)
	}
	if n := openFDs(t); n != fds {
		t.Errorf("open descriptors went from %d to %d across a cancelled scan", fds, n)
	}
	// What was stored is consistent: a full scan finishes the job.
	s.scan()
	if c := s.counts(); c.Files != 2000 || c.Dirs != 20 {
		t.Errorf("after the rescan Count = %+v, want 2000 files in 20 dirs", c)
	}
	if openFDs(t) != fds {
		t.Error("a full scan leaked descriptors")
	}
}
