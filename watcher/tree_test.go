package watcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for an event from the real inotify.
const waitTimeout = 10 * time.Second

// harness runs a Tree on a real directory and collects what it reports.
type harness struct {
	tb       testing.TB
	tree     *Tree
	root     string
	hook     *hookNotifier // nil unless the test installed one
	seen     map[string]bool
	rescans  int
	cancel   context.CancelFunc
	done     chan error
	runErr   error
	finished bool
	checked  bool // the test has looked at runErr itself
	barriers int
}

// startTree runs a Tree on root until the test ends and waits for its first
// batch (a Rescan, sent once every directory is watched). hook, if not nil,
// is put between the Tree and its inotify instance.
func startTree(tb testing.TB, root string, opts Options, hook *hookNotifier) *harness {
	tb.Helper()
	h := newHarness(tb, root, opts, hook)
	b := h.receive()
	if !b.Rescan {
		tb.Fatalf("first batch = %+v, want Rescan", b)
	}
	return h
}

func newHarness(tb testing.TB, root string, opts Options, hook *hookNotifier) *harness {
	tb.Helper()
	tree, err := New(root, opts, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatalf("New(%q): %v", root, err)
	}
	if hook != nil {
		tree.newNotifier = hook.open
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{tb: tb, tree: tree, root: tree.Root(), hook: hook, seen: map[string]bool{},
		cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- tree.Run(ctx) }()
	tb.Cleanup(func() {
		if err := h.stop(); err != nil && !h.checked {
			tb.Errorf("Run: %v", err)
		}
	})
	return h
}

// stop ends Run and returns its error (again, if it has already returned).
func (h *harness) stop() error {
	h.cancel()
	if !h.finished {
		select {
		case h.runErr = <-h.done:
			h.finished = true
		case <-time.After(waitTimeout):
			return fmt.Errorf("did not return within %v of cancel", waitTimeout)
		}
	}
	return h.runErr
}

// runError waits for Run to return by itself and returns its error.
func (h *harness) runError() error {
	h.tb.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case b, ok := <-h.tree.Batches():
			if ok {
				h.record(b)
				continue
			}
		case <-deadline:
			h.tb.Fatalf("Run did not return within %v", waitTimeout)
		}
		h.runErr, h.finished, h.checked = <-h.done, true, true
		return h.runErr
	}
}

// receive returns the next batch.
func (h *harness) receive() Batch {
	h.tb.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case b, ok := <-h.tree.Batches():
		if !ok {
			h.runErr, h.finished = <-h.done, true
			h.tb.Fatalf("Batches closed; Run returned %v", h.runErr)
		}
		h.record(b)
		return b
	case <-timer.C:
		h.tb.Fatalf("no batch within %v", waitTimeout)
	}
	panic("unreachable")
}

// record checks the contract of one batch and notes what it says.
func (h *harness) record(b Batch) {
	h.tb.Helper()
	if !slices.IsSorted(b.Paths) || len(slices.Compact(slices.Clone(b.Paths))) != len(b.Paths) {
		h.tb.Errorf("batch paths %q are not sorted and unique", b.Paths)
	}
	if b.Rescan && len(b.Paths) > 0 {
		h.tb.Errorf("Rescan batch has paths %q", b.Paths)
	}
	for _, p := range b.Paths {
		if p == "" || strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
			h.tb.Errorf("batch path %q is not relative", p)
		}
		h.seen[p] = true
	}
	if b.Rescan {
		h.rescans++
	}
}

// waitFor waits until every path has been reported.
func (h *harness) waitFor(paths ...string) {
	h.tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var missing []string
		for _, p := range paths {
			if !h.seen[p] {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.tb.Fatalf("not reported within %v: %q (seen %q)", waitTimeout, missing, h.seenList())
		}
		h.receive()
	}
}

// waitRescan waits for the next Rescan batch.
func (h *harness) waitRescan() {
	h.tb.Helper()
	n := h.rescans
	for h.rescans == n {
		h.receive()
	}
}

