package main

// The file torture test: two real daemons, a fault proxy between them, a
// seeded random workload on both sides and random faults (partitions,
// resets, latency spikes, SIGKILL and restart of either or both daemons).
// At the end it heals everything, waits for quiescence and checks that
// nothing was lost. A short run is part of `make test`; `make torture` runs
// a long one. A failing run prints its seed; -torture.seed=N replays it.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/conflict"
)

var (
	tortureSeed = flag.Uint64("torture.seed", 0, "seed of the file torture test (0: pick one)")
	tortureOps  = flag.Int("torture.ops", 400, "operations per side in the file torture test")
)

// entry is what the model says one path holds.
type entry struct {
	kind   byte // 'f' file, 'd' dir, 'l' symlink
	data   []byte
	mode   fs.FileMode
	target string
}

// model is one side's view of the paths only it writes.
type model map[string]*entry

// tortureSide is one node's workload: it writes under its own directory
// (only it does, so the final tree there must equal its model exactly) and
// into shared files during partitions (where conflicts happen).
type tortureSide struct {
	name  string
	root  string // the node's synced tree
	own   string // "alpha" or "beta": its own directory under the root
	model model
	// shared maps a shared file to the last content this side wrote there
	// (nil after this side deleted it).
	shared map[string][]byte
	rng    *rand.Rand
	ops    map[string]int
	burst  int
}

func (s *tortureSide) abs(rel string) string { return filepath.Join(s.root, filepath.FromSlash(rel)) }

