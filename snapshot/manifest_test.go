package snapshot

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestManifestRoundTrip(t *testing.T) {
	in := []Entry{
		{Root: "/var/www", Path: "a b\tc\n", Type: File, Mode: 0o644 | fs.ModeSetuid, UID: 33, GID: 33, Size: 12, MtimeNs: -5, Hash: [32]byte{1, 2, 3}, Ino: 9, CtimeNs: 10, Changing: true},
		{Root: "/var/www", Path: "d", Type: Dir, Mode: 0o755 | fs.ModeSticky},
		{Root: "other", Path: "l", Type: Symlink, Mode: 0o777, Target: "../ü\x00?"},
	}
	p := filepath.Join(t.TempDir(), manifestName)
	w, err := newManifestWriter(p, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if err := w.add(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	var out []Entry
	if err := readManifest(filepath.Dir(p), func(e *Entry) error { out = append(out, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, out) {
		t.Errorf("read back %+v\nwant %+v", out, in)
	}

	// Read lazily and written back, the entries are the same, and parse
	// fills a lazy entry in full.
	m, err := loadManifest(filepath.Dir(p), true)
	if err != nil {
		t.Fatal(err)
	}
	var lazy []Entry
	for _, r := range m.roots {
		lazy = append(lazy, m.entries[r]...)
	}
	if !lazy[0].lazy || lazy[0].Path != in[0].Path || lazy[0].Size != 12 || lazy[0].UID != 0 {
		t.Errorf("lazy entry = %+v, want path and size only", lazy[0])
	}
	p2 := filepath.Join(t.TempDir(), manifestName)
	w2, err := newManifestWriter(p2, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range lazy {
		if err := w2.add(&lazy[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w2.close(); err != nil {
		t.Fatal(err)
	}
	out = nil
	if err := readManifest(filepath.Dir(p2), func(e *Entry) error { out = append(out, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, out) {
		t.Errorf("written back from lazy entries %+v\nwant %+v", out, in)
	}
	e := lazy[0]
	if err := e.parse(); err != nil || e.UID != 33 || e.Hash != in[0].Hash || !e.Changing {
		t.Errorf("parse() = %+v, %v", e, err)
	}
}

func TestPathOrder(t *testing.T) {
	// Pre-order: a directory's contents right after it, before "a.txt".
	got := []string{"a.txt", "a/x", "a", "a/x/y", "a-b", "b"}
	slices.SortFunc(got, pathCompare)
	want := []string{"a", "a/x", "a/x/y", "a-b", "a.txt", "b"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted %v, want %v", got, want)
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add("f\t644\t0\t0\t3\t1\t" + "0000000000000000000000000000000000000000000000000000000000000000" + "\t1\t1\t-\t\"a\"\t\"\"")
	f.Add("d\t755\t0\t0\t0\t0\t-\t0\t0\t-\t\"a/b\"\t\"\"")
	f.Add("l\t777\t0\t0\t0\t0\t-\t0\t0\tc\t\"../x\"\t\"t\"")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseEntry(s)
		if err != nil {
			return
		}
		if !validRel(e.Path) {
			t.Errorf("parseEntry(%q) accepted path %q", s, e.Path)
		}
	})
}

// TestReadManifestV1 reads a manifest written before delta manifests
// existed (testdata/manifest-v1.tsv.zst, by the writer of commit 40e42d1).
func TestReadManifestV1(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "manifest-v1.tsv.zst"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, manifestName), old, 0o600); err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Root: "www", Path: "a", Type: Dir, Mode: 0o755, UID: 33, GID: 33, MtimeNs: 1700000000000000000, Ino: 10, CtimeNs: 1700000000000000001},
		{Root: "www", Path: "a/b c", Type: File, Mode: 0o644 | fs.ModeSetgid, UID: 33, GID: 33, Size: 5, MtimeNs: 1700000000000000002, Hash: [32]byte{0xab, 1}, Ino: 11, CtimeNs: 1700000000000000003},
		{Root: "www", Path: "a/link", Type: Symlink, Mode: 0o777, Target: "b c", Ino: 12},
		{Root: "other", Path: "x\tü", Type: File, Mode: 0o600, Size: 0, Changing: true, Ino: 13},
	}
	var got []Entry
	if err := readManifest(dir, func(e *Entry) error { got = append(got, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("read %+v\nwant %+v", got, want)
	}
}