// barrier writes a new file and waits for it. Events are handled in order
// and every path waits the same quiet time, so whatever an earlier change
// would have reported has been reported by then.
func (h *harness) barrier() {
	h.tb.Helper()
	h.barriers++
	name := fmt.Sprintf("zz-barrier-%d", h.barriers)
	h.write(name, "")
	h.waitFor(name)
}

// notSeen checks, after a barrier, that no reported path is one of paths or
// lies below one of them.
func (h *harness) notSeen(paths ...string) {
	h.tb.Helper()
	h.barrier()
	for p := range h.seen {
		for _, not := range paths {
			if p == not || strings.HasPrefix(p, not+"/") {
				h.tb.Errorf("%q reported, want it not to be", p)
			}
		}
	}
}

func (h *harness) reset() { clear(h.seen) }

func (h *harness) seenList() []string {
	var l []string
	for p := range h.seen {
		l = append(l, p)
	}
	slices.Sort(l)
	return l
}

func (h *harness) path(rel string) string { return filepath.Join(h.root, filepath.FromSlash(rel)) }

func (h *harness) write(rel, data string) {
	h.tb.Helper()
	if err := os.WriteFile(h.path(rel), []byte(data), 0o644); err != nil {
		h.tb.Fatal(err)
	}
}

func (h *harness) mkdirAll(rel string) {
	h.tb.Helper()
	if err := os.MkdirAll(h.path(rel), 0o755); err != nil {
		h.tb.Fatal(err)
	}
}

func (h *harness) wantWatches(want int) {
	h.tb.Helper()
	if got := h.tree.Watches(); got != want {
		h.tb.Errorf("Watches() = %d, want %d", got, want)
	}
}

func mustWrite(tb testing.TB, path, data string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// hookNotifier sits between a Tree and its real inotify instance: it can
// drop events (as an overflowing queue would), inject errors, and fail
// inotify_add_watch.
type hookNotifier struct {
	// drop says which events to lose; nil loses none. Change it with
	// setDrop once the Tree runs.
	drop func(fsnotify.Event) bool
	// addErr, if not nil, may fail an Add before it reaches inotify.
	addErr func(path string, added int) error

	inner  notifier
	events chan fsnotify.Event
	errs   chan error // tests may send on it
	done   chan struct{}
	wg     sync.WaitGroup
	added  int // successful Adds so far; only the Tree's goroutine touches it

	mu sync.Mutex // guards drop
}

func (h *hookNotifier) setDrop(drop func(fsnotify.Event) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop = drop
}

func (h *hookNotifier) dropped(ev fsnotify.Event) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drop != nil && h.drop(ev)
}

func (h *hookNotifier) open() (notifier, error) {
	inner, err := newFSNotifier()
	if err != nil {
		return nil, err
	}
	h.inner = inner
	h.events = make(chan fsnotify.Event)
	h.errs = make(chan error)
	h.done = make(chan struct{})
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		for ev := range inner.Events() {
			if h.dropped(ev) {
				continue
			}
			select {
			case h.events <- ev:
			case <-h.done:
				return
			}
		}
	}()
	go func() {
		defer h.wg.Done()
		for err := range inner.Errors() {
			select {
			case h.errs <- err:
			case <-h.done:
				return
			}
		}
	}()
	return h, nil
}

func (h *hookNotifier) Add(path string) error {
	if h.addErr != nil {
		if err := h.addErr(path, h.added); err != nil {
			return err
		}
	}
	if err := h.inner.Add(path); err != nil {
		return err
	}
	h.added++
	return nil
}

func (h *hookNotifier) Remove(path string) error      { return h.inner.Remove(path) }
func (h *hookNotifier) Events() <-chan fsnotify.Event { return h.events }
func (h *hookNotifier) Errors() <-chan error          { return h.errs }

func (h *hookNotifier) Close() error {
	close(h.done)
	err := h.inner.Close()
	h.wg.Wait()
	return err
}

