package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// treeOf reads a directory tree as path -> content ("dir" for directories,
// "-> target" for symlinks) plus modes.
func treeOf(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm().String()
		switch {
		case fi.IsDir():
			out[rel] = "dir " + mode
		case fi.Mode()&os.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			out[rel] = "-> " + t
		default:
			b, _ := os.ReadFile(p)
			out[rel] = string(b) + " " + mode + " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestRestore(t *testing.T) {
	lt := newLiveTree(t, map[string]string{
		"index.php":          "<?php old",
		"uploads/2026/a.jpg": "JPEG a",
		"uploads/2026/b.jpg": "JPEG b",
		"uploads/readme":     "keep me",
	})
	os.Symlink("2026/a.jpg", lt.path("uploads/latest"))
	os.Chmod(lt.path("uploads/2026/b.jpg"), 0o640)
	lt.scan()
	before := treeOf(t, lt.dir)
	old := lt.take()

	// Someone edits a file and deletes a directory.
	lt.write("index.php", "<?php new")
	if err := os.RemoveAll(lt.path("uploads")); err != nil {
		t.Fatal(err)
	}
	lt.scan()
	lt.take()

	ctx := context.Background()
	t.Run("file refuses to overwrite without force", func(t *testing.T) {
		_, err := lt.store.Restore(ctx, RestoreOptions{ID: old.ID, Root: "www", Path: "index.php", To: lt.path("index.php")})
		if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--force") {
			t.Errorf("Restore over an existing file = %v, want ErrExists mentioning --force", err)
		}
		if got := readFile(t, lt.path("index.php")); got != "<?php new" {
			t.Errorf("live index.php = %q after a refused restore", got)
		}
	})
	t.Run("file with force, into the live tree", func(t *testing.T) {
		res, err := lt.store.Restore(ctx, RestoreOptions{ID: old.ID, Root: "www", Path: "index.php", To: lt.path("index.php"), Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Files != 1 || res.Replaced != 1 {
			t.Errorf("Restore = %+v, want 1 file replaced", res)
		}
		if got := treeOf(t, lt.dir)["index.php"]; got != before["index.php"] {
			t.Errorf("restored index.php = %q, want %q", got, before["index.php"])
		}
		// No temp file left, and the snapshot's copy is not the live file.
		ents, _ := os.ReadDir(lt.dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tandem-tmp-") {
				t.Errorf("temp file %s left behind", e.Name())
			}
		}
		if inode(t, lt.path("index.php")) == inode(t, lt.snapPath(old.ID, "index.php")) {
			t.Errorf("restored file is a link to the snapshot's copy: a write to it would change the snapshot")
		}
	})
	t.Run("deleted directory, into the live tree", func(t *testing.T) {
		res, err := lt.store.Restore(ctx, RestoreOptions{ID: old.ID, Root: "www", Path: "uploads", To: lt.path("uploads")})
		if err != nil {
			t.Fatal(err)
		}
		if res.Files != 3 || res.Dirs != 2 || res.Symlinks != 1 {
			t.Errorf("Restore(uploads) = %+v, want 3 files, 2 dirs, 1 symlink", res)
		}
		after := treeOf(t, lt.dir)
		for p, want := range before {
			if strings.HasPrefix(p, "uploads") && after[p] != want {
				t.Errorf("restored %s = %q, want %q", p, after[p], want)
			}
		}
	})
	t.Run("whole tree elsewhere", func(t *testing.T) {
		to := filepath.Join(t.TempDir(), "restored")
		if _, err := lt.store.Restore(ctx, RestoreOptions{ID: old.ID, Root: "www", To: to}); err != nil {
			t.Fatal(err)
		}
		got := treeOf(t, to)
		if !mapsEqual(got, before) {
			t.Errorf("restored tree:\n%v\nwant:\n%v", got, before)
		}
	})
	t.Run("by time", func(t *testing.T) {
		info, err := lt.store.Find(old.Time.Add(30 * time.Minute).Format(time.RFC3339))
		if err != nil || info.ID != old.ID {
			t.Errorf("Find(30 minutes after %s) = %s, %v", old.ID, info.ID, err)
		}
		if _, err := lt.store.Find(old.Time.Add(-time.Minute).Format(time.RFC3339)); !errors.Is(err, ErrNotFound) {
			t.Errorf("Find(before every snapshot) = %v, want ErrNotFound", err)
		}
	})
	t.Run("a corrupted copy is not restored", func(t *testing.T) {
		p := lt.snapPath(old.ID, "uploads/readme")
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, []byte("KEEP ME"), 0o644); err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(t.TempDir(), "readme")
		_, err := lt.store.Restore(ctx, RestoreOptions{ID: old.ID, Root: "www", Path: "uploads/readme", To: to})
		if err == nil || !strings.Contains(err.Error(), "corrupted") {
			t.Errorf("Restore of a corrupted copy = %v, want an error saying corrupted", err)
		}
		if _, err := os.Stat(to); !os.IsNotExist(err) {
			t.Errorf("corrupted copy was written: %v", err)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		_, err := lt.store.Restore(ctx, RestoreOptions{ID: old.ID, Root: "www", Path: "nope", To: filepath.Join(t.TempDir(), "x")})
		if err == nil || !strings.Contains(err.Error(), "not in snapshot") {
			t.Errorf("Restore(nope) = %v", err)
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
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

func TestVerifyFindsCorruptedAndMissing(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"a.txt": "alpha", "b/c.txt": "charlie", "b/d.txt": "delta", "e": "echo"})
	s := lt.take()
	if bad := verifyAll(t, lt.store, s.ID); len(bad) != 0 {
		t.Fatalf("fresh snapshot: %v", bad)
	}
	// Same size, different bytes: only the hash can tell.
	corrupt := lt.snapPath(s.ID, "b/c.txt")
	os.Chmod(corrupt, 0o644)
	if err := os.WriteFile(corrupt, []byte("CHARLIE"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(lt.snapPath(s.ID, "e")); err != nil {
		t.Fatal(err)
	}
	bad := verifyAll(t, lt.store, s.ID)
	var got []string
	for _, p := range bad {
		got = append(got, p.Kind+" "+p.Path)
	}
	slices.Sort(got)
	want := []string{"corrupted www/b/c.txt", "missing www/e"}
	if !slices.Equal(got, want) {
		t.Errorf("Verify = %v, want %v", got, want)
	}
	// A sample still checks presence of every path.
	res, err := lt.store.Verify(context.Background(), s.ID, VerifyOptions{SamplePercent: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 5 || len(res.Problems) == 0 || res.Problems[0].Path != "www/e" && res.Problems[len(res.Problems)-1].Path != "www/e" {
		t.Errorf("sampled Verify = %+v, want all 5 entries checked and www/e missing", res)
	}
}

func TestSampler(t *testing.T) {
	pick := sampler(VerifyOptions{SamplePercent: 10, Seed: 7})
	n := 0
	for i := range 10000 {
		if pick(strings.Repeat("x", i%50) + string(rune('a'+i%26)) + string(rune(i))) {
			n++
		}
	}
	if n < 800 || n > 1200 {
		t.Errorf("10%% sample picked %d of 10000", n)
	}
}
