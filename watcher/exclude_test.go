package watcher

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestExcludes(t *testing.T) {
	patterns := []string{
		"# a comment, then a blank line",
		"",
		"*.tmp",
		"cache/",
		"/build",
		"!keep.tmp",
		"a/**/b",
		"logs/*.log",
		"trailing-space   ",
	}
	e, err := compileExcludes(patterns)
	if err != nil {
		t.Fatalf("compileExcludes(%q): %v", patterns, err)
	}
	tests := []struct {
		rel   string
		isDir bool
		want  bool
	}{
		{"", true, false},
		{"index.html", false, false},
		{"a.tmp", false, true},
		{"dir/a.tmp", false, true},
		{"a.tmp", true, true},
		{"keep.tmp", false, false},
		{"dir/keep.tmp", false, false},
		{"x.tmp/keep.tmp", false, true}, // git: no re-including inside an excluded directory
		{"cache", true, true},
		{"cache", false, false}, // "cache/" is for directories only
		{"cache/x", false, true},
		{"cache/deep/x", true, true},
		{"sub/cache", true, true},
		{"sub/cache/x", false, true},
		{"build", false, true},
		{"build", true, true},
		{"build/x", false, true},
		{"sub/build", true, false}, // "/build" is anchored at the root
		{"sub/build/x", false, false},
		{"a/b", false, true},
		{"a/x/y/b", false, true},
		{"c/a/b", false, false},
		{"logs/x.log", false, true},
		{"logs/sub/x.log", false, false},
		{"x.log", false, false},
		{"trailing-space", false, true},
		{"#x", false, false},
		{TempPrefix + "123", false, true},
		{"dir/" + TempPrefix + "abc", false, true},
		{TempPrefix + "d/x", false, true},
		{"x" + TempPrefix, false, false},
	}
	for _, tt := range tests {
		if got := e.match(tt.rel, tt.isDir); got != tt.want {
			t.Errorf("match(%q, isDir=%v) = %v, want %v", tt.rel, tt.isDir, got, tt.want)
		}
	}
}

func TestExcludesNone(t *testing.T) {
	e, err := compileExcludes(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"a", "a/b.tmp", "cache/x"} {
		if e.match(rel, false) {
			t.Errorf("match(%q) with no patterns = true, want false", rel)
		}
	}
	if !e.match("d/"+TempPrefix+"x", false) {
		t.Errorf("match(temp file) with no patterns = false, want true")
	}
}

func TestExcludesBadPattern(t *testing.T) {
	for _, p := range []string{"[a-", "dir/[", "!\\", "x/[]]/"} {
		_, err := compileExcludes([]string{"*.tmp", p})
		if !errors.Is(err, filepath.ErrBadPattern) {
			t.Errorf("compileExcludes(%q) error = %v, want ErrBadPattern", p, err)
		} else if !strings.Contains(err.Error(), p) {
			t.Errorf("compileExcludes(%q) error %q does not name the pattern", p, err)
		}
	}
}

// FuzzExclude compiles arbitrary pattern lists and matches arbitrary paths:
// nothing may panic, and for well-formed paths the walker's shortcut
// (matchLast, which assumes the parent is not excluded) must agree with the
// full rule, and an excluded directory must exclude what is inside it.
func FuzzExclude(f *testing.F) {
	f.Add("*.tmp\ncache/\n/build\n!keep.tmp", "cache/x/keep.tmp", false)
	f.Add("a/**/b\n**/c\n\\#x", "a/q/b", true)
	f.Add("[a-\n", "a", false)
	f.Add("!\n/\n**\n***/**", "x/y", true)
	f.Add("*.tmp", TempPrefix+"x/y", false)
	f.Add("  \n# c\n\\!x\n[!a]*/", "", true)
	f.Fuzz(func(t *testing.T, patterns, rel string, isDir bool) {
		e, err := compileExcludes(strings.Split(patterns, "\n"))
		if err != nil {
			return
		}
		got := e.match(rel, isDir)
		if e.match(rel, isDir) != got {
			t.Fatalf("match(%q, %v) is not deterministic", rel, isDir)
		}
		if rel == "" || !fs.ValidPath(rel) || rel == "." {
			return
		}
		parts := strings.Split(rel, "/")
		if parent := parentOf(rel); !e.match(parent, true) {
			if last := e.matchLast(parts, isDir); last != got {
				t.Fatalf("patterns %q: matchLast(%q, %v) = %v, match = %v", patterns, rel, isDir, last, got)
			}
		}
		if e.match(rel, true) && !e.match(rel+"/x", false) {
			t.Fatalf("patterns %q: directory %q excluded but %q inside it not", patterns, rel, rel+"/x")
		}
		if strings.HasPrefix(parts[len(parts)-1], TempPrefix) && !got {
			t.Fatalf("temp path %q not excluded", rel)
		}
	})
}