// inject hands err to the Tree as if inotify had reported it.
func (h *hookNotifier) inject(tb testing.TB, err error) {
	tb.Helper()
	select {
	case h.errs <- err:
	case <-time.After(waitTimeout):
		tb.Fatalf("Tree did not take the error %v within %v", err, waitTimeout)
	}
}

func TestTreeFiles(t *testing.T) {
	h := startTree(t, t.TempDir(), Options{}, nil)
	h.wantWatches(1)

	h.write("a.txt", "one")
	h.waitFor("a.txt")

	h.reset()
	f, err := os.OpenFile(h.path("a.txt"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString("two")
	must(t, err)
	must(t, f.Close())
	h.waitFor("a.txt")

	h.reset()
	must(t, os.Chmod(h.path("a.txt"), 0o600))
	h.waitFor("a.txt")

	h.reset()
	must(t, os.Remove(h.path("a.txt")))
	h.waitFor("a.txt")

	h.reset()
	h.write("b.txt", "")
	must(t, os.Rename(h.path("b.txt"), h.path("c.txt")))
	h.waitFor("b.txt", "c.txt")
	h.wantWatches(1)
}

func TestTreeExistingTree(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "a/b/f"), "x")
	must(t, os.Mkdir(filepath.Join(root, "empty"), 0o755))
	h := startTree(t, root, Options{}, nil)
	h.wantWatches(4) // root, a, a/b, empty
	if len(h.seen) != 0 {
		t.Errorf("paths reported before any change: %q", h.seenList())
	}
	h.write("a/b/g", "")
	h.write("empty/h", "")
	h.waitFor("a/b/g", "empty/h")
}

func TestTreeMkdirP(t *testing.T) {
	h := startTree(t, t.TempDir(), Options{}, nil)
	// Files follow their directories at once: no time for the Tree to add
	// a watch before each appears.
	h.mkdirAll("a/b/c/d")
	h.write("a/1", "")
	h.write("a/b/2", "")
	h.write("a/b/c/3", "")
	h.write("a/b/c/d/4", "")
	h.waitFor("a", "a/b", "a/b/c", "a/b/c/d", "a/1", "a/b/2", "a/b/c/3", "a/b/c/d/4")
	h.wantWatches(5)

	h.reset()
	h.write("a/b/c/d/5", "")
	h.waitFor("a/b/c/d/5")
}

func TestTreeEmptyDirectory(t *testing.T) {
	h := startTree(t, t.TempDir(), Options{}, nil)
	h.mkdirAll("e")
	h.waitFor("e")
	h.wantWatches(2)
	h.reset()
	must(t, os.Remove(h.path("e")))
	h.waitFor("e")
	h.barrier()
	h.wantWatches(1)
}

func TestTreeRemoveTree(t *testing.T) {
	h := startTree(t, t.TempDir(), Options{}, nil)
	h.mkdirAll("d/s/t")
	h.write("d/s/t/f", "")
	h.waitFor("d/s/t/f")
	h.wantWatches(4)
	h.reset()
	must(t, os.RemoveAll(h.path("d")))
	h.waitFor("d", "d/s", "d/s/t", "d/s/t/f")
	h.wantWatches(1)
}

func TestTreeMoveInAndOut(t *testing.T) {
	outside := t.TempDir()
	h := startTree(t, t.TempDir(), Options{}, nil)

	src := filepath.Join(outside, "src")
	mustWrite(t, filepath.Join(src, "f"), "")
	mustWrite(t, filepath.Join(src, "s/g"), "")
	mustWrite(t, filepath.Join(src, "s/t/h"), "")
	must(t, os.Mkdir(filepath.Join(src, "empty"), 0o755))
	must(t, os.Symlink("s", filepath.Join(src, "link")))

	must(t, os.Rename(src, h.path("in")))
	h.waitFor("in", "in/f", "in/s", "in/s/g", "in/s/t", "in/s/t/h", "in/empty", "in/link")
	h.wantWatches(5) // root, in, in/s, in/s/t, in/empty

	h.write("in/s/t/new", "")
	h.waitFor("in/s/t/new")

	h.reset()
	out := filepath.Join(outside, "out")
	must(t, os.Rename(h.path("in"), out))
	h.waitFor("in", "in/s", "in/s/t", "in/empty")
	h.barrier()
	h.wantWatches(1)

	// The tree moved out is no longer watched.
	h.reset()
	mustWrite(t, filepath.Join(out, "s/t/later"), "")
	mustWrite(t, filepath.Join(out, "later"), "")
	h.notSeen("in", "out")
}

