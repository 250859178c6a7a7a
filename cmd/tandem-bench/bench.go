package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tandemhost/tandem/internal/faultproxy"
)

// tool is one synchronizer under test. It syncs dir a (this side) with dir
// b (the far side), every byte between them crossing faultproxy proxies
// that add the bench's latency.
type tool interface {
	// column is the tool's column in the table.
	column() string
	// setup writes the tool's configuration for a and b; nothing runs yet.
	setup(ctx context.Context, a, b string) error
	// launch starts the tool's processes and returns without waiting for
	// them to connect.
	launch(ctx context.Context) error
	// after is called after each change made in a (fromA) or in b. A
	// watcher returns nil at once; a one-shot tool copies once.
	after(ctx context.Context, fromA bool) error
	// twoWay reports whether a change in b reaches a.
	twoWay() bool
	// fixedDelay is how long the tool waits on purpose before it copies a
	// change (lsyncd's and Syncthing's defaults): such a tool gets fewer
	// latency samples.
	fixedDelay() time.Duration
	// roots returns the processes that make up the running tool, whose
	// trees the idle measurement counts; nil for a tool with none.
	roots() []int
	// stop ends everything launch started and closes the proxies.
	stop()
	// wire returns the bytes that crossed the tool's proxies so far, both
	// ways, SSH or TLS framing included.
	wire() int64
}

// proxies is the set of latency proxies one tool's traffic crosses.
type proxies struct {
	oneWay time.Duration
	list   []*faultproxy.Proxy
}

// add puts a proxy in front of target and returns its address.
func (p *proxies) add(target string) (string, error) {
	fp, err := faultproxy.New(target)
	if err != nil {
		return "", err
	}
	fp.SetLatency(p.oneWay)
	p.list = append(p.list, fp)
	return fp.Addr(), nil
}

func (p *proxies) wire() int64 {
	var n int64
	for _, fp := range p.list {
		s := fp.Stats()
		n += s.ToTarget + s.FromTarget
	}
	return n
}

func (p *proxies) close() {
	for _, fp := range p.list {
		fp.Close()
	}
	p.list = nil
}

// sizes are the scenario sizes, from the flags.
type sizes struct {
	samples     int           // 1 KiB latency samples per direction
	slowSamples int           // the same, for a tool with a fixed delay
	burst       int           // files in the burst
	big         int           // bytes of the big file
	tree        int           // files in the initial-sync tree
	idle        time.Duration // idle measurement period
	settle      time.Duration // quiet time before the idle measurement
	timeout     time.Duration // longest wait for one change to arrive
}

// bench runs the scenarios for each tool and fills the table.
type bench struct {
	sz   sizes
	work string // scratch directory, one subdirectory per tool
	tb   *table
	keep bool // keep each tool's directory (logs, configs)
	logf func(format string, args ...any)
}

func (s sizes) rowNames() (latAB50, latAB99, latBA50, latBA99, burst, big, edit, editWire, tree, idleCPU, idleRSS string) {
	return "1 KiB new file A to B, p50", "1 KiB new file A to B, p99",
		"1 KiB new file B to A, p50", "1 KiB new file B to A, p99",
		fmt.Sprintf("%s small files in %d dirs, all arrived", count(s.burst), (s.burst+99)/100),
		fmt.Sprintf("%d MiB new file", s.big>>20),
		fmt.Sprintf("1-byte in-place edit of the %d MiB file", s.big>>20),
		"that edit: bytes on the wire, both ways",
		fmt.Sprintf("initial sync of %s files (B empty)", count(s.tree)),
		fmt.Sprintf("idle CPU, %s files watched", count(s.tree)),
		fmt.Sprintf("idle RSS, %s files watched", count(s.tree))
}

