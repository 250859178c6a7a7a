package conflict

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var nameTime = time.Date(2026, 11, 22, 1, 30, 0, 0, time.UTC)

func TestConflictName(t *testing.T) {
	tests := []struct {
		path, node string
		t          time.Time
		taken      []string
		want       string
	}{
		{"dir/report.txt", "beta", nameTime, nil, "dir/report.conflict-beta-20261122-013000.txt"},
		{"report.txt", "beta", nameTime, nil, "report.conflict-beta-20261122-013000.txt"},
		{"Makefile", "beta", nameTime, nil, "Makefile.conflict-beta-20261122-013000"},
		{".htaccess", "beta", nameTime, nil, ".htaccess.conflict-beta-20261122-013000"},
		{"..foo", "beta", nameTime, nil, "..foo.conflict-beta-20261122-013000"},
		{".bashrc.bak", "beta", nameTime, nil, ".bashrc.conflict-beta-20261122-013000.bak"},
		{"a.tar.gz", "beta", nameTime, nil, "a.tar.conflict-beta-20261122-013000.gz"},
		{"trailing.", "beta", nameTime, nil, "trailing..conflict-beta-20261122-013000"},
		{"a/b.c/d", "beta", nameTime, nil, "a/b.c/d.conflict-beta-20261122-013000"},
		{"x.txt", "a/b", nameTime, nil, "x.conflict-a_b-20261122-013000.txt"},
		// Local times are written in UTC, to the second.
		{"x.txt", "beta", time.Date(2026, 11, 22, 3, 30, 0, 999e6, time.FixedZone("EET", 2*3600)), nil, "x.conflict-beta-20261122-013000.txt"},
		{"x.txt", "beta", nameTime, []string{"x.conflict-beta-20261122-013000.txt"}, "x.conflict-beta-20261122-013000-2.txt"},
		{"d/x", "beta", nameTime, []string{"d/x.conflict-beta-20261122-013000", "d/x.conflict-beta-20261122-013000-2"}, "d/x.conflict-beta-20261122-013000-3"},
	}
	for _, tt := range tests {
		taken := func(n string) bool {
			for _, s := range tt.taken {
				if s == n {
					return true
				}
			}
			return false
		}
		if got := ConflictName(tt.path, tt.node, tt.t, taken); got != tt.want {
			t.Errorf("ConflictName(%q, %q, %v, %q) = %q, want %q", tt.path, tt.node, tt.t, tt.taken, got, tt.want)
		}
	}
}

func TestConflictNameGivesUp(t *testing.T) {
	calls := 0
	got := ConflictName("x.txt", "beta", nameTime, func(string) bool { calls++; return true })
	if calls != maxCandidates-1 || !strings.HasSuffix(got, "-1000.txt") {
		t.Errorf("ConflictName with every name taken = %q after %d calls, want the %dth candidate", got, calls, maxCandidates)
	}
}

func TestConflictNameLong(t *testing.T) {
	for _, base := range []string{
		strings.Repeat("é", 127) + ".txt", // 254 bytes + .txt would not fit
		strings.Repeat("a", 255),
		"a." + strings.Repeat("x", 250), // an extension too long to keep apart
	} {
		got := ConflictName("dir/"+base, "beta", nameTime, nil)
		name := strings.TrimPrefix(got, "dir/")
		if len(name) > maxNameBytes || !utf8.ValidString(name) || !IsConflictName(got) {
			t.Errorf("ConflictName(%d-byte name) = %q (%d bytes, valid UTF-8 %v, conflict name %v)",
				len(base), name, len(name), utf8.ValidString(name), IsConflictName(got))
		}
	}
}

func TestParseConflictName(t *testing.T) {
	tests := []struct {
		name, orig, node string
		ok               bool
	}{
		{"dir/report.conflict-beta-20261122-013000.txt", "dir/report.txt", "beta", true},
		{"Makefile.conflict-beta-20261122-013000", "Makefile", "beta", true},
		{".htaccess.conflict-beta-20261122-013000", ".htaccess", "beta", true},
		{"a.tar.conflict-beta-20261122-013000.gz", "a.tar.gz", "beta", true},
		{"x.conflict-beta-20261122-013000-2.txt", "x.txt", "beta", true},
		{"x.conflict-web-1-20261122-013000.txt", "x.txt", "web-1", true},
		// A copy of a copy names the copy it was made from.
		{"r.conflict-a-20261122-013000.conflict-b-20261123-000000.txt", "r.conflict-a-20261122-013000.txt", "b", true},
		{"report.txt", "", "", false},
		{"report.conflict-beta.txt", "", "", false},
		{"report.conflict-beta-20261122.txt", "", "", false},
		{"report.conflict-beta-20261399-013000.txt", "", "", false}, // no 99th of the 13th month
		{"report.conflict--20261122-013000.txt", "", "", false},
		{".conflict-beta-20261122-013000", "", "", false},
		{"x.conflict-beta-20261122-013000-1.txt", "", "", false},
		{"x.conflict-beta-20261122-013000-02.txt", "", "", false},
		{"dir.conflict-beta-20261122-013000/inside.txt", "", "", false},
	}
	for _, tt := range tests {
		orig, node, _, ok := ParseConflictName(tt.name)
		if ok != tt.ok || orig != tt.orig || node != tt.node {
			t.Errorf("ParseConflictName(%q) = %q, %q, %v; want %q, %q, %v", tt.name, orig, node, ok, tt.orig, tt.node, tt.ok)
		}
		if IsConflictName(tt.name) != tt.ok {
			t.Errorf("IsConflictName(%q) = %v, want %v", tt.name, !tt.ok, tt.ok)
		}
	}
}

// FuzzConflictName checks that every copy name is recognised, stays in its
// directory, and names its original back.
func FuzzConflictName(f *testing.F) {
	for _, s := range []string{"report.txt", "a.tar.gz", ".htaccess", "Makefile", "..foo", "x.", "d/e.f/g", "é.ü"} {
		f.Add(s, "beta", int64(1795397400), 1)
	}
	f.Fuzz(func(t *testing.T, p, node string, unix int64, taken int) {
		dir, base := splitDir(p)
		if base == "" || base == "." || base == ".." || strings.ContainsRune(node, '.') || node == "" ||
			unix < 0 || unix > 253402300799 || IsConflictName(p) || len(base) > 200 || len(node) > 20 {
			t.Skip()
		}
		tm := time.Unix(unix, 0)
		got := ConflictName(p, node, tm, func(string) bool { taken--; return taken > 0 })
		gotDir, _ := splitDir(got)
		if gotDir != dir {
			t.Fatalf("ConflictName(%q) = %q: left its directory", p, got)
		}
		orig, gotNode, gotTime, ok := ParseConflictName(got)
		if !ok {
			t.Fatalf("ConflictName(%q, %q) = %q, not recognised by ParseConflictName", p, node, got)
		}
		if want := strings.ReplaceAll(strings.ReplaceAll(node, "/", "_"), "\x00", "_"); gotNode != want {
			t.Fatalf("ParseConflictName(%q) node = %q, want %q", got, gotNode, want)
		}
		if !gotTime.Equal(tm.UTC()) {
			t.Fatalf("ParseConflictName(%q) time = %v, want %v", got, gotTime, tm.UTC())
		}
		if _, ext := splitExt(base); !strings.ContainsRune(ext, '-') && orig != p {
			t.Fatalf("ParseConflictName(ConflictName(%q)) original = %q", p, orig)
		}
	})
}

func splitDir(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	return p[:i+1], p[i+1:]
}