func TestTreeRenameWithin(t *testing.T) {
	h := startTree(t, t.TempDir(), Options{}, nil)
	h.mkdirAll("a/s/t")
	h.write("a/s/f", "")
	h.waitFor("a/s/f", "a/s/t")

	h.reset()
	must(t, os.Rename(h.path("a"), h.path("b")))
	h.waitFor("a", "a/s", "a/s/t", "b", "b/s", "b/s/f", "b/s/t")
	h.wantWatches(4)

	// Events below the moved directory carry its new name.
	h.reset()
	h.write("b/s/g", "")
	h.write("b/s/t/u", "")
	h.waitFor("b/s/g", "b/s/t/u")
	h.notSeen("a")

	// Into a subdirectory, and a file across directories.
	h.reset()
	h.mkdirAll("c")
	must(t, os.Rename(h.path("b/s"), h.path("c/s2")))
	must(t, os.Rename(h.path("c/s2/f"), h.path("moved")))
	h.waitFor("b/s", "b/s/t", "c/s2", "c/s2/t", "moved")
	h.reset()
	h.write("c/s2/t/v", "")
	h.waitFor("c/s2/t/v")
	h.notSeen("b/s")
	h.wantWatches(5) // root, b, c, c/s2, c/s2/t
}

func TestTreeReplaceDirectory(t *testing.T) {
	h := startTree(t, t.TempDir(), Options{}, nil)
	h.mkdirAll("d/sub")
	h.waitFor("d/sub")

	// A directory replaced by a file, then by a new directory.
	h.reset()
	must(t, os.RemoveAll(h.path("d")))
	h.write("d", "now a file")
	h.waitFor("d", "d/sub")
	h.barrier()
	h.wantWatches(1)

	h.reset()
	must(t, os.Remove(h.path("d")))
	h.mkdirAll("d/new")
	h.waitFor("d", "d/new")
	h.write("d/new/f", "")
	h.waitFor("d/new/f")
	h.wantWatches(3)
}

func TestTreeSymlinks(t *testing.T) {
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "dir/f"), "")
	h := startTree(t, t.TempDir(), Options{}, nil)

	must(t, os.Symlink(filepath.Join(outside, "dir"), h.path("link")))
	h.waitFor("link")
	h.wantWatches(1) // the link's target is not walked nor watched

	h.mkdirAll("real")
	must(t, os.Symlink("real", h.path("rel-link")))
	h.waitFor("real", "rel-link")
	h.wantWatches(2)

	h.reset()
	mustWrite(t, filepath.Join(outside, "dir/g"), "")
	h.notSeen("link")

	// Retargeting a link is a change of the link.
	h.reset()
	must(t, os.Remove(h.path("rel-link")))
	must(t, os.Symlink(outside, h.path("rel-link")))
	h.waitFor("rel-link")
	h.wantWatches(2)
}

func TestTreeSymlinkedRoot(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "root")
	must(t, os.Symlink(real, link))
	h := startTree(t, link, Options{}, nil)
	mustWrite(t, filepath.Join(real, "d/f"), "")
	h.waitFor("d", "d/f")
}

// TestTreeBindMount bind-mounts the root into itself (it needs root and
// CAP_SYS_ADMIN, and skips without them): the walk must neither loop nor
// take the second name of the root for a move of it.
func TestTreeBindMount(t *testing.T) {
	root := t.TempDir()
	must(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	loop := filepath.Join(root, "loop")
	must(t, os.Mkdir(loop, 0o755))
	if err := syscall.Mount(root, loop, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(loop, 0); err != nil {
			t.Errorf("unmount %s: %v", loop, err)
		}
	})
	h := startTree(t, root, Options{}, nil)
	h.wantWatches(2) // root and d, each under one name
	h.write("d/f", "")
	h.waitFor("d/f")
}

