package snapshot

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ownManifest decodes snapshot id's own manifest file (not resolved).
func ownManifest(tb testing.TB, s *Store, id string) *manifestPart {
	tb.Helper()
	text, _, err := readManifestFile(filepath.Join(s.Path(id), manifestName))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := decodeManifest(text, false)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// manifestPaths lists "root/path" of every entry of id's resolved manifest.
func manifestPaths(tb testing.TB, s *Store, id string) []string {
	tb.Helper()
	var got []string
	if err := s.Manifest(id, func(e *Entry) error {
		got = append(got, e.Root+"/"+e.Path)
		return nil
	}); err != nil {
		tb.Fatalf("Manifest(%s): %v", id, err)
	}
	return got
}

// treePaths lists "root/path" of everything in id's copy of each root, in
// manifest order.
func treePaths(tb testing.TB, s *Store, id string, roots ...string) []string {
	tb.Helper()
	var got []string
	for _, r := range roots {
		dir := s.RootPath(id, r)
		var ps []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			ps = append(ps, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		slices.SortFunc(ps, pathCompare)
		for _, p := range ps {
			got = append(got, r+"/"+p)
		}
	}
	return got
}

// checkSnapshot says what is wrong with snapshot id: its manifest must
// list exactly what its tree holds, and verify must find nothing wrong.
func checkSnapshot(tb testing.TB, s *Store, id string, roots ...string) {
	tb.Helper()
	if got, want := manifestPaths(tb, s, id), treePaths(tb, s, id, roots...); !slices.Equal(got, want) {
		tb.Errorf("manifest of %s lists\n%v\nits tree holds\n%v", id, got, want)
	}
	if bad := verifyAll(tb, s, id); len(bad) != 0 {
		tb.Errorf("Verify(%s) = %v, want nothing wrong", id, bad)
	}
}

// TestDeltaManifests: after the first snapshot, manifests hold only what
// changed (adds, changes, deletions, a directory replaced by a file), read
// back in full, with and without the index, and stay readable when the
// snapshots they were built on are pruned.
func TestDeltaManifests(t *testing.T) {
	for _, withIndex := range []bool{true, false} {
		t.Run(fmt.Sprintf("index=%v", withIndex), func(t *testing.T) {
			lt := newLiveTree(t, map[string]string{
				"a.txt": "a", "a-b": "ab", "a/x": "x", "a/y/z": "z",
				"b/1": "1", "b/2": "2", "c/keep": "keep",
			})
			opts := lt.opts()
			if !withIndex {
				opts.Index = nil
			}
			take := func() Info {
				t.Helper()
				lt.scan()
				lt.clock = lt.clock.Add(time.Hour)
				info, err := lt.store.Take(context.Background(), opts)
				if err != nil {
					t.Fatalf("Take: %v", err)
				}
				checkSnapshot(t, lt.store, info.ID, "www")
				return info
			}
			first := take()
			if p := ownManifest(t, lt.store, first.ID).parent; p != "" {
				t.Errorf("first snapshot's manifest is a delta against %q, want it full", p)
			}

			lt.write("a/x", "x2")         // changed
			lt.write("a/new", "new")      // added
			os.Remove(lt.path("b/1"))     // deleted
			os.RemoveAll(lt.path("a/y"))  // a directory deleted
			lt.write("d/e/f", "deep new") // new directories
			second := take()
			own := ownManifest(t, lt.store, second.ID)
			if own.parent != first.ID {
				t.Fatalf("second snapshot's manifest parent = %q, want %q (a delta)", own.parent, first.ID)
			}
			// Directories whose mtime moved are listed too.
			var lines []string
			for _, e := range own.entries["www"] {
				if e.Type != Dir {
					lines = append(lines, string(e.Type)+" "+e.Path)
				}
			}
			want := []string{"f a/new", "f a/x", "- a/y", "- a/y/z", "- b/1", "f d/e/f"}
			if !slices.Equal(lines, want) {
				t.Errorf("second snapshot's delta = %q, want %q", lines, want)
			}

			os.RemoveAll(lt.path("b"))
			lt.write("b", "b is a file now")
			third := take()
			if p := ownManifest(t, lt.store, third.ID).parent; p != second.ID {
				t.Errorf("third snapshot's manifest parent = %q, want %q", p, second.ID)
			}

			// Prune the first two: the third's manifest chain goes through
			// their manifests, which its own directory keeps as links.
			for _, id := range []string{first.ID, second.ID} {
				if err := removeAll(lt.store.Path(id)); err != nil {
					t.Fatal(err)
				}
			}
			checkSnapshot(t, lt.store, third.ID, "www")
			if got, want := manifestPaths(t, lt.store, third.ID), []string{
				"www/a", "www/a/new", "www/a/x", "www/a-b", "www/a.txt", "www/b", "www/c", "www/c/keep", "www/d", "www/d/e", "www/d/e/f",
			}; !slices.Equal(got, want) {
				t.Errorf("third snapshot's manifest after pruning = %v, want %v", got, want)
			}
			// And the next snapshot builds on it.
			lt.write("c/keep", "changed at last")
			fourth := take()
			if fourth.Totals.Copied != 1 {
				t.Errorf("fourth snapshot copied %d files, want 1", fourth.Totals.Copied)
			}
		})
	}
}

// TestDeltaManifestRoots: a root added or dropped between snapshots is
// added or dropped in the resolved manifest.
func TestDeltaManifestRoots(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"w": "w"})
	other := filepath.Join(t.TempDir(), "other")
	if err := os.MkdirAll(filepath.Join(other, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "sub", "o"), []byte("o"), 0o644); err != nil {
		t.Fatal(err)
	}
	take := func(roots ...Root) Info {
		t.Helper()
		lt.clock = lt.clock.Add(time.Hour)
		info, err := lt.store.Take(context.Background(), TakeOptions{Roots: roots, Now: func() time.Time { return lt.clock }})
		if err != nil {
			t.Fatalf("Take: %v", err)
		}
		return info
	}
	www := Root{Name: "www", Dir: lt.dir}
	oth := Root{Name: "other", Dir: other}
	s1 := take(www)
	s2 := take(www, oth)
	checkSnapshot(t, lt.store, s2.ID, "www", "other")
	s3 := take(oth)
	checkSnapshot(t, lt.store, s3.ID, "other")
	s4 := take(oth, www)
	checkSnapshot(t, lt.store, s4.ID, "other", "www")
	for _, id := range []string{s2.ID, s3.ID, s4.ID} {
		if p := ownManifest(t, lt.store, id).parent; p == "" {
			t.Errorf("snapshot %s's manifest is full, want a delta", id)
		}
	}
	// s4's www is new again after s3 dropped it: nothing of s1's www is
	// inherited through the chain but what s4 itself lists.
	if got := ownManifest(t, lt.store, s4.ID).entries["www"]; len(got) != 1 || got[0].Path != "w" {
		t.Errorf("s4's delta for the re-added root = %+v, want its one file", got)
	}
	_ = s1
}