// count prints n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// run measures every scenario for t. A scenario that fails gets a "not
// measured" note with the reason; run goes on with the next phase.
func (b *bench) run(ctx context.Context, t tool) {
	col := t.column()
	latAB50, latAB99, latBA50, latBA99, burstRow, bigRow, editRow, wireRow, treeRow, cpuRow, rssRow := b.sz.rowNames()
	liveRows := []struct {
		name string
		u    unit
	}{{latAB50, millis}, {latAB99, millis}, {latBA50, millis}, {latBA99, millis}, {burstRow, secs}, {bigRow, secs}, {editRow, secs}, {wireRow, kib}}
	dir := filepath.Join(b.work, strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(col)))

	// Live phase: both sides start empty; one change at a time.
	err := b.live(ctx, t, filepath.Join(dir, "live"))
	if err != nil {
		b.logf("%s: %v", col, err)
		for _, r := range liveRows {
			if c := b.tb.cell(r.name, r.u, col); len(c.values) == 0 && c.note == "" {
				c.note = "not measured: " + err.Error()
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	if !b.keep {
		os.RemoveAll(filepath.Join(dir, "live"))
	}

	// Tree phase: A holds the tree, B is empty, then the tool starts.
	if err := b.tree(ctx, t, filepath.Join(dir, "tree"), treeRow, cpuRow, rssRow); err != nil {
		b.logf("%s: %v", col, err)
		for _, r := range []struct {
			name string
			u    unit
		}{{treeRow, secs}, {cpuRow, pct}, {rssRow, mib}} {
			if c := b.tb.cell(r.name, r.u, col); len(c.values) == 0 && c.note == "" {
				c.note = "not measured: " + err.Error()
			}
		}
	}
	if !b.keep {
		os.RemoveAll(dir)
	}
}

func (b *bench) live(ctx context.Context, t tool, dir string) error {
	col := t.column()
	latAB50, latAB99, latBA50, latBA99, burstRow, bigRow, editRow, wireRow, _, _, _ := b.sz.rowNames()
	a, bb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, bb} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := t.setup(ctx, a, bb); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	defer t.stop()
	if err := t.launch(ctx); err != nil {
		return fmt.Errorf("launch: %w", err)
	}

	// A first file both ways: the tool has connected and scanned.
	b.logf("%s: waiting for the first file to cross", col)
	for _, fromA := range []bool{true, false} {
		if !fromA && !t.twoWay() {
			continue
		}
		src, dst := a, bb
		if !fromA {
			src, dst = bb, a
		}
		if err := os.WriteFile(filepath.Join(src, "ready-"+fmt.Sprint(fromA)), []byte("x"), 0o644); err != nil {
			return err
		}
		if err := t.after(ctx, fromA); err != nil {
			return err
		}
		if err := b.waitFor(ctx, 3*b.sz.timeout, func() bool { return sizeIs(filepath.Join(dst, "ready-"+fmt.Sprint(fromA)), 1) }); err != nil {
			return fmt.Errorf("first file: %w", err)
		}
	}

	data := make([]byte, 1024)
	rand.Read(data)
	n := b.sz.samples
	if t.fixedDelay() > time.Second {
		n = min(n, b.sz.slowSamples)
	}
	for _, dirn := range []struct {
		fromA  bool
		p50    string
		p99    string
		src    string
		dst    string
		prefix string
	}{{true, latAB50, latAB99, a, bb, "ab"}, {false, latBA50, latBA99, bb, a, "ba"}} {
		if !dirn.fromA && !t.twoWay() {
			b.tb.note(dirn.p50, millis, col, "n/a: one-way")
			b.tb.note(dirn.p99, millis, col, "n/a: one-way")
			continue
		}
		b.logf("%s: %d x 1 KiB %s", col, n, dirn.prefix)
		var lat []time.Duration
		for i := range n {
			name := fmt.Sprintf("lat-%s-%03d.html", dirn.prefix, i)
			start := time.Now()
			if err := os.WriteFile(filepath.Join(dirn.src, name), data, 0o644); err != nil {
				return err
			}
			if err := t.after(ctx, dirn.fromA); err != nil {
				return err
			}
			if err := b.waitFor(ctx, b.sz.timeout, func() bool { return sizeIs(filepath.Join(dirn.dst, name), 1024) }); err != nil {
				return fmt.Errorf("1 KiB file %s: %w", name, err)
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.tb.add(dirn.p50, millis, col, ms(lat[len(lat)/2]))
		b.tb.add(dirn.p99, millis, col, ms(lat[(len(lat)*99-1)/100]))
		if n != b.sz.samples {
			b.tb.note(dirn.p99, millis, col, fmt.Sprintf("%d samples", n))
		}
	}

	b.logf("%s: burst of %d files", col, b.sz.burst)
	start := time.Now()
	burst := filepath.Join(a, "burst")
	for i := 0; i < b.sz.burst; i++ {
		d := filepath.Join(burst, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d.html", i%100)), []byte(fmt.Sprintf("<p>burst %d</p>\n", i)), 0o644); err != nil {
			return err
		}
	}
	written := time.Since(start)
	if err := t.after(ctx, true); err != nil {
		return err
	}
	if err := b.waitFor(ctx, b.sz.timeout, func() bool { return countFiles(filepath.Join(bb, "burst")) >= b.sz.burst }); err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	b.tb.add(burstRow, secs, col, time.Since(start).Seconds())
	b.logf("%s: burst arrived in %v (writing it took %v)", col, time.Since(start), written)

	b.logf("%s: %d MiB file", col, b.sz.big>>20)
	big := make([]byte, b.sz.big)
	rand.Read(big)
	bigA, bigB := filepath.Join(a, "big.bin"), filepath.Join(bb, "big.bin")
	start = time.Now()
	if err := os.WriteFile(bigA, big, 0o644); err != nil {
		return err
	}
	if err := t.after(ctx, true); err != nil {
		return err
	}
	tail := big[len(big)-64:]
	if err := b.waitFor(ctx, b.sz.timeout, func() bool { return sizeIs(bigB, int64(len(big))) && bytesAt(bigB, int64(len(big)-64), tail) }); err != nil {
		return fmt.Errorf("big file: %w", err)
	}
	b.tb.add(bigRow, secs, col, time.Since(start).Seconds())

	// Tools that compare modification times in whole seconds (rsync's quick
	// check, Unison's fast check) must see the edit as a change.
	if err := sleepCtx(ctx, 1100*time.Millisecond); err != nil {
		return err
	}
	b.logf("%s: 1-byte edit", col)
	off := int64(len(big) / 2)
	edited := []byte{big[off] ^ 0xff}
	wire0 := t.wire()
	start = time.Now()
	f, err := os.OpenFile(bigA, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(edited, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := t.after(ctx, true); err != nil {
		return err
	}
	if err := b.waitFor(ctx, b.sz.timeout, func() bool { return bytesAt(bigB, off, edited) }); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	b.tb.add(editRow, secs, col, time.Since(start).Seconds())
	// Let the tool finish its exchange (acknowledgements, index updates).
	if err := sleepCtx(ctx, 500*time.Millisecond+t.fixedDelay()/10); err != nil {
		return err
	}
	b.tb.add(wireRow, kib, col, float64(t.wire()-wire0))
	return nil
}

func (b *bench) tree(ctx context.Context, t tool, dir, treeRow, cpuRow, rssRow string) error {
	col := t.column()
	a, bb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, bb} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	b.logf("%s: writing a %d-file tree", col, b.sz.tree)
	if err := writeTree(filepath.Join(a, "site"), b.sz.tree); err != nil {
		return err
	}
	if err := t.setup(ctx, a, bb); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	defer t.stop()
	start := time.Now()
	if err := t.launch(ctx); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	if err := t.after(ctx, true); err != nil {
		return err
	}
	if err := b.waitFor(ctx, 5*b.sz.timeout, func() bool { return countFiles(filepath.Join(bb, "site")) >= b.sz.tree }); err != nil {
		return fmt.Errorf("initial sync: %w", err)
	}
	b.tb.add(treeRow, secs, col, time.Since(start).Seconds())
	b.logf("%s: initial sync of %d files took %v", col, b.sz.tree, time.Since(start))

	roots := t.roots()
	if roots == nil {
		b.tb.note(cpuRow, pct, col, "none: no process between runs")
		b.tb.note(rssRow, mib, col, "none: no process between runs")
		return nil
	}
	if err := sleepCtx(ctx, b.sz.settle); err != nil {
		return err
	}
	b.logf("%s: idle for %v", col, b.sz.idle)
	cpu, mem, err := idleCost(roots, b.sz.idle, func(d time.Duration) error { return sleepCtx(ctx, d) })
	if err != nil {
		return err
	}
	b.tb.add(cpuRow, pct, col, cpu)
	b.tb.add(rssRow, mib, col, float64(mem))
	return nil
}

// writeTree writes n small files under root, 100 per directory, 10
// directories per parent.
func writeTree(root string, n int) error {
	for i := 0; i < n; i++ {
		d := filepath.Join(root, fmt.Sprintf("d%03d", i/1000), fmt.Sprintf("e%d", i/100%10))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d.html", i%100)), []byte(fmt.Sprintf("<p>page %d</p>\n", i)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// countFiles counts the regular files named f*.html under root: the
// bench's files, not a tool's temporary ones.
func countFiles(root string) int {
	n := 0
	ents, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	for _, e := range ents {
		switch {
		case e.IsDir():
			n += countFiles(filepath.Join(root, e.Name()))
		case e.Type().IsRegular() && strings.HasPrefix(e.Name(), "f") && strings.HasSuffix(e.Name(), ".html"):
			n++
		}
	}
	return n
}

func sizeIs(path string, size int64) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// bytesAt reports whether the file at path holds want at offset off.
func bytesAt(path string, off int64, want []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, off); err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	return bytes.Equal(got, want)
}

// errTimeout is returned by waitFor when the change did not arrive in time.
var errTimeout = errors.New("timed out")

// waitFor polls cond until it holds, ctx ends or limit passes. It polls
// every millisecond while cond is cheap, less often when it is not (a
// count over a large tree).
func (b *bench) waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for {
		t0 := time.Now()
		if cond() {
			return nil
		}
		cost := time.Since(t0)
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", errTimeout, limit)
		}
		if err := sleepCtx(ctx, max(time.Millisecond, 2*cost)); err != nil {
			return err
		}
	}
}

// sleepCtx waits d, or less if ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