func TestTreeExcludes(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "build/old"), "") // excluded before the start
	mustWrite(t, filepath.Join(root, "sub/cache/old"), "")
	opts := Options{Exclude: []string{"*.tmp", "cache/", "/build", "!keep.tmp"}}
	h := startTree(t, root, opts, nil)
	h.wantWatches(2) // root, sub

	if !h.tree.Excluded("build/old", false) || h.tree.Excluded("sub/build", true) {
		t.Errorf("Excluded disagrees with the patterns")
	}

	h.write("x.tmp", "")
	h.write("keep.tmp", "")
	h.write("cache", "a file, not a directory")
	h.write("sub/build", "not anchored at the root")
	h.write("build/new", "")
	h.write("sub/cache/new", "")
	h.waitFor("keep.tmp", "cache", "sub/build")

	h.reset()
	h.mkdirAll("a/cache/deep")
	h.write("a/cache/deep/f", "")
	h.write("a/f.tmp", "")
	h.write("a/g", "")
	h.mkdirAll("sub/y.tmp")
	h.write("sub/y.tmp/keep.tmp", "") // inside an excluded directory
	h.waitFor("a", "a/g")
	h.wantWatches(3) // root, sub, a: no watch on excluded directories
	h.notSeen("x.tmp", "build", "sub/cache", "a/cache", "a/f.tmp", "sub/y.tmp")
}

func TestTreeTempFiles(t *testing.T) {
	h := startTree(t, t.TempDir(), Options{}, nil)
	tmp := TempPrefix + "1234"
	h.write(tmp, "content")
	must(t, os.Rename(h.path(tmp), h.path("final")))
	h.mkdirAll(TempPrefix + "dir/x")
	h.waitFor("final")
	h.wantWatches(1)
	h.notSeen(tmp, TempPrefix+"dir")
}

func TestTreeOverflowRepairsWatches(t *testing.T) {
	root := t.TempDir()
	lost := filepath.Join(root, "d")
	hook := &hookNotifier{drop: func(ev fsnotify.Event) bool { return ev.Name == lost }}
	h := startTree(t, root, Options{}, hook)

	// The creation of d is lost, so nothing watches it...
	h.mkdirAll("d")
	h.write("d/f", "")
	h.barrier()
	h.wantWatches(1)

	// ...until the overflow that lost it is reported.
	hook.inject(t, fsnotify.ErrEventOverflow)
	h.waitRescan()
	h.wantWatches(2)
	h.reset()
	h.write("d/g", "")
	h.waitFor("d/g")
}

func TestTreeOverflowMovedDirectory(t *testing.T) {
	root := t.TempDir()
	hook := &hookNotifier{}
	h := startTree(t, root, Options{}, hook)
	h.mkdirAll("a/s")
	h.waitFor("a/s")

	// A rename whose events are all lost: the old watches still point at
	// the moved directories.
	hook.setDrop(func(fsnotify.Event) bool { return true })
	must(t, os.Rename(h.path("a"), h.path("b")))
	hook.inject(t, fsnotify.ErrEventOverflow)
	hook.setDrop(nil)
	h.waitRescan()
	h.wantWatches(3)
	h.reset()
	h.write("b/s/f", "")
	h.waitFor("b/s/f")
	h.notSeen("a/s") // "a" itself may be reported by a late event of its old watch: it is gone
}

