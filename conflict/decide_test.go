package conflict

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/*.txt")

// TestScripts runs the decision scenarios in testdata/*.txt. The format:
//
//	# a comment
//	decide path=dir/a.txt [taken=name,name]
//	local  node=alpha vector=alpha:2,beta:1 type=file content=WORD [size=N] mtime=01:30:00 [target=T] [deleted]
//	remote node=beta  ...
//	----
//	expected output (up to the next blank line)
//
// content=WORD stands for a file whose hash is SHA-256(WORD) and whose size
// is len(WORD) unless size= says otherwise. mtime=HH:MM:SS[.frac] is on
// 2026-11-22 UTC; a full RFC 3339 time is also accepted. vector=- is the
// empty vector. Every case is also decided the other way round (as the peer
// would) and must agree; see checkSymmetry. go test -run TestScripts -update
// rewrites the expected output.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	var out []string
	for i := 0; i < len(lines); {
		ln := lines[i]
		if strings.TrimSpace(ln) == "" || strings.HasPrefix(ln, "#") {
			out = append(out, ln)
			i++
			continue
		}
		start := i
		var input []string
		for i < len(lines) && lines[i] != "----" {
			input = append(input, lines[i])
			i++
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: case without ----", file, start+1)
		}
		out = append(out, input...)
		out = append(out, "----")
		i++
		var want []string
		for i < len(lines) && strings.TrimSpace(lines[i]) != "" {
			want = append(want, lines[i])
			i++
		}
		got, err := runCase(t, input)
		if err != nil {
			t.Fatalf("%s:%d: %v", file, start+1, err)
		}
		out = append(out, got...)
		if !*update && !slices.Equal(got, want) {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, start+1, input[0],
				strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if *update {
		if err := os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runCase(t *testing.T, input []string) ([]string, error) {
	t.Helper()
	cmd, args := splitArgs(input[0])
	if cmd != "decide" {
		return nil, fmt.Errorf("unknown command %q", cmd)
	}
	var path string
	var taken func(string) bool
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "path":
			path = v
		case "taken":
			names := strings.Split(v, ",")
			taken = func(n string) bool { return slices.Contains(names, n) }
		default:
			return nil, fmt.Errorf("decide: unknown argument %q", a)
		}
	}
	var local, remote Version
	var haveLocal, haveRemote bool
	for _, ln := range input[1:] {
		side, args := splitArgs(ln)
		v, err := parseVersion(args)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", side, err)
		}
		switch side {
		case "local":
			local, haveLocal = v, true
		case "remote":
			remote, haveRemote = v, true
		default:
			return nil, fmt.Errorf("want local or remote, got %q", side)
		}
	}
	if !haveLocal || !haveRemote {
		return nil, fmt.Errorf("decide needs a local and a remote line")
	}
	d := Decide(path, local, remote, taken)
	checkSymmetry(t, path, local, remote, taken)
	return formatDecision(d, local, remote), nil
}

func formatDecision(d Decision, local, remote Version) []string {
	action := d.Action.String()
	if d.Kind != "" {
		action += " (" + string(d.Kind) + ")"
	}
	out := []string{
		"action: " + action,
		fmt.Sprintf("winner: %v (%s)", d.Winner, d.Winner.Of(local, remote).Node),
		"merged: " + d.Merged.String(),
	}
	if d.KeepLoserAs != "" {
		out = append(out, fmt.Sprintf("keep: %s %v", d.KeepLoserAs, d.CopyVector))
	}
	return out
}

func splitArgs(s string) (string, []string) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return "", nil
	}
	return f[0], f[1:]
}

func parseVersion(args []string) (Version, error) {
	var v Version
	var content *string
	size := int64(-1)
	for _, a := range args {
		k, val, _ := strings.Cut(a, "=")
		var err error
		switch k {
		case "node":
			v.Node = val
		case "vector":
			v.Vector, err = parseVector(val)
		case "type":
			err = v.Type.UnmarshalText([]byte(val))
		case "deleted":
			v.Deleted = true
		case "content":
			content = &val
			v.Hash = sha256.Sum256([]byte(val))
		case "size":
			size, err = strconv.ParseInt(val, 10, 64)
		case "mtime":
			v.Mtime, err = parseTime(val)
		case "target":
			v.Target = val
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			return Version{}, err
		}
	}
	switch {
	case size >= 0:
		v.Size = size
	case content != nil:
		v.Size = int64(len(*content))
	}
	return v, nil
}

func parseVector(s string) (Vector, error) {
	var v Vector
	if s == "-" {
		return v, nil
	}
	for _, kv := range strings.Split(s, ",") {
		node, n, ok := strings.Cut(kv, ":")
		value, err := strconv.ParseUint(n, 10, 64)
		if !ok || err != nil || v.Get(node) != 0 {
			return nil, fmt.Errorf("bad vector %q", s)
		}
		v = v.With(node, value)
	}
	return v, nil
}

func parseTime(s string) (time.Time, error) {
	if !strings.Contains(s, "T") {
		s = "2026-11-22T" + s + "Z"
	}
	return time.Parse(time.RFC3339Nano, s)
}

// checkSymmetry decides a pair on both nodes, a's (where a is local) and
// b's (where b is local), and fails unless they agree on everything that
// must be identical for the nodes to converge: the action pairing, the
// winning version, the merged vector, the copy's name and vector, the kind.
func checkSymmetry(t testing.TB, path string, a, b Version, taken func(string) bool) {
	t.Helper()
	da := Decide(path, a, b, taken)
	db := Decide(path, b, a, taken)
	fail := func(what string) {
		t.Helper()
		t.Fatalf("Decide(%q, %+v, %+v) = %v on %s but Decide the other way = %v on %s: %s differs",
			path, a, b, da, a.Node, db, b.Node, what)
	}
	pair := map[Action]Action{Apply: Ignore, Ignore: Apply, Conflict: Conflict, Merge: Merge}
	if db.Action != pair[da.Action] && !(da.Action == Ignore && db.Action == Ignore && a.Vector.Compare(b.Vector) == Equal) {
		fail("action")
	}
	// With equal vectors each node keeps its own version (the same one,
	// unless an index is broken); otherwise both pick the same version.
	if a.Vector.Compare(b.Vector) != Equal && !reflect.DeepEqual(da.Winner.Of(a, b), db.Winner.Of(b, a)) {
		fail("winner")
	}
	if !slices.Equal(da.Merged, db.Merged) {
		fail("merged vector")
	}
	if da.KeepLoserAs != db.KeepLoserAs || !slices.Equal(da.CopyVector, db.CopyVector) {
		fail("kept copy")
	}
	if da.Kind != db.Kind {
		fail("kind")
	}
	for _, v := range []Vector{a.Vector, b.Vector} {
		if c := da.Merged.Compare(v); c != Greater && c != Equal {
			t.Fatalf("Decide(%q, %+v, %+v).Merged = %v does not dominate %v", path, a, b, da.Merged, v)
		}
	}
	// After acting, both nodes hold the winner under Merged: the next
	// exchange must be a no-op on both.
	w := da.Winner.Of(a, b)
	w.Vector = da.Merged
	wa, wb := w, w
	wa.Node, wb.Node = a.Node, b.Node
	if d := Decide(path, wa, wb, taken); d.Action != Ignore {
		t.Fatalf("after resolving %+v vs %+v, Decide(resolved, resolved) = %v, want ignore", a, b, d)
	}
}

func TestSymmetryRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	base := time.Date(2026, 11, 22, 1, 30, 0, 0, time.UTC)
	random := func(node string) Version {
		v := Version{Node: node}
		for _, n := range []string{"alpha", "beta"} {
			if rng.Intn(3) > 0 {
				v.Vector = v.Vector.With(n, uint64(rng.Intn(3)))
			}
		}
		v.Type = Type(rng.Intn(4)) // including TypeUnknown
		v.Deleted = rng.Intn(4) == 0
		switch v.Type {
		case TypeSymlink:
			v.Target = []string{"a", "b"}[rng.Intn(2)]
		case TypeFile, TypeUnknown:
			v.Hash[0] = byte(rng.Intn(2))
			v.Size = int64(rng.Intn(2))
		}
		v.Mtime = base.Add(time.Duration(rng.Intn(3)) * time.Second)
		return v
	}
	takenSets := []func(string) bool{
		nil,
		func(n string) bool { return !strings.Contains(n, "-3") },
	}
	for i := 0; i < 10000; i++ {
		a, b := random("alpha"), random("beta")
		taken := takenSets[rng.Intn(len(takenSets))]
		checkSymmetry(t, "dir/f.txt", a, b, taken)

		d := Decide("dir/f.txt", a, b, taken)
		if d.Action == Conflict && a.Deleted != b.Deleted {
			if w := d.Winner.Of(a, b); w.Deleted {
				t.Fatalf("Decide(%+v, %+v) = %v: a delete won over a change", a, b, d)
			}
			if d.KeepLoserAs != "" {
				t.Fatalf("Decide(%+v, %+v) = %v: kept a copy of a delete", a, b, d)
			}
		}
		if d.Action == Conflict && !a.Deleted && !b.Deleted && (a.Type == TypeDir) != (b.Type == TypeDir) {
			if w := d.Winner.Of(a, b); w.Type != TypeDir {
				t.Fatalf("Decide(%+v, %+v) = %v: a file won over a directory", a, b, d)
			}
		}
		if d.Action == Conflict && d.KeepLoserAs == "" && !d.Winner.Other().Of(a, b).Deleted {
			t.Fatalf("Decide(%+v, %+v) = %v: live loser not kept", a, b, d)
		}
	}
}

func TestDecideDoesNotAlias(t *testing.T) {
	a := Version{Node: "alpha", Vector: vec("alpha", 2), Hash: Hash{1}}
	b := Version{Node: "beta", Vector: vec("alpha", 1, "beta", 1), Hash: Hash{2}}
	d := Decide("f", a, b, nil)
	if d.Action != Conflict {
		t.Fatalf("Decide = %v, want conflict", d)
	}
	d.Merged[0].Value = 99
	d.CopyVector[0].Value = 99
	if a.Vector.Get("alpha") != 2 || b.Vector.Get("alpha") != 1 {
		t.Errorf("changing the decision's vectors changed the inputs: %v %v", a.Vector, b.Vector)
	}
}

func TestScriptsParse(t *testing.T) {
	// Guard the test helper itself: a typo in a script must not pass.
	for _, bad := range []string{"node=a vector=a:x", "colour=red", "type=fifo", "mtime=yesterday"} {
		if _, err := parseVersion(strings.Fields(bad)); err == nil {
			t.Errorf("parseVersion(%q) succeeded, want an error", bad)
		}
	}
}