// dirs lists the model's directories (and the side's own root).
func (s *tortureSide) dirs() []string {
	out := []string{s.own}
	for p, e := range s.model {
		if e.kind == 'd' {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (s *tortureSide) files() []string {
	var out []string
	for p, e := range s.model {
		if e.kind == 'f' {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func pick[T any](r *rand.Rand, list []T) T { return list[r.IntN(len(list))] }

func (s *tortureSide) content(large bool) []byte {
	n := s.rng.IntN(8 << 10)
	switch {
	case large:
		n = 1<<20 + s.rng.IntN(3<<20)
	case s.rng.IntN(10) == 0:
		n = s.rng.IntN(300 << 10)
	case s.rng.IntN(20) == 0:
		n = 0
	}
	return s.bytes(n)
}

func (s *tortureSide) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	return b
}

func (s *tortureSide) must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s workload: %v", s.name, err)
	}
}

// step does one random operation on the side's own tree.
func (s *tortureSide) step(t *testing.T) {
	t.Helper()
	files := s.files()
	op := s.rng.IntN(100)
	switch {
	case op < 30 || len(files) == 0: // create or overwrite
		p := path.Join(pick(s.rng, s.dirs()), fmt.Sprintf("f%d.dat", s.rng.IntN(12)))
		if e := s.model[p]; e != nil && e.kind != 'f' {
			return
		}
		data := s.content(s.rng.IntN(60) == 0)
		s.must(t, os.WriteFile(s.abs(p), data, 0o644))
		mode := fs.FileMode(0o644)
		if e := s.model[p]; e != nil {
			mode = e.mode // an overwrite keeps the mode
		}
		s.model[p] = &entry{kind: 'f', data: data, mode: mode}
		s.ops["write"]++
	case op < 38: // append
		p := pick(s.rng, files)
		add := s.bytes(s.rng.IntN(2000))
		f, err := os.OpenFile(s.abs(p), os.O_WRONLY|os.O_APPEND, 0)
		s.must(t, err)
		_, err = f.Write(add)
		s.must(t, err)
		s.must(t, f.Close())
		s.model[p].data = append(slices.Clip(s.model[p].data), add...)
		s.ops["append"]++
	case op < 43: // truncate
		p := pick(s.rng, files)
		n := 0
		if l := len(s.model[p].data); l > 0 {
			n = s.rng.IntN(l)
		}
		s.must(t, os.Truncate(s.abs(p), int64(n)))
		s.model[p].data = s.model[p].data[:n:n]
		s.ops["truncate"]++
	case op < 51: // in-place edit
		p := pick(s.rng, files)
		e := s.model[p]
		if len(e.data) == 0 {
			return
		}
		off := s.rng.IntN(len(e.data))
		patch := s.bytes(min(s.rng.IntN(64)+1, len(e.data)-off))
		if len(patch) == 0 {
			return
		}
		f, err := os.OpenFile(s.abs(p), os.O_WRONLY, 0)
		s.must(t, err)
		_, err = f.WriteAt(patch, int64(off))
		s.must(t, err)
		s.must(t, f.Close())
		data := slices.Clone(e.data)
		copy(data[off:], patch)
		e.data = data
		s.ops["edit"]++
	case op < 58: // rename or move a file
		from := pick(s.rng, files)
		to := path.Join(pick(s.rng, s.dirs()), fmt.Sprintf("m%d.dat", s.rng.IntN(12)))
		if to == from || (s.model[to] != nil && s.model[to].kind != 'f') {
			return
		}
		s.must(t, os.Rename(s.abs(from), s.abs(to)))
		s.model[to] = s.model[from]
		delete(s.model, from)
		s.ops["rename"]++
	case op < 65: // delete a file
		p := pick(s.rng, files)
		s.must(t, os.Remove(s.abs(p)))
		delete(s.model, p)
		s.ops["delete"]++
	case op < 72: // mkdir
		p := path.Join(pick(s.rng, s.dirs()), fmt.Sprintf("d%d", s.rng.IntN(6)))
		if s.model[p] != nil || strings.Count(p, "/") > 4 {
			return
		}
		s.must(t, os.Mkdir(s.abs(p), 0o755))
		s.model[p] = &entry{kind: 'd', mode: fs.ModeDir | 0o755}
		s.ops["mkdir"]++
	case op < 76: // rename a directory
		dirs := s.dirs()[1:]
		if len(dirs) == 0 {
			return
		}
		from := pick(s.rng, dirs)
		parent := pick(s.rng, s.dirs())
		to := path.Join(parent, fmt.Sprintf("r%d", s.rng.IntN(6)))
		if s.model[to] != nil || to == from || strings.HasPrefix(parent+"/", from+"/") || strings.Count(to, "/") > 5 {
			return
		}
		s.must(t, os.Rename(s.abs(from), s.abs(to)))
		for p, e := range s.model {
			if p == from || strings.HasPrefix(p, from+"/") {
				delete(s.model, p)
				s.model[to+strings.TrimPrefix(p, from)] = e
			}
		}
		s.ops["rename-dir"]++
	case op < 80: // remove a directory with everything in it
		dirs := s.dirs()[1:]
		if len(dirs) == 0 {
			return
		}
		d := pick(s.rng, dirs)
		s.must(t, os.RemoveAll(s.abs(d)))
		for p := range s.model {
			if p == d || strings.HasPrefix(p, d+"/") {
				delete(s.model, p)
			}
		}
		s.ops["rmdir"]++
	case op < 85: // symlink
		p := path.Join(pick(s.rng, s.dirs()), fmt.Sprintf("l%d", s.rng.IntN(4)))
		if s.model[p] != nil {
			return
		}
		target := pick(s.rng, []string{"f1.dat", "../elsewhere", "d0/f2.dat", "missing"})
		s.must(t, os.Symlink(target, s.abs(p)))
		s.model[p] = &entry{kind: 'l', target: target, mode: fs.ModeSymlink | 0o777}
		s.ops["symlink"]++
	case op < 91: // chmod
		p := pick(s.rng, files)
		mode := pick(s.rng, []fs.FileMode{0o600, 0o644, 0o755, 0o640})
		s.must(t, os.Chmod(s.abs(p), mode))
		s.model[p].mode = mode
		s.ops["chmod"]++
	case op < 93: // a burst of small files in a new directory
		s.burst++
		d := path.Join(s.own, fmt.Sprintf("burst%d", s.burst))
		s.must(t, os.Mkdir(s.abs(d), 0o755))
		s.model[d] = &entry{kind: 'd', mode: fs.ModeDir | 0o755}
		n := 200 + s.rng.IntN(300)
		if testing.Short() {
			n = 50
		}
		for i := range n {
			p := path.Join(d, fmt.Sprintf("b%04d.txt", i))
			data := []byte(fmt.Sprintf("%s burst %d file %d %x\n", s.name, s.burst, i, s.rng.Uint64()))
			s.must(t, os.WriteFile(s.abs(p), data, 0o644))
			s.model[p] = &entry{kind: 'f', data: data, mode: 0o644}
		}
		s.ops["burst-files"] += n
	default: // a large file
		p := path.Join(pick(s.rng, s.dirs()), fmt.Sprintf("big%d.bin", s.rng.IntN(3)))
		if e := s.model[p]; e != nil && e.kind != 'f' {
			return
		}
		data := s.content(true)
		s.must(t, os.WriteFile(s.abs(p), data, 0o644))
		mode := fs.FileMode(0o644)
		if e := s.model[p]; e != nil {
			mode = e.mode // an overwrite keeps the mode
		}
		s.model[p] = &entry{kind: 'f', data: data, mode: mode}
		s.ops["large"]++
	}
}

// sharedWrite writes or deletes one of the files both sides write during a
// partition.
func (s *tortureSide) sharedWrite(t *testing.T, name string) {
	p := path.Join("shared", name)
	if s.rng.IntN(6) == 0 {
		if err := os.Remove(s.abs(p)); err == nil {
			s.shared[p] = nil
			s.ops["shared-delete"]++
		}
		return
	}
	data := []byte(fmt.Sprintf("%s wrote %s: %x\n", s.name, name, s.rng.Uint64()))
	s.must(t, os.WriteFile(s.abs(p), data, 0o644))
	s.shared[p] = data
	s.ops["shared-write"]++
}

// digest describes a tree: path -> type, mode and content hash or target.
func digest(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted by the receiver while we walk: the next poll sees
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tandem-tmp-") {
			out[filepath.ToSlash(rel)] = "TEMP FILE"
			return nil
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" %d %s", len(b), hex.EncodeToString(sum[:8]))
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func describe(e *entry) string {
	switch e.kind {
	case 'd':
		return e.mode.String()
	case 'l':
		return e.mode.String() + " -> " + e.target
	}
	sum := sha256.Sum256(e.data)
	return fmt.Sprintf("%s %d %s", e.mode.String(), len(e.data), hex.EncodeToString(sum[:8]))
}

func TestTortureFiles(t *testing.T) {
	seed := *tortureSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("torture seed %d (replay with -torture.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ops := *tortureOps
	if testing.Short() {
		ops = 120
	}

	fp := startFilePair(t, 2*time.Millisecond)
	sides := [2]*tortureSide{}
	for i, own := range []string{"alpha", "beta"} {
		sides[i] = &tortureSide{name: own, root: fp.dirs[i], own: own, model: model{}, shared: map[string][]byte{},
			rng: rand.New(rand.NewPCG(seed, uint64(i+2))), ops: map[string]int{}}
		if err := os.MkdirAll(filepath.Join(fp.dirs[i], own), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(fp.dirs[i], "shared"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fp.start(t)

	faults := map[string]int{}
	running := [2]bool{true, true}
	ensureRunning := func() {
		for i := range running {
			if !running[i] {
				fp.procs[i] = startDaemon(t, fp.nodes[i])
				running[i] = true
			}
		}
	}
	partition := 0
	for done := 0; done < ops; {
		// A stretch of ordinary work on both sides, interleaved.
		n := 10 + rng.IntN(40)
		for range n {
			sides[rng.IntN(2)].step(t)
			done++
		}
		switch f := rng.IntN(10); {
		case f < 3: // partition, with concurrent writes to shared files
			partition++
			for _, p := range fp.proxies {
				p.Blackhole(true)
			}
			for i, nd := range fp.nodes {
				if running[i] {
					waitPeer(t, nd, "link down in the partition", func(p PeerStatus) bool { return !p.Connected })
				}
			}
			names := []string{}
			for k := range 4 {
				names = append(names, fmt.Sprintf("p%d-%d.txt", partition, k))
			}
			for range 10 + rng.IntN(20) {
				s := sides[rng.IntN(2)]
				if rng.IntN(3) == 0 {
					s.sharedWrite(t, pick(rng, names))
				} else {
					s.step(t)
					done++
				}
			}
			for _, p := range fp.proxies {
				p.Blackhole(false)
			}
			faults["partition"]++
		case f < 5: // connection resets
			for _, p := range fp.proxies {
				p.Reset()
			}
			faults["reset"]++
		case f < 6: // latency spike
			for _, p := range fp.proxies {
				p.SetLatency(150 * time.Millisecond)
			}
			for range 20 {
				sides[rng.IntN(2)].step(t)
				done++
			}
			for _, p := range fp.proxies {
				p.SetLatency(2 * time.Millisecond)
			}
			faults["latency"]++
		case f < 8: // SIGKILL one daemon (maybe mid-transfer or mid-scan)
			i := rng.IntN(2)
			if running[i] {
				fp.procs[i].cmd.Process.Kill()
				<-fp.procs[i].done
				running[i] = false
				faults["kill-"+fp.nodes[i].Name]++
			}
			for range 15 {
				sides[rng.IntN(2)].step(t)
				done++
			}
			ensureRunning()
		case f < 9: // restart both
			for i := range fp.procs {
				if running[i] {
					fp.procs[i].cmd.Process.Kill()
					<-fp.procs[i].done
					running[i] = false
				}
			}
			faults["kill-both"]++
			for range 10 {
				sides[rng.IntN(2)].step(t)
				done++
			}
			ensureRunning()
		default:
			// no fault this round
		}
	}

	// Heal and wait for quiescence.
	ensureRunning()
	for _, p := range fp.proxies {
		p.Blackhole(false)
		p.SetLatency(2 * time.Millisecond)
	}
	var a, b map[string]string
	var diff string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		a, b = digest(t, fp.dirs[0]), digest(t, fp.dirs[1])
		if diff = diffTrees(a, b); diff == "" {
			break
		}
		if time.Now().After(deadline) {
			for _, n := range fp.nodes {
				t.Logf("%s status: %+v", n.Name, statusCLI(t, n))
			}
			t.Fatalf("trees still differ after 3m (seed %d):\n%s", seed, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}

	lost := 0
	// Each side's own tree is exactly its model, on both nodes.
	for _, s := range sides {
		for node, tree := range []map[string]string{a, b} {
			for p, e := range s.model {
				if got, want := tree[p], describe(e); got != want {
					lost++
					t.Errorf("%s: %s is %q, want %q (written by %s)", fp.nodes[node].Name, p, got, want, s.name)
				}
			}
			for p, got := range tree {
				if strings.HasPrefix(p, s.own+"/") && s.model[p] == nil {
					t.Errorf("%s: %s exists (%s) but %s deleted or never wrote it", fp.nodes[node].Name, p, got, s.name)
				}
			}
		}
	}
	// Every last write to a shared file survives on both nodes, live or as
	// a conflict copy next to it.
	for _, s := range sides {
		for p, data := range s.shared {
			if data == nil {
				continue
			}
			sum := sha256.Sum256(data)
			want := hex.EncodeToString(sum[:8])
			found := false
			for q, desc := range a {
				if (q == p || conflict.IsConflictName(path.Base(q)) && strings.HasPrefix(q, strings.TrimSuffix(p, ".txt")+".conflict-")) && strings.HasSuffix(desc, want) {
					found = true
				}
			}
			if !found {
				lost++
				t.Errorf("%s's last write to %s (%q) is nowhere: not live, not in a conflict copy", s.name, p, data)
			}
		}
	}
	for p, desc := range a {
		if desc == "TEMP FILE" {
			t.Errorf("temp file left: %s", p)
		}
	}
	entries := 0
	for _, n := range fp.nodes {
		if v, err := conflict.Load(n.StateDir()); err == nil {
			for _, e := range v.List(conflict.Filter{}) {
				entries++
				if !strings.HasPrefix(e.Path, "shared/") {
					t.Errorf("%s logged a conflict on %s, which only one side writes", n.Name, e.Path)
				}
			}
		}
	}
	total := map[string]int{}
	for _, s := range sides {
		for k, v := range s.ops {
			total[k] += v
		}
	}
	t.Logf("torture seed=%d ops=%v faults=%v conflicts logged=%d lost=%d", seed, total, faults, entries, lost)
}