func TestTreePeriodicRescan(t *testing.T) {
	root := t.TempDir()
	lost, later := filepath.Join(root, "d"), filepath.Join(root, "d/g")
	laterSeen := make(chan struct{}, 1)
	hook := &hookNotifier{drop: func(ev fsnotify.Event) bool {
		if ev.Name == later {
			select {
			case laterSeen <- struct{}{}:
			default:
			}
		}
		return ev.Name == lost
	}}
	h := startTree(t, root, Options{RescanInterval: 20 * time.Millisecond}, hook)
	h.mkdirAll("d")
	deadline := time.Now().Add(waitTimeout)
	for h.tree.Watches() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Watches() = %d after %v of periodic rescans, want 2", h.tree.Watches(), waitTimeout)
		}
		h.waitRescan()
	}
	// With a rescan every 20ms, d/g may well be reported by a Rescan batch
	// instead of by name: what matters is that d is watched now.
	h.write("d/g", "")
	select {
	case <-laterSeen:
	case <-time.After(waitTimeout):
		t.Fatalf("no inotify event for d/g within %v: d is not watched", waitTimeout)
	}
}

func TestTreeWatchLimit(t *testing.T) {
	enospc := func(limit int) func(string, int) error {
		return func(_ string, added int) error {
			if added >= limit {
				return syscall.ENOSPC
			}
			return nil
		}
	}
	check := func(t *testing.T, err error, dirs int) {
		t.Helper()
		if !errors.Is(err, ErrWatchLimit) {
			t.Fatalf("Run() = %v, want ErrWatchLimit", err)
		}
		want := fmt.Sprintf("inotify watch limit reached at %d directories; raise it: "+
			"sysctl fs.inotify.max_user_watches=524288 (and persist in /etc/sysctl.d/)", dirs)
		if err.Error() != want {
			t.Errorf("Run() = %q, want %q", err, want)
		}
		var wl *WatchLimitError
		if !errors.As(err, &wl) || wl.Dirs != dirs {
			t.Errorf("Run() = %#v, want a *WatchLimitError for %d directories", err, dirs)
		}
	}

	t.Run("at start", func(t *testing.T) {
		root := t.TempDir()
		for _, d := range []string{"a", "b", "c", "d"} {
			must(t, os.Mkdir(filepath.Join(root, d), 0o755))
		}
		h := newHarness(t, root, Options{}, &hookNotifier{addErr: enospc(3)})
		check(t, h.runError(), 3)
		if h.rescans != 0 {
			t.Errorf("a Rescan batch was sent though the tree is not fully watched")
		}
	})
	t.Run("new directory", func(t *testing.T) {
		h := startTree(t, t.TempDir(), Options{}, &hookNotifier{addErr: enospc(1)})
		h.mkdirAll("new")
		check(t, h.runError(), 1)
	})
}