// TestManifestChainEnds: after manifestChainMax deltas the next snapshot
// writes a full manifest, and every snapshot's directory holds exactly the
// chain it needs.
func TestManifestChainEnds(t *testing.T) {
	// Enough files that the deltas (a line each) stay far below half the
	// full manifest.
	files := map[string]string{"a": "0"}
	for i := range 400 {
		files[fmt.Sprintf("big/f%03d", i)] = fmt.Sprint(i)
	}
	lt := newLiveTree(t, files)
	var infos []Info
	for i := 0; i <= manifestChainMax+1; i++ {
		lt.write("a", fmt.Sprint(i))
		lt.scan()
		infos = append(infos, lt.take())
	}
	for i, info := range infos {
		own := ownManifest(t, lt.store, info.ID)
		wantFull := i == 0 || i == manifestChainMax
		if full := own.parent == ""; full != wantFull {
			t.Errorf("snapshot %d: full manifest = %v, want %v", i, full, wantFull)
		}
		links, _ := filepath.Glob(filepath.Join(lt.store.Path(info.ID), "manifest-*"))
		m, err := loadManifest(lt.store.Path(info.ID), false)
		if err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		if len(links) != len(m.chain)-1 {
			t.Errorf("snapshot %d: %d manifest links, the chain has %d parents", i, len(links), len(m.chain)-1)
		}
		ents := m.entries["www"]
		if len(ents) != len(files)+1 || ents[0].Path != "a" || ents[0].Size != int64(len(fmt.Sprint(i))) {
			t.Errorf("snapshot %d: manifest has %d entries, first %+v", i, len(ents), ents[0])
		}
	}
	checkSnapshot(t, lt.store, infos[len(infos)-1].ID, "www")
}

// TestParallelLinks: across many directories, some with more files than
// one batch of links, unchanged files share the previous snapshot's inode
// and changed ones do not.
func TestParallelLinks(t *testing.T) {
	files := map[string]string{}
	for d := 0; d < 12; d++ {
		n := 5
		if d%4 == 0 {
			n = 2*linkBatch + 7
		}
		for f := 0; f < n; f++ {
			files[fmt.Sprintf("d%02d/f%03d", d, f)] = fmt.Sprint(d, f)
		}
	}
	lt := newLiveTree(t, files)
	first := lt.take()
	changed := map[string]bool{}
	for p := range files {
		if len(changed) < 40 {
			changed[p] = true
			lt.write(p, "changed "+p)
		}
	}
	lt.scan()
	second := lt.take()
	if second.Totals.Copied != int64(len(changed)) || second.Totals.Linked != int64(len(files)-len(changed)) {
		t.Errorf("second totals = %+v, want %d copied, %d linked", second.Totals, len(changed), len(files)-len(changed))
	}
	for p := range files {
		a, b := inode(t, lt.snapPath(first.ID, p)), inode(t, lt.snapPath(second.ID, p))
		if changed[p] && a == b {
			t.Errorf("changed %s shares inode %d with the previous snapshot", p, a)
		}
		if !changed[p] && a != b {
			t.Errorf("unchanged %s: inode %d, %d in the previous snapshot; want a hard link", p, b, a)
		}
	}
	checkSnapshot(t, lt.store, second.ID, "www")
}

