package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/internal/control"
)

// conflictFixture is a node's config, state dir with an open conflict log,
// and a sync root holding real files.
type conflictFixture struct {
	cfg   string // the config file
	dir   string // holds the config, the state dir and the sync root
	state string
	root  string // the sync root, www
	log   *conflict.Log
}

func newConflictFixture(t *testing.T) *conflictFixture {
	t.Helper()
	f := &conflictFixture{}
	f.cfg = writeConfig(t, minimalConfig+"[[sync]]\npath = \"$DIR/www\"\n")
	f.dir = filepath.Dir(f.cfg)
	f.state = filepath.Join(f.dir, "state")
	f.root = filepath.Join(f.dir, "www")
	for _, d := range []string{f.state, f.root} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	log, err := conflict.Open(f.state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	f.log = log
	return f
}

func (f *conflictFixture) rootDir(root string) (string, bool) { return f.root, root == f.root }

// write puts content at p (relative to the sync root).
func (f *conflictFixture) write(t testing.TB, p, content string) {
	t.Helper()
	name := filepath.Join(f.root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// read returns the content at p, or "<missing>".
func (f *conflictFixture) read(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.root, filepath.FromSlash(p)))
	if errors.Is(err, os.ErrNotExist) {
		return "<missing>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// add decides local against remote at p as the receiver would, makes the
// files the decision leaves (the winner at p, the loser's copy beside it)
// from the versions' Target (content of a file, or a symlink's target) and
// logs the conflict at the given time.
func (f *conflictFixture) add(t testing.TB, p string, local, remote conflict.Version, at time.Time) conflict.Entry {
	t.Helper()
	d := conflict.Decide(p, local, remote, nil)
	if d.Action != conflict.Conflict {
		t.Fatalf("Decide(%s) = %v, want a conflict", p, d)
	}
	mk := func(name string, v conflict.Version) {
		switch {
		case v.Deleted:
		case v.Type == conflict.TypeSymlink:
			if err := os.Symlink(v.Target, filepath.Join(f.root, name)); err != nil {
				t.Fatal(err)
			}
		case v.Type == conflict.TypeDir:
			if err := os.MkdirAll(filepath.Join(f.root, name), 0o755); err != nil {
				t.Fatal(err)
			}
		default:
			f.write(t, name, content[v.Node+":"+p])
		}
	}
	w := d.Winner.Of(local, remote)
	mk(p, w)
	if d.KeepLoserAs != "" {
		mk(d.KeepLoserAs, d.Winner.Other().Of(local, remote))
	}
	en := conflict.NewEntry(f.root, p, local, remote, d)
	en.Time = at
	en, err := f.log.Append(en)
	if err != nil {
		t.Fatal(err)
	}
	return en
}

// content is what each node's version of a path holds: "node:path".
var content = map[string]string{
	"alpha:docs/report.txt": "alpha's report",
	"beta:docs/report.txt":  "beta's longer report",
	"beta:old.txt":          "beta kept editing this",
	"alpha:b.txt":           "a",
	"beta:b.txt":            "bb",
	"beta:current":          "a file where alpha has a symlink",
}

var (
	t1 = time.Date(2026, 11, 22, 1, 30, 0, 0, time.UTC)
	t2 = time.Date(2026, 11, 22, 2, 30, 0, 0, time.UTC)
)

func vec(node string) conflict.Vector { return conflict.Vector(nil).With(node, 1) }

func fileVersion(node, p string, mtime time.Time) conflict.Version {
	c := content[node+":"+p]
	h := conflict.Hash{1}
	if c != "" {
		h[0] = c[0]
	}
	return conflict.Version{Node: node, Vector: vec(node), Type: conflict.TypeFile, Hash: h, Size: int64(len(c)), Mtime: mtime}
}

// fileConflict: alpha and beta both edited p; beta's is newer and wins,
// alpha's is kept as a copy.
func (f *conflictFixture) fileConflict(t testing.TB, p string, at time.Time) conflict.Entry {
	t.Helper()
	return f.add(t, p, fileVersion("alpha", p, t1), fileVersion("beta", p, t2), at)
}

// deleteConflict: alpha deleted p while beta edited it; beta's wins.
func (f *conflictFixture) deleteConflict(t testing.TB, p string, at time.Time) conflict.Entry {
	t.Helper()
	del := conflict.Version{Node: "alpha", Vector: vec("alpha"), Type: conflict.TypeFile, Deleted: true, Mtime: t2}
	return f.add(t, p, del, fileVersion("beta", p, t1), at)
}

// listFixture holds three conflicts: 1, a file conflict two days ago; 2, a
// delete conflict an hour ago; 3, a file conflict half an hour ago,
// resolved.
func listFixture(t *testing.T, now time.Time) *conflictFixture {
	f := newConflictFixture(t)
	f.fileConflict(t, "docs/report.txt", now.Add(-48*time.Hour))
	f.deleteConflict(t, "old.txt", now.Add(-time.Hour))
	f.fileConflict(t, "b.txt", now.Add(-30*time.Minute))
	if _, err := f.log.MarkResolved("3", "keep beta", now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConflictsList(t *testing.T) {
	now := time.Now()
	f := listFixture(t, now)
	copyName := conflict.ConflictName("docs/report.txt", "alpha", t1, nil)

	code, out, errs := cli(t, "conflicts", "list", "-c", f.cfg)
	if code != exitOK || errs != "" {
		t.Fatalf("conflicts list = %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"ID  TIME", "KIND", "PATH", "WINNER", "LOSER",
		"1   " + now.Add(-48*time.Hour).Local().Format("2006-01-02 15:04:05") + "  file",
		"docs/report.txt", "alpha, kept as " + copyName,
		"old.txt", "delete", "alpha, loser was a delete",
		"2 unresolved.",
		"tandem conflicts show ID -c " + f.cfg,
		"tandem conflicts resolve ID --keep NODE|both -c " + f.cfg,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("conflicts list lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "b.txt") {
		t.Errorf("conflicts list shows the resolved conflict 3:\n%s", out)
	}
	if i, j := strings.Index(out, "docs/report.txt"), strings.Index(out, "old.txt"); i > j {
		t.Errorf("conflicts list is not oldest first:\n%s", out)
	}

	code, out, _ = cli(t, "conflicts", "list", "--all", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "RESOLVED") || !strings.Contains(out, "b.txt") ||
		!strings.Contains(out, "keep beta, "+now.Add(-10*time.Minute).Local().Format("2006-01-02 15:04")) {
		t.Errorf("conflicts list --all = %d, want conflict 3 with its resolution:\n%s", code, out)
	}

	// Flags before the subcommand, and no subcommand at all, work too.
	for _, args := range [][]string{{"conflicts", "-c", f.cfg, "list"}, {"conflicts", "-c", f.cfg}} {
		if code, out2, _ := cli(t, args...); code != exitOK || !strings.Contains(out2, "docs/report.txt") {
			t.Errorf("tandem %s = %d:\n%s", strings.Join(args, " "), code, out2)
		}
	}
}

func TestConflictsListSince(t *testing.T) {
	now := time.Now()
	f := listFixture(t, now)
	for _, tc := range []struct {
		since string
		want  []string // paths listed
	}{
		{now.Add(-2 * time.Hour).Format(time.RFC3339), []string{"old.txt"}},
		{"2h", []string{"old.txt"}},
		{"3d", []string{"docs/report.txt", "old.txt"}},
		{"2000-01-01", []string{"docs/report.txt", "old.txt"}},
		{now.Add(48 * time.Hour).Format(time.DateOnly), nil},
	} {
		code, out, errs := cli(t, "conflicts", "list", "--since", tc.since, "-c", f.cfg)
		if code != exitOK {
			t.Errorf("list --since %s = %d, %q", tc.since, code, errs)
			continue
		}
		for _, p := range []string{"docs/report.txt", "old.txt"} {
			if got, want := strings.Contains(out, p), contains(tc.want, p); got != want {
				t.Errorf("list --since %s: shows %s = %v, want %v:\n%s", tc.since, p, got, want, out)
			}
		}
		if len(tc.want) == 0 && !strings.Contains(out, "no unresolved conflicts since") {
			t.Errorf("list --since %s: %q, want 'no unresolved conflicts since'", tc.since, out)
		}
	}
	if code, _, errs := cli(t, "conflicts", "list", "--since", "yesterday", "-c", f.cfg); code != exitUsage || !strings.Contains(errs, "24h") {
		t.Errorf("list --since yesterday = %d, %q; want %d and the forms it takes", code, errs, exitUsage)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestConflictsListJSON(t *testing.T) {
	f := listFixture(t, time.Now())
	for _, tc := range []struct {
		args []string
		ids  []string
	}{
		{[]string{"conflicts", "list", "--json", "-c", f.cfg}, []string{"1", "2"}},
		{[]string{"conflicts", "--json", "-c", f.cfg}, []string{"1", "2"}},
		{[]string{"conflicts", "list", "--all", "--json", "-c", f.cfg}, []string{"1", "2", "3"}},
		{[]string{"conflicts", "list", "--json", "--since", "1m", "-c", f.cfg}, []string{}},
	} {
		code, out, errs := cli(t, tc.args...)
		var got []conflict.Entry
		if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || got == nil {
			t.Errorf("tandem %s = %d, %v, stderr %q; want a JSON array:\n%s", strings.Join(tc.args, " "), code, err, errs, out)
			continue
		}
		var ids []string
		for _, en := range got {
			ids = append(ids, en.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tc.ids, ",") {
			t.Errorf("tandem %s: ids %v, want %v", strings.Join(tc.args, " "), ids, tc.ids)
		}
	}
	code, out, _ := cli(t, "conflicts", "list", "--all", "--json", "-c", f.cfg)
	for _, key := range []string{`"id": "1"`, `"kind": "file"`, `"root": "` + f.root + `"`, `"path": "docs/report.txt"`,
		`"winner": "beta"`, `"kept_as": "docs/report.conflict-alpha-`, `"vector": {`, `"resolution": {`, `"how": "keep beta"`} {
		if code != exitOK || !strings.Contains(out, key) {
			t.Errorf("list --json lacks %s:\n%s", key, out)
		}
	}
}

func TestConflictsListEmptyAndCorrupt(t *testing.T) {
	f := newConflictFixture(t)
	code, out, errs := cli(t, "conflicts", "list", "-c", f.cfg)
	if code != exitOK || strings.TrimSpace(out) != "no unresolved conflicts" || errs != "" {
		t.Errorf("list of an empty log = %d, %q, %q", code, out, errs)
	}
	f.fileConflict(t, "b.txt", time.Now())
	lf, err := os.OpenFile(filepath.Join(f.state, conflict.LogFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	lf.WriteString("this is not JSON\n")
	lf.Close()
	code, out, errs = cli(t, "conflicts", "list", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "b.txt") || !strings.Contains(errs, "1 unreadable line") {
		t.Errorf("list of a log with a bad line = %d, %q, stderr %q; want the entry and a warning", code, out, errs)
	}
}

func TestConflictsUsage(t *testing.T) {
	f := newConflictFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"conflicts", "lst"}, `unknown subcommand "lst"`},
		{[]string{"conflicts", "--keep", "beta", "list"}, "--keep does not apply to list"},
		{[]string{"conflicts", "list", "--keep", "beta"}, "keep"},
		{[]string{"conflicts", "resolve", "1", "--json"}, "json"},
		{[]string{"conflicts", "show"}, "give one conflict ID"},
		{[]string{"conflicts", "resolve", "1"}, "--keep NODE|both"},
		{[]string{"conflicts", "list", "extra"}, `unexpected argument "extra"`},
	} {
		args := append(tc.args, "-c", f.cfg)
		code, _, errs := cli(t, args...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("tandem %s = %d, %q; want %d and %q", strings.Join(args, " "), code, errs, exitUsage, tc.want)
		}
	}
	_, help, _ := cli(t, "help", "conflicts")
	if code, out, _ := cli(t, "conflicts", "show", "-h"); code != exitOK || out != help {
		t.Errorf("conflicts show -h = %d, want the help of conflicts", code)
	}
	for _, want := range []string{"--all", "--since", "--keep", "--json", "tandem conflicts resolve 12 --keep beta"} {
		if !strings.Contains(help, want) {
			t.Errorf("help conflicts lacks %q", want)
		}
	}
}

func TestConflictsShow(t *testing.T) {
	f := listFixture(t, time.Now())
	copyName := conflict.ConflictName("docs/report.txt", "alpha", t1, nil)
	code, out, errs := cli(t, "conflicts", "show", "1", "-c", f.cfg)
	if code != exitOK {
		t.Fatalf("show 1 = %d, %q", code, errs)
	}
	for _, want := range []string{
		"conflict 1: file conflict, unresolved",
		"sync root  " + f.root,
		"path       " + filepath.Join(f.root, "docs/report.txt"),
		"winner     beta: newer mtime (" + formatMtime(t2) + ", against " + formatMtime(t1) + ")",
		"loser      alpha, kept as " + filepath.Join(f.root, copyName),
		"alpha (this node), lost:", "beta (the peer), won:",
		"size    14 bytes", "size    20 bytes", "vector  {alpha:1}", "vector  {beta:1}",
		"hash    " + conflict.Hash{'a'}.String(),
		"tandem conflicts resolve 1 --keep beta -c " + f.cfg,
		"tandem conflicts resolve 1 --keep alpha -c " + f.cfg,
		"tandem conflicts resolve 1 --keep both -c " + f.cfg,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show 1 lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = cli(t, "conflicts", "show", "2", "-c", f.cfg)
	for _, want := range []string{"a live version beats a delete", "alpha, a delete: nothing to keep", "type    deleted (was a file)",
		"--keep alpha -c " + f.cfg + "   # delete old.txt, as alpha did"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("show 2 lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = cli(t, "conflicts", "show", "3", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "resolved") || !strings.Contains(out, ": keep beta") || strings.Contains(out, "To resolve") {
		t.Errorf("show 3 = %d, want its resolution and no resolve commands:\n%s", code, out)
	}

	code, out, _ = cli(t, "conflicts", "show", "--json", "2", "-c", f.cfg)
	var en conflict.Entry
	if err := json.Unmarshal([]byte(out), &en); code != exitOK || err != nil || en.ID != "2" || en.Kind != conflict.KindDelete || en.KeptAs != "" {
		t.Errorf("show --json 2 = %d, %+v, %v", code, en, err)
	}

	if code, _, errs := cli(t, "conflicts", "show", "99", "-c", f.cfg); code != exitFailure || !strings.Contains(errs, "no such conflict") {
		t.Errorf("show 99 = %d, %q; want %d and 'no such conflict'", code, errs, exitFailure)
	}
}

func TestConflictsWhyWon(t *testing.T) {
	file := func(node string, mtime time.Time) conflict.Version {
		return conflict.Version{Node: node, Type: conflict.TypeFile, Mtime: mtime}
	}
	for _, tc := range []struct {
		name          string
		winner, loser conflict.Version
		want          string
	}{
		{"newer", file("alpha", t2), file("beta", t1), "newer mtime ("},
		{"node name", file("beta", t1), file("alpha", t1), `same mtime, greater node name ("beta" after "alpha")`},
		{"delete", file("alpha", t1), conflict.Version{Node: "beta", Deleted: true, Mtime: t2}, "a live version beats a delete"},
		{"dir", conflict.Version{Node: "alpha", Type: conflict.TypeDir, Mtime: t1}, file("beta", t2), "a directory beats a file"},
		{"dir over symlink", conflict.Version{Node: "alpha", Type: conflict.TypeDir}, conflict.Version{Node: "beta", Type: conflict.TypeSymlink}, "a directory beats a symlink"},
		{"against the rules", file("alpha", t1), file("beta", t2), "the rules would pick beta's version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := whyWon(tc.winner, tc.loser); !strings.Contains(got, tc.want) {
				t.Errorf("whyWon(%+v, %+v) = %q, want %q", tc.winner, tc.loser, got, tc.want)
			}
		})
	}
}

func TestConflictsParseSince(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-20T08:00:00Z", time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)},
		{"2026-11-20T08:00:00+01:00", time.Date(2026, 11, 20, 7, 0, 0, 0, time.UTC)},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"24h", now.Add(-24 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
	} {
		if got, err := parseSince(tc.in, now); err != nil || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "yesterday", "-1h", "d", "2026-13-01", "1.5d"} {
		if got, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) = %v, want an error", in, got)
		}
	}
}

func TestResolveConflict(t *testing.T) {
	const (
		report = "docs/report.txt"
		now    = "2026-11-23T10:00:00Z"
	)
	copyName := conflict.ConflictName(report, "alpha", t1, nil)
	at, _ := time.Parse(time.RFC3339, now)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *conflictFixture) // makes conflict 1 and changes the files
		keep  string
		// want: a substring of the sentence, or of the error when wantErr.
		want    string
		wantErr bool
		// files: path -> content ("<missing>", "-> target" for a symlink)
		// afterwards.
		files map[string]string
	}{
		{
			name:  "keep winner deletes the copy",
			setup: func(t *testing.T, f *conflictFixture) { f.fileConflict(t, report, t2) },
			keep:  "beta", want: "deleted the conflict copy",
			files: map[string]string{report: "beta's longer report", copyName: "<missing>"},
		},
		{
			name: "keep winner when the copy is gone",
			setup: func(t *testing.T, f *conflictFixture) {
				f.fileConflict(t, report, t2)
				os.Remove(filepath.Join(f.root, copyName))
			},
			keep: "beta", want: "was already gone",
			files: map[string]string{report: "beta's longer report", copyName: "<missing>"},
		},
		{
			name: "keep winner refuses to delete an edited copy",
			setup: func(t *testing.T, f *conflictFixture) {
				f.fileConflict(t, report, t2)
				f.write(t, copyName, "alpha's report, edited since")
			},
			keep: "beta", want: "has changed", wantErr: true,
			files: map[string]string{report: "beta's longer report", copyName: "alpha's report, edited since"},
		},
		{
			name:  "keep loser moves the copy back",
			setup: func(t *testing.T, f *conflictFixture) { f.fileConflict(t, report, t2) },
			keep:  "alpha", want: "Put alpha's version back at",
			files: map[string]string{report: "alpha's report", copyName: "<missing>"},
		},
		{
			name: "keep loser, a symlink, moves the link back",
			setup: func(t *testing.T, f *conflictFixture) {
				f.add(t, "current",
					conflict.Version{Node: "alpha", Vector: vec("alpha"), Type: conflict.TypeSymlink, Target: "releases/7", Mtime: t1},
					fileVersion("beta", "current", t2), t2)
			},
			keep: "alpha", want: "Put alpha's version back",
			files: map[string]string{"current": "-> releases/7", conflict.ConflictName("current", "alpha", t1, nil): "<missing>"},
		},
		{
			name: "keep loser refuses when the path is now a directory",
			setup: func(t *testing.T, f *conflictFixture) {
				f.fileConflict(t, report, t2)
				os.Remove(filepath.Join(f.root, report))
				os.Mkdir(filepath.Join(f.root, report), 0o755)
			},
			keep: "alpha", want: "is now a directory", wantErr: true,
			files: map[string]string{copyName: "alpha's report"},
		},
		{
			name: "keep loser refuses when the copy is gone",
			setup: func(t *testing.T, f *conflictFixture) {
				f.fileConflict(t, report, t2)
				os.Remove(filepath.Join(f.root, copyName))
			},
			keep: "alpha", want: "is gone", wantErr: true,
			files: map[string]string{report: "beta's longer report"},
		},
		{
			name:  "keep loser of a delete deletes the path",
			setup: func(t *testing.T, f *conflictFixture) { f.deleteConflict(t, "old.txt", t2) },
			keep:  "alpha", want: "Deleted ",
			files: map[string]string{"old.txt": "<missing>"},
		},
		{
			name: "keep loser of a delete refuses a directory",
			setup: func(t *testing.T, f *conflictFixture) {
				f.add(t, "assets",
					conflict.Version{Node: "alpha", Vector: vec("alpha"), Deleted: true, Mtime: t2},
					conflict.Version{Node: "beta", Vector: vec("beta"), Type: conflict.TypeDir, Mtime: t1}, t2)
				f.write(t, "assets/logo.svg", "<svg/>")
			},
			keep: "alpha", want: "is a directory", wantErr: true,
			files: map[string]string{"assets/logo.svg": "<svg/>"},
		},
		{
			name:  "keep winner of a delete changes nothing",
			setup: func(t *testing.T, f *conflictFixture) { f.deleteConflict(t, "old.txt", t2) },
			keep:  "beta", want: "alpha's delete is dropped",
			files: map[string]string{"old.txt": "beta kept editing this"},
		},
		{
			name:  "both leaves the files",
			setup: func(t *testing.T, f *conflictFixture) { f.fileConflict(t, report, t2) },
			keep:  "both", want: "Left both as they are",
			files: map[string]string{report: "beta's longer report", copyName: "alpha's report"},
		},
		{
			name:  "unknown node",
			setup: func(t *testing.T, f *conflictFixture) { f.fileConflict(t, report, t2) },
			keep:  "gamma", want: `--keep "gamma": conflict 1 is between alpha and beta`, wantErr: true,
			files: map[string]string{report: "beta's longer report", copyName: "alpha's report"},
		},
		{
			name: "path with .. is refused",
			setup: func(t *testing.T, f *conflictFixture) {
				outside := filepath.Join(f.dir, "escape.conflict-alpha-20261122-013000.txt")
				if err := os.WriteFile(outside, []byte("not yours"), 0o644); err != nil {
					t.Fatal(err)
				}
				tampered(t, f, "../escape.txt", "../escape.conflict-alpha-20261122-013000.txt")
			},
			keep: "beta", want: "tampered", wantErr: true,
			files: map[string]string{"../escape.conflict-alpha-20261122-013000.txt": "not yours"},
		},
		{
			name: "absolute kept_as is refused",
			setup: func(t *testing.T, f *conflictFixture) {
				tampered(t, f, "a.txt", "/etc/a.conflict-alpha-20261122-013000.txt")
			},
			keep: "beta", want: "absolute", wantErr: true,
		},
		{
			name: "kept_as that is not a copy beside the path is refused",
			setup: func(t *testing.T, f *conflictFixture) {
				f.write(t, "index.php", "precious")
				tampered(t, f, "a.txt", "index.php")
			},
			keep: "beta", want: "not a conflict copy's name", wantErr: true,
			files: map[string]string{"index.php": "precious"},
		},
		{
			name: "entry of another root is refused",
			setup: func(t *testing.T, f *conflictFixture) {
				en := conflict.Entry{Kind: conflict.KindFile, Root: "/srv/elsewhere", Path: "a.txt", Winner: "beta",
					Local: fileVersion("alpha", "a.txt", t1), Remote: fileVersion("beta", "a.txt", t2)}
				if _, err := f.log.Append(en); err != nil {
					t.Fatal(err)
				}
			},
			keep: "beta", want: "not a sync root of this node", wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newConflictFixture(t)
			tc.setup(t, f)
			done, err := resolveConflict(f.log, f.rootDir, "1", tc.keep, at)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("resolveConflict(1, %s) = %q, %v; want an error with %q", tc.keep, done, err, tc.want)
				}
				if en, _ := f.log.Get("1"); en.Resolution != nil {
					t.Errorf("conflict 1 resolved (%+v) although resolveConflict failed", en.Resolution)
				}
			} else {
				if err != nil || !strings.Contains(done, tc.want) {
					t.Fatalf("resolveConflict(1, %s) = %q, %v; want %q", tc.keep, done, err, tc.want)
				}
				en, err := f.log.Get("1")
				if err != nil || en.Resolution == nil || en.Resolution.How != "keep "+tc.keep || !en.Resolution.At.Equal(at) {
					t.Errorf("after resolving, conflict 1 = %+v, %v; want resolved %q at %v", en.Resolution, err, "keep "+tc.keep, at)
				}
			}
			for p, want := range tc.files {
				got := f.read(t, p)
				if target, err := os.Readlink(filepath.Join(f.root, p)); err == nil {
					got = "-> " + target
				}
				if got != want {
					t.Errorf("%s holds %q, want %q", p, got, want)
				}
			}
		})
	}
}

// tampered logs a conflict whose paths are as given, as if someone had
// edited the log.
func tampered(t *testing.T, f *conflictFixture, p, keptAs string) {
	t.Helper()
	en := conflict.Entry{Kind: conflict.KindFile, Root: f.root, Path: p, KeptAs: keptAs, Winner: "beta",
		Local: fileVersion("alpha", p, t1), Remote: fileVersion("beta", p, t2)}
	if _, err := f.log.Append(en); err != nil {
		t.Fatal(err)
	}
}

func TestResolveConflictTwiceAndUnknown(t *testing.T) {
	f := newConflictFixture(t)
	f.fileConflict(t, "b.txt", t2)
	if _, err := resolveConflict(f.log, f.rootDir, "1", "both", t2); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveConflict(f.log, f.rootDir, "1", "beta", t2); !errors.Is(err, conflict.ErrResolved) || !strings.Contains(err.Error(), "keep both") {
		t.Errorf("resolving again = %v, want ErrResolved saying how it was", err)
	}
	if _, err := resolveConflict(f.log, f.rootDir, "7", "beta", t2); !errors.Is(err, conflict.ErrNotFound) {
		t.Errorf("resolving conflict 7 = %v, want ErrNotFound", err)
	}
}

func TestConflictsResolveRoute(t *testing.T) {
	f := newConflictFixture(t)
	f.fileConflict(t, "b.txt", t2)
	mux := http.NewServeMux()
	conflictRoutes(mux, f.log, f.rootDir)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"id": "1", "keep": "gamma"}`, http.StatusBadRequest, "between alpha and beta"},
		{`{"id": "1"`, http.StatusBadRequest, "bad request body"},
		{`{"id": "1", "keep": "beta", "force": true}`, http.StatusBadRequest, "force"},
		{`{"id": "1"}`, http.StatusBadRequest, "what to keep"},
		{`{"id": "9", "keep": "beta"}`, http.StatusNotFound, "no such conflict"},
		{`{"id": "1", "keep": "alpha"}`, http.StatusOK, "Put alpha's version back"},
		{`{"id": "1", "keep": "alpha"}`, http.StatusConflict, "already resolved"},
	} {
		resp, err := http.Post(srv.URL+"/conflicts/resolve", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		msg := got["done"] + got["error"]
		if resp.StatusCode != tc.code || err != nil || !strings.Contains(msg, tc.want) {
			t.Errorf("POST %s = %d %v, %v; want %d with %q", tc.body, resp.StatusCode, got, err, tc.code, tc.want)
		}
	}
	if got := f.read(t, "b.txt"); got != "a" {
		t.Errorf("b.txt holds %q after keeping alpha, want %q", got, "a")
	}
}

func TestConflictsResolveThroughTheDaemon(t *testing.T) {
	f := newConflictFixture(t)
	f.fileConflict(t, "b.txt", t2)
	if code, _, errs := cli(t, "conflicts", "resolve", "1", "--keep", "beta", "-c", f.cfg); code != exitNotRunning || !strings.Contains(errs, "not running") {
		t.Errorf("resolve without a daemon = %d, %q; want %d", code, errs, exitNotRunning)
	}

	ln, err := control.Listen(control.SocketPath(f.state))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	conflictRoutes(mux, f.log, f.rootDir)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- control.Serve(ctx, ln, mux) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve = %v", err)
		}
	}()

	code, out, errs := cli(t, "conflicts", "resolve", "1", "--keep", "beta", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, "Kept beta's version of "+filepath.Join(f.root, "b.txt")) {
		t.Errorf("resolve 1 --keep beta = %d, %q, stderr %q", code, out, errs)
	}
	code, _, errs = cli(t, "conflicts", "-c", f.cfg, "resolve", "--keep", "beta", "1")
	if code != exitFailure || !strings.Contains(errs, "already resolved") {
		t.Errorf("resolving again = %d, %q; want %d and 'already resolved'", code, errs, exitFailure)
	}
}

func TestConflictsSyncRootDirs(t *testing.T) {
	f := newConflictFixture(t)
	cfg, err := LoadConfig(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	rootDir := syncRootDirs(cfg)
	if dir, ok := rootDir(f.root + "/"); !ok || dir != f.root {
		t.Errorf("rootDir(%s/) = %q, %v; want %q, true", f.root, dir, ok, f.root)
	}
	for _, root := range []string{"", "/", f.dir, f.root + "/sub", "site"} {
		if dir, ok := rootDir(root); ok {
			t.Errorf("rootDir(%q) = %q, true; want false", root, dir)
		}
	}
}

// The replica logs a tree by its ID: its name when it has one.
func TestConflictsNamedSyncRoot(t *testing.T) {
	f := newConflictFixture(t)
	if err := os.WriteFile(f.cfg, []byte(strings.ReplaceAll(minimalConfig+"[[sync]]\nname = \"site\"\npath = \"$DIR/www\"\n", "$DIR", f.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	local, remote := fileVersion("alpha", "b.txt", t1), fileVersion("beta", "b.txt", t2)
	d := conflict.Decide("b.txt", local, remote, nil)
	f.write(t, "b.txt", "bb")
	f.write(t, d.KeepLoserAs, "a")
	if _, err := f.log.Append(conflict.NewEntry("site", "b.txt", local, remote, d)); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cli(t, "conflicts", "show", "1", "-c", f.cfg)
	for _, want := range []string{"sync root  site (" + f.root + ")", "path       " + filepath.Join(f.root, "b.txt"),
		"kept as " + filepath.Join(f.root, d.KeepLoserAs)} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("show of a conflict in a named tree lacks %q:\n%s", want, out)
		}
	}
	if _, err := resolveConflict(f.log, syncRootDirs(cfg), "1", "alpha", t2); err != nil || f.read(t, "b.txt") != "a" {
		t.Errorf("resolving in a named tree = %v; b.txt holds %q, want %q", err, f.read(t, "b.txt"), "a")
	}
}

func TestConflictsRowConflict(t *testing.T) {
	f := newConflictFixture(t)
	row := &conflict.Row{Schema: "shop", Table: "orders", Key: json.RawMessage(`{"id":7}`),
		Before: json.RawMessage(`{"id":7,"state":"new"}`), After: json.RawMessage(`{"id":7,"state":"paid"}`),
		Current: json.RawMessage(`{"id":7,"state":"cancelled"}`)}
	if _, err := f.log.Append(conflict.Entry{Kind: conflict.KindRow, Row: row}); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cli(t, "conflicts", "list", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, `row   shop.orders {"id":7}`) {
		t.Errorf("list with a row conflict = %d:\n%s", code, out)
	}
	code, out, _ = cli(t, "conflicts", "show", "1", "-c", f.cfg)
	if code != exitOK || !strings.Contains(out, `"state":"cancelled"`) || !strings.Contains(out, "--keep both") || strings.Contains(out, "--keep beta") {
		t.Errorf("show of a row conflict = %d:\n%s", code, out)
	}
	if _, err := resolveConflict(f.log, f.rootDir, "1", "beta", t2); resolveStatus(err) != http.StatusBadRequest {
		t.Errorf("resolving a row conflict with --keep beta = %v (status %d), want a refusal (400)", err, resolveStatus(err))
	}
	if done, err := resolveConflict(f.log, f.rootDir, "1", "both", t2); err != nil || !strings.Contains(done, "nothing was changed") {
		t.Errorf("resolving a row conflict with --keep both = %q, %v", done, err)
	}
}