func TestTreeRootGone(t *testing.T) {
	for _, tt := range []struct {
		name string
		gone func(root string) error
	}{
		{"removed", os.RemoveAll},
		{"moved", func(root string) error { return os.Rename(root, root+".old") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			mustWrite(t, filepath.Join(root, "sub/f"), "")
			h := startTree(t, root, Options{}, nil)
			must(t, tt.gone(root))
			if err := h.runError(); !errors.Is(err, ErrRootGone) {
				t.Errorf("Run() = %v, want ErrRootGone", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	mustWrite(t, file, "")
	for _, tt := range []struct {
		name, root string
		opts       Options
	}{
		{"missing root", filepath.Join(dir, "missing"), Options{}},
		{"root is a file", file, Options{}},
		{"bad pattern", dir, Options{Exclude: []string{"ok", "[z-"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.root, tt.opts, nil); err == nil {
				t.Errorf("New(%q, %+v) = nil error", tt.root, tt.opts)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	h := startTree(t, t.TempDir(), Options{}, nil)
	if err := h.tree.Run(context.Background()); err == nil {
		t.Errorf("second Run() = nil, want an error")
	}
}

// fakeNotifier stands in for inotify in tests of Run's loop under
// testing/synctest; its channels belong to the bubble.
type fakeNotifier struct {
	events chan fsnotify.Event
	errs   chan error

	mu      sync.Mutex
	watched map[string]bool
}

func newFakeNotifier() *fakeNotifier {
	return &fakeNotifier{events: make(chan fsnotify.Event), errs: make(chan error), watched: map[string]bool{}}
}

func (f *fakeNotifier) open() (notifier, error)       { return f, nil }
func (f *fakeNotifier) Events() <-chan fsnotify.Event { return f.events }
func (f *fakeNotifier) Errors() <-chan error          { return f.errs }
func (f *fakeNotifier) Close() error                  { return nil }

func (f *fakeNotifier) Add(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watched[path] = true
	return nil
}

func (f *fakeNotifier) Remove(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watched, path)
	return nil
}

func (f *fakeNotifier) isWatched(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watched[path]
}

// loop is a Tree run on a fake notifier inside a synctest bubble.
type loop struct {
	t     *testing.T
	tree  *Tree
	fake  *fakeNotifier
	start time.Time // when the first batch was received
}

// startLoop runs a Tree on a fresh directory with a fake notifier until the
// test ends; it must be called inside the bubble.
func startLoop(t *testing.T, opts Options) *loop {
	t.Helper()
	tree, err := New(t.TempDir(), opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l := &loop{t: t, tree: tree, fake: newFakeNotifier()}
	tree.newNotifier = l.fake.open
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tree.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
		if _, ok := <-tree.Batches(); ok {
			t.Errorf("Batches not closed after Run returned")
		}
	})
	if b := <-tree.Batches(); !b.Rescan {
		t.Fatalf("first batch = %+v, want Rescan", b)
	}
	l.start = time.Now()
	return l
}

func (l *loop) event(rel string, op fsnotify.Op) {
	l.fake.events <- fsnotify.Event{Name: l.tree.abs(rel), Op: op}
}

// pending returns the batch offered now, if any, without waiting.
func (l *loop) pending() (Batch, bool) {
	synctest.Wait()
	select {
	case b := <-l.tree.Batches():
		return b, true
	default:
		return Batch{}, false
	}
}

func (l *loop) wantNone() {
	l.t.Helper()
	if b, ok := l.pending(); ok {
		l.t.Fatalf("at +%v: unexpected batch %+v", time.Since(l.start), b)
	}
}

func (l *loop) want(paths ...string) {
	l.t.Helper()
	b, ok := l.pending()
	if !ok {
		l.t.Fatalf("at +%v: no batch, want %q", time.Since(l.start), paths)
	}
	if b.Rescan || !slices.Equal(b.Paths, paths) {
		l.t.Fatalf("at +%v: batch %+v, want paths %q", time.Since(l.start), b, paths)
	}
}

func (l *loop) wantRescan() {
	l.t.Helper()
	b, ok := l.pending()
	if !ok || !b.Rescan {
		l.t.Fatalf("at +%v: batch %+v (%v), want Rescan", time.Since(l.start), b, ok)
	}
}

func TestRunDebounce(t *testing.T) {
	opts := Options{Quiet: 5 * ms, MaxDelay: 100 * ms, RescanInterval: -1}
	t.Run("flushed as soon as quiet", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := startLoop(t, opts)
			l.event("a", fsnotify.Write)
			time.Sleep(5*ms - 1)
			l.wantNone()
			time.Sleep(1)
			l.want("a")

			l.event("b", fsnotify.Write)
			time.Sleep(3 * ms)
			l.event("c", fsnotify.Create)
			l.event("b", fsnotify.Write)
			time.Sleep(5*ms - 1)
			l.wantNone()
			time.Sleep(1)
			l.want("b", "c")
			time.Sleep(time.Second)
			l.wantNone()
		})
	})
	t.Run("a stream of writes is reported every max delay", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := startLoop(t, opts)
			go func() {
				for range 84 { // every 3ms from +0 to +249ms
					l.event("hot", fsnotify.Write)
					time.Sleep(3 * ms)
				}
			}()
			var at []time.Duration
			for range 3 {
				b := <-l.tree.Batches()
				if !slices.Equal(b.Paths, []string{"hot"}) {
					t.Fatalf("batch %+v, want [hot]", b)
				}
				at = append(at, time.Since(l.start))
			}
			if want := []time.Duration{100 * ms, 202 * ms, 254 * ms}; !slices.Equal(at, want) {
				t.Errorf("batches at %v, want %v", at, want)
			}
		})
	})
	t.Run("a slow consumer loses nothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := startLoop(t, opts)
			l.event("a", fsnotify.Create)
			time.Sleep(10 * ms)
			l.event("b", fsnotify.Write)
			l.event("a", fsnotify.Write)
			time.Sleep(10 * ms)
			l.event("c", fsnotify.Remove)
			time.Sleep(time.Second) // the consumer is busy
			l.want("a")             // offered at +5ms
			l.want("a", "b", "c")   // what fell due while it waited
			l.wantNone()
		})
	})
	t.Run("too many paths waiting become a Rescan", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := startLoop(t, Options{Quiet: 5 * ms, RescanInterval: -1, MaxPending: 5})
			for _, p := range []string{"a", "b", "c"} {
				l.event(p, fsnotify.Write)
			}
			time.Sleep(10 * ms)
			for _, p := range []string{"d", "e", "f"} {
				l.event(p, fsnotify.Write)
			}
			time.Sleep(time.Second)
			l.wantRescan()
			l.wantNone()
			l.event("g", fsnotify.Write)
			time.Sleep(5 * ms)
			l.want("g")
		})
	})
}