func TestManifestWriterOrder(t *testing.T) {
	w, err := newManifestWriter(filepath.Join(t.TempDir(), manifestName), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.abort()
	for _, e := range []Entry{{Root: "r", Path: "a", Type: Dir}, {Root: "r", Path: "a/b", Type: File}} {
		if err := w.add(&e); err != nil {
			t.Fatalf("add(%s) = %v", e.Path, err)
		}
	}
	for _, e := range []Entry{{Root: "r", Path: "a", Type: File}, {Root: "r", Path: "a-b", Type: File}} {
		e := e
		err := w.add(&e)
		if e.Path == "a" && err == nil {
			t.Errorf("add(%q) after a/b = nil, want an order error", e.Path)
		}
		if e.Path == "a-b" && err != nil {
			t.Errorf("add(%q) after a/b = %v", e.Path, err)
		}
	}
}

func TestResolveManifest(t *testing.T) {
	f := func(root, p string) Entry { return Entry{Root: root, Path: p, Type: File, Size: 1} }
	g := func(root, p string) Entry { return Entry{Root: root, Path: p, Type: File, Size: 2} }
	del := func(root, p string) Entry { return Entry{Root: root, Path: p, Type: deleted} }
	part := func(parent string, ents ...Entry) *manifestPart {
		m := &manifestPart{parent: parent, entries: map[string][]Entry{}}
		for _, e := range ents {
			if _, ok := m.entries[e.Root]; !ok {
				m.roots = append(m.roots, e.Root)
				m.entries[e.Root] = []Entry{}
			}
			if e.Path != "" {
				m.entries[e.Root] = append(m.entries[e.Root], e)
			}
		}
		return m
	}
	id := "2026-11-22T030000Z"
	tests := []struct {
		name  string
		parts []*manifestPart
		want  []Entry
	}{
		{"full only", []*manifestPart{part("", f("r", "a"), f("r", "b"))}, []Entry{f("r", "a"), f("r", "b")}},
		{"change, add, delete", []*manifestPart{
			part("", f("r", "a"), f("r", "b"), f("r", "c")),
			part(id, g("r", "a"), del("r", "b"), f("r", "b/x"), f("r", "d")),
		}, []Entry{g("r", "a"), f("r", "b/x"), f("r", "c"), f("r", "d")}},
		{"newer delta wins", []*manifestPart{
			part("", f("r", "a")),
			part(id, del("r", "a")),
			part(id, g("r", "a")),
		}, []Entry{g("r", "a")}},
		{"root dropped then added", []*manifestPart{
			part("", f("r", "a"), f("s", "b")),
			part(id, Entry{Root: "s"}),
			part(id, f("r", "z"), Entry{Root: "s"}),
		}, []Entry{f("r", "z"), f("s", "b")}},
		{"root kept without changes", []*manifestPart{
			part("", f("r", "a"), f("s", "b")),
			part(id, Entry{Root: "s"}, Entry{Root: "r"}),
		}, []Entry{f("s", "b"), f("r", "a")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roots, ents := resolveManifest(tt.parts)
			var got []Entry
			for _, r := range roots {
				got = append(got, ents[r]...)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("resolveManifest = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzDecodeManifest(f *testing.F) {
	f.Add("R\t\"www\"\nd\t755\t0\t0\t0\t0\t-\t0\t0\t-\t\"a\"\t\"\"\n", "P\t\"2026-11-22T030000Z\"\nR\t\"www\"\n-\t\"a\"\nl\t777\t0\t0\t0\t0\t-\t0\t0\tc\t\"b\"\t\"t\"\n")
	f.Add("R\t\"www\"\nf\t644\t0\t0\t3\t1\t"+strings.Repeat("0", 64)+"\t1\t1\t-\t\"a\"\t\"\"\n", "P\t\"2026-11-22T030000Z\"\nR\t\"x\"\n")
	f.Fuzz(func(t *testing.T, full, delta string) {
		var parts []*manifestPart
		for _, text := range []string{full, delta} {
			for _, lazy := range []bool{false, true} {
				m, err := decodeManifest(text, lazy)
				if err != nil {
					return
				}
				for _, ents := range m.entries {
					for _, e := range ents {
						if !validRel(e.Path) {
							t.Fatalf("decodeManifest(%q) accepted path %q", text, e.Path)
						}
						if e.Type == deleted && m.parent == "" {
							t.Fatalf("decodeManifest(%q): a deletion in a full manifest", text)
						}
					}
				}
				if !lazy {
					parts = append(parts, m)
				}
			}
		}
		if parts[0].parent != "" || parts[1].parent == "" {
			return
		}
		_, ents := resolveManifest(parts)
		for _, es := range ents {
			for _, e := range es {
				if e.Type == deleted {
					t.Fatalf("resolved manifest holds a deletion of %q", e.Path)
				}
			}
		}
	})
}