func TestRunRescan(t *testing.T) {
	t.Run("overflow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := startLoop(t, Options{RescanInterval: -1})
			must(t, os.Mkdir(l.tree.abs("unseen"), 0o755))
			l.event("a", fsnotify.Write)
			l.fake.errs <- fsnotify.ErrEventOverflow
			l.wantRescan()
			if !l.fake.isWatched(l.tree.abs("unseen")) {
				t.Errorf("directory created during the overflow not watched after it")
			}
			if l.tree.Watches() != 2 {
				t.Errorf("Watches() = %d, want 2", l.tree.Watches())
			}
		})
	})
	t.Run("other inotify error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := startLoop(t, Options{RescanInterval: -1})
			l.fake.errs <- syscall.EINVAL
			l.wantRescan()
		})
	})
	t.Run("periodic", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := startLoop(t, Options{RescanInterval: time.Minute})
			must(t, os.Mkdir(l.tree.abs("unseen"), 0o755))
			time.Sleep(time.Minute - 1)
			l.wantNone()
			time.Sleep(1)
			l.wantRescan()
			if !l.fake.isWatched(l.tree.abs("unseen")) {
				t.Errorf("directory missed by events not watched after the periodic rescan")
			}
			must(t, os.Remove(l.tree.abs("unseen")))
			time.Sleep(time.Minute)
			l.wantRescan()
			if l.fake.isWatched(l.tree.abs("unseen")) || l.tree.Watches() != 1 {
				t.Errorf("watch of a directory gone kept after the periodic rescan")
			}
		})
	})
}

// BenchmarkEventLatency measures the time from a write to the batch that
// reports it, with the default options: mostly the Quiet time, which it
// also reports subtracted.
func BenchmarkEventLatency(b *testing.B) {
	h := startTree(b, b.TempDir(), Options{RescanInterval: -1}, nil)
	start := time.Now()
	for b.Loop() {
		h.reset()
		h.write("f", "x")
		h.waitFor("f")
	}
	perOp := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(perOp-DefaultQuiet)/1e6, "ms-above-quiet/op")
}

// BenchmarkWatchSetup measures how long Run takes to watch a tree of 10,000
// directories, up to its first batch.
func BenchmarkWatchSetup(b *testing.B) {
	root := b.TempDir()
	for i := range 100 {
		for j := range 99 {
			must(b, os.MkdirAll(filepath.Join(root, fmt.Sprint(i), fmt.Sprint(j)), 0o755))
		}
	}
	for b.Loop() {
		h := newHarness(b, root, Options{RescanInterval: -1}, nil)
		h.receive()
		if h.tree.Watches() != 10_001 {
			b.Fatalf("Watches() = %d, want 10001", h.tree.Watches())
		}
		must(b, h.stop())
	}
	b.ReportMetric(10_000, "dirs/op")
}
