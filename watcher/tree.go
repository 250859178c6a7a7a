package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Defaults for the zero fields of Options.
const (
	DefaultQuiet          = 5 * time.Millisecond
	DefaultMaxDelay       = 100 * time.Millisecond
	DefaultRescanInterval = 10 * time.Minute
	DefaultMaxPending     = 100_000
)

// ErrWatchLimit is matched (with errors.Is) by the *WatchLimitError that Run
// returns when the kernel refuses another inotify watch.
var ErrWatchLimit = errors.New("inotify watch limit reached")

// ErrRootGone is matched by the error Run returns when the tree's root is
// removed, moved, or replaced by another directory (e.g. its disk was
// unmounted, leaving the bare mount point). The tree is then not watched, so
// that nobody mistakes an empty mount point for a tree whose files were all
// deleted.
var ErrRootGone = errors.New("sync root is gone")

// WatchLimitError says that inotify_add_watch failed with ENOSPC: the user's
// inotify watch limit (fs.inotify.max_user_watches, shared by every process
// of the user) is used up, so part of the tree could not be watched.
type WatchLimitError struct {
	// Dirs is how many directories this Tree was watching when it happened.
	Dirs int
}

func (e *WatchLimitError) Error() string {
	return fmt.Sprintf("inotify watch limit reached at %d directories; raise it: "+
		"sysctl fs.inotify.max_user_watches=524288 (and persist in /etc/sysctl.d/)", e.Dirs)
}

// Is makes errors.Is(err, ErrWatchLimit) true.
func (e *WatchLimitError) Is(target error) bool { return target == ErrWatchLimit }

// Options tune a Tree. The zero value is ready to use.
type Options struct {
	// Exclude lists gitignore-style patterns of paths not to watch nor report
	// (see Tree.Excluded).
	Exclude []string
	// Quiet is how long a path must see no event, and the tree no event
	// for a path not yet waiting, before it is reported (default
	// DefaultQuiet). Linux has no portable close-write event, so this is
	// what coalesces the many writes of one file; it also keeps a burst's
	// paths (a rename's two names) in one batch.
	Quiet time.Duration
	// MaxDelay bounds how long a path that keeps changing waits before it is
	// reported anyway (default DefaultMaxDelay).
	MaxDelay time.Duration
	// RescanInterval is how often the whole tree is walked again as a
	// safety net, its watches repaired and a Rescan batch sent (default
	// DefaultRescanInterval; negative disables it).
	RescanInterval time.Duration
	// MaxPending is how many changed paths may wait for a slow consumer
	// before they are dropped for a single Rescan (default DefaultMaxPending).
	MaxPending int
	// MaxWatches, when above 0, makes the Tree behave as if inotify's
	// watch limit were reached at that many directories: for tests of what
	// happens then, without lowering the system's limit.
	MaxWatches int
}

func (o Options) withDefaults() Options {
	if o.Quiet <= 0 {
		o.Quiet = DefaultQuiet
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxDelay < o.Quiet {
		o.MaxDelay = o.Quiet
	}
	if o.RescanInterval == 0 {
		o.RescanInterval = DefaultRescanInterval
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	return o
}

// Batch tells the consumer which paths may have changed. It is a hint, not
// a description: the consumer looks at each path on disk (lstat, and hashes
// if size, mtime, ctime or inode differ from its index) to learn what, if
// anything, changed.
type Batch struct {
	// Paths are relative to the root, slash-separated, sorted and
	// deduplicated; "" (the root itself) never appears. A path may be a
	// file, a directory, a symlink (never followed) or gone. A directory
	// that is gone or is no longer a directory takes everything below it
	// with it: the consumer forgets every path it recorded under it (its
	// watched subdirectories are reported too, its files are not). A
	// directory that appears has every path below it reported in the same
	// batch (or a Rescan). An excluded path is never reported.
	Paths []string
	// Rescan means events may have been missed (the first batch after Run
	// starts, an inotify queue overflow, the periodic safety net, or more
	// than MaxPending paths waiting): the consumer must compare the whole
	// tree with its index. Paths is then empty. Every watch is in place
	// before a Rescan batch is sent, so a scan started after receiving it
	// misses nothing.
	Rescan bool
}

// Tree watches a directory tree recursively with inotify and reports which
// paths may have changed, in batches:
//
//	tree, err := watcher.New(cfg.Path, watcher.Options{Exclude: cfg.Exclude}, log)
//	...
//	go func() { errc <- tree.Run(ctx) }()
//	for b := range tree.Batches() {
//		// b.Rescan: compare the whole tree with the index; else look at b.Paths.
//	}
//	err = <-errc // why the batches ended: nil once ctx is done
//
// Each directory gets its own watch, added before the directory is read, so
// nothing created in a new directory goes unseen. Symlinks are reported,
// never followed. Run owns all of the watching state; the other methods may
// be called from any goroutine.
type Tree struct {
	root    string
	prefix  string // root + "/", what every watched path starts with
	opts    Options
	log     *zap.Logger
	excl    *excludes
	batches chan Batch
	watches atomic.Int64
	started atomic.Bool

	// newNotifier opens the inotify instance; tests replace it.
	newNotifier func() (notifier, error)

	// The fields below belong to the goroutine in Run.
	n        notifier
	dirs     map[string]*dirNode // every watched directory by relative path; the root is ""
	byID     map[fileID]string   // the relative path of every watched directory, by identity
	gen      uint64              // walk generation, for finding directories a resync did not see
	deb      *debouncer
	outbox   map[string]struct{} // due paths not yet in an offered batch
	rescan   bool                // a Rescan batch is owed
	offer    Batch               // the batch waiting for the consumer
	offered  bool                // offer is valid
	lastLog  time.Time           // when events were last logged as lost
	unlogged int                 // losses not logged since lastLog
}

// dirNode is one watched directory.
type dirNode struct {
	id       fileID              // identity of the directory the watch was added for
	children map[string]*dirNode // watched subdirectories by name
	seen     uint64              // the last walk generation that found it
}

// fileID identifies a file on this machine.
type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}
}

// New returns a Tree for the directory root, to be started with Run. It
// checks that root is a directory and that the exclude patterns compile; it
// opens nothing. A nil log means no logs.
func New(root string, opts Options, log *zap.Logger) (*Tree, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("watch %s: not a directory", root)
	}
	excl, err := compileExcludes(opts.Exclude)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	opts = opts.withDefaults()
	return &Tree{
		root:        abs,
		prefix:      strings.TrimSuffix(abs, "/") + "/",
		opts:        opts,
		log:         log.Named("watcher").With(zap.String("root", abs)),
		excl:        excl,
		batches:     make(chan Batch),
		newNotifier: newFSNotifier,
	}, nil
}

// Root returns the absolute path of the watched tree.
func (t *Tree) Root() string { return t.root }

// Batches returns the channel on which Run delivers batches. It is
// unbuffered; Run closes it when it returns.
//
// Nothing is dropped while the consumer is busy: paths keep accumulating
// (deduplicated) and the next receive gets all of them that are due, unless
// more than MaxPending accumulate, in which case they are replaced by a
// single Rescan batch.
func (t *Tree) Batches() <-chan Batch { return t.batches }

// Watches returns the number of directories watched now (the root
// included; 0 until Run has started watching); each costs one inotify
// watch.
func (t *Tree) Watches() int { return int(t.watches.Load()) }

// Excluded reports whether rel (relative to the root, slash-separated, as
// in Batch.Paths) is left out of syncing: it or one of its parent
// directories has a name starting with TempPrefix or matches an exclude
// pattern. isDir says whether rel is a directory, for patterns ending in
// "/". A scanner that uses it and skips excluded directories sees the same
// tree as the watcher.
func (t *Tree) Excluded(rel string, isDir bool) bool { return t.excl.match(rel, isDir) }

// Run watches the tree until ctx ends, then returns nil, or until it cannot
// go on, then returns why: a *WatchLimitError (errors.Is ErrWatchLimit), an
// error matching ErrRootGone, or an I/O error reading the tree. Either way
// it closes Batches before it returns, and paths not yet delivered are
// dropped (a new Tree starts with a Rescan batch).
//
// Run first watches every directory (that is not excluded), then sends a
// Rescan batch. Run may be called once.
func (t *Tree) Run(ctx context.Context) error {
	if !t.started.CompareAndSwap(false, true) {
		return errors.New("watcher: Run called twice")
	}
	defer close(t.batches)

	n, err := t.newNotifier()
	if err != nil {
		if errors.Is(err, syscall.EMFILE) {
			return fmt.Errorf("watch %s: %w; raise fs.inotify.max_user_instances "+
				"(sysctl, and persist in /etc/sysctl.d/) or the open-file limit", t.root, err)
		}
		return fmt.Errorf("watch %s: %w", t.root, err)
	}
	t.n = n
	defer func() {
		if err := n.Close(); err != nil {
			t.log.Warn("close inotify", zap.Error(err))
		}
	}()
	t.dirs = make(map[string]*dirNode)
	t.byID = make(map[fileID]string)
	t.deb = newDebouncer(t.opts.Quiet, t.opts.MaxDelay)
	t.outbox = make(map[string]struct{})

	start := time.Now()
	if err := t.resync(ctx); err != nil {
		return stopped(ctx, err)
	}
	t.log.Info("watching", zap.Int("dirs", len(t.dirs)), zap.Duration("took", time.Since(start)))
	t.needRescan()

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var armed time.Time // when debounce fires; zero while stopped
	var periodic *time.Timer
	var periodicC <-chan time.Time
	if t.opts.RescanInterval > 0 {
		periodic = time.NewTimer(t.opts.RescanInterval)
		defer periodic.Stop()
		periodicC = periodic.C
	}

	for {
		t.prepareOffer()
		var out chan<- Batch
		if t.offered {
			out = t.batches
		}
		if at, ok := t.deb.Next(); !ok {
			if !armed.IsZero() {
				debounce.Stop()
				armed = time.Time{}
			}
		} else if !at.Equal(armed) {
			debounce.Reset(time.Until(at))
			armed = at
		}

		select {
		case <-ctx.Done():
			return nil
		case out <- t.offer:
			t.offer, t.offered = Batch{}, false
		case <-debounce.C:
			armed = time.Time{}
			t.flushDue(time.Now())
		case ev, ok := <-n.Events():
			if !ok {
				return fmt.Errorf("watch %s: inotify events closed", t.root)
			}
			if err := t.handle(ctx, ev); err != nil {
				return stopped(ctx, err)
			}
		case err, ok := <-n.Errors():
			if !ok {
				return fmt.Errorf("watch %s: inotify errors closed", t.root)
			}
			if err := t.recoverLost(ctx, err); err != nil {
				return stopped(ctx, err)
			}
		case <-periodicC:
			t.log.Debug("periodic rescan")
			if err := t.resync(ctx); err != nil {
				return stopped(ctx, err)
			}
			t.needRescan()
			periodic.Reset(t.opts.RescanInterval)
		}
	}
}

// stopped returns err, or nil if it comes from ctx's end.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// needRescan owes the consumer a Rescan batch, which makes every path
// waiting for delivery redundant: the consumer's scan starts after it
// receives the batch, so it sees every change made before.
func (t *Tree) needRescan() {
	t.rescan = true
	t.deb.Reset()
	clear(t.outbox)
	if t.offered && !t.offer.Rescan {
		t.offer, t.offered = Batch{}, false
	}
}

// rescanOwed reports whether a Rescan batch is owed or offered: the
// consumer has not started its scan yet, so it will see any change made
// now without being told.
func (t *Tree) rescanOwed() bool { return t.rescan || (t.offered && t.offer.Rescan) }

// prepareOffer builds the batch to offer the consumer, if none is waiting.
// Paths that fall due while an offer waits go to the next batch: a busy
// consumer then receives two batches in a row, and the loop never sorts
// the waiting paths more than once per receive.
func (t *Tree) prepareOffer() {
	switch {
	case t.offered:
	case t.rescan:
		t.offer, t.offered, t.rescan = Batch{Rescan: true}, true, false
	case len(t.outbox) > 0:
		paths := make([]string, 0, len(t.outbox))
		for p := range t.outbox {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		t.offer, t.offered = Batch{Paths: paths}, true
		if len(t.outbox) > 4096 {
			t.outbox = make(map[string]struct{}) // let a burst's memory go
		} else {
			clear(t.outbox)
		}
	}
}

// touch records that rel may have changed.
func (t *Tree) touch(rel string, now time.Time) {
	if t.rescanOwed() {
		return
	}
	t.deb.Touch(rel, now)
	if t.deb.Len()+len(t.outbox)+len(t.offer.Paths) > t.opts.MaxPending {
		t.log.Warn("too many changed paths waiting for delivery; asking for a rescan instead",
			zap.Int("max_pending", t.opts.MaxPending))
		t.needRescan()
	}
}

// flushDue moves the paths that are quiet enough at now to the outbox.
func (t *Tree) flushDue(now time.Time) {
	t.deb.Due(now, func(p string) {
		if !t.rescanOwed() {
			t.outbox[p] = struct{}{}
		}
	})
}

// recoverLost handles an error from inotify: events may have been lost (on
// overflow the kernel drops them), including the creation of directories
// that are therefore not watched. The watches are repaired by a walk of the
// whole tree, then the consumer is told to rescan.
func (t *Tree) recoverLost(ctx context.Context, err error) error {
	now := time.Now()
	if now.Sub(t.lastLog) >= 10*time.Second {
		t.log.Warn("inotify events lost; rescanning", zap.Error(err), zap.Int("unlogged", t.unlogged))
		t.lastLog, t.unlogged = now, 0
	} else {
		t.unlogged++
	}
	if err := t.resync(ctx); err != nil {
		return err
	}
	t.needRescan()
	return nil
}

// handle takes one inotify event.
func (t *Tree) handle(ctx context.Context, ev fsnotify.Event) error {
	rel, ok := t.rel(ev.Name)
	if !ok {
		return nil
	}
	if rel == "" {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			return t.rootGone()
		}
		return nil
	}
	if _, ok := t.dirs[parentOf(rel)]; !ok {
		// A late event from the watch of a directory that has since been
		// removed or moved away (it may carry the directory's old name).
		// Whatever is there now is reported when its parent is walked.
		return nil
	}
	if strings.HasPrefix(baseOf(rel), TempPrefix) {
		return nil // tandem's own apply at work; spare it the lstat
	}
	now := time.Now()
	if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
		// Write or Chmod: the kind of file at rel is what it was.
		_, isDir := t.dirs[rel]
		if !t.excl.match(rel, isDir) {
			t.touch(rel, now)
		}
		return nil
	}
	return t.reconcile(ctx, rel, now)
}

// reconcile brings the watches at rel in line with what is on disk now, and
// reports rel, plus everything found below it or lost with it.
func (t *Tree) reconcile(ctx context.Context, rel string, now time.Time) error {
	fi, err := os.Lstat(t.abs(rel))
	if err != nil && !isVanished(err) {
		return fmt.Errorf("watch %s: %w", t.abs(rel), err)
	}
	isDir := err == nil && fi.IsDir()
	if node := t.dirs[rel]; node != nil {
		if isDir && node.id == idOf(fi) {
			// Still the directory we watch, e.g. the Create event of a
			// directory that a walk has already found.
			t.touch(rel, now)
			return nil
		}
		// Removed, moved away or replaced: it and all below it are gone.
		t.unwatch(rel, now, true)
	}
	if t.excl.match(rel, isDir) {
		return nil
	}
	t.touch(rel, now)
	if !isDir {
		return nil
	}
	return t.watch(ctx, rel, now, true)
}

// errVanished says that a directory was removed, or replaced by something
// else, while it was being watched or walked. Its parent's events report it.
var errVanished = errors.New("directory vanished")

// errAlias says that a directory is already watched under another name.
var errAlias = errors.New("directory watched under another name")

func isVanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

// watch watches the directory rel and every directory below it that is not
// excluded, walking down from rel. With report, every path found below rel
// is reported.
func (t *Tree) watch(ctx context.Context, rel string, now time.Time, report bool) error {
	stack := []string{rel}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err // a big walk must not hold up the end of Run
		}
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		entries, err := t.watchDir(dir, now, report)
		if errors.Is(err, errVanished) || errors.Is(err, errAlias) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			child := join(dir, e.Name())
			isDir := e.IsDir() // a symlink is not: it is reported, never followed
			if t.excl.matchLast(strings.Split(child, "/"), isDir) {
				continue
			}
			if report {
				t.touch(child, now)
			}
			if isDir {
				stack = append(stack, child)
			}
		}
	}
	return nil
}

// watchDir makes sure the directory rel is watched, then reads it. The
// watch is added before the read, so anything created in the directory
// meanwhile is either read or reported by an event. A directory already
// watched is not added again unless it was replaced. With report, the
// paths of watches dropped on the way are reported.
func (t *Tree) watchDir(rel string, now time.Time, report bool) ([]fs.DirEntry, error) {
	abs := t.abs(rel)
	for range 5 {
		id, err := t.statDir(rel)
		if err != nil {
			return nil, err
		}
		node := t.dirs[rel]
		if node != nil && node.id != id {
			if rel == "" {
				return nil, t.rootGone()
			}
			t.unwatch(rel, now, report)
			node = nil
		}
		if other, ok := t.byID[id]; ok && node == nil {
			if oid, err := t.statDir(other); err == nil && oid == id {
				// One directory under two names (a bind mount): inotify
				// gives it one watch, which reports under one name.
				t.log.Warn("directory also reachable under another name (a bind mount?); not watched under this one",
					zap.String("path", abs), zap.String("watched_as", t.abs(other)))
				return nil, errAlias
			}
			// The directory was watched under another name, and moved
			// without our seeing it (events lost). Its old watch must go
			// first: while it is registered, fsnotify would take the new
			// watch for the old one and report events under the old name.
			t.unwatch(other, now, report)
		}
		if node == nil {
			if t.opts.MaxWatches > 0 && len(t.dirs) >= t.opts.MaxWatches {
				return nil, t.addError(rel, syscall.ENOSPC)
			}
			if err := t.n.Add(abs); err != nil {
				return nil, t.addError(rel, err)
			}
			node = t.addNode(rel, id)
		}
		node.seen = t.gen

		// The watch went on whatever was at abs after the stat. Reading the
		// directory through a descriptor whose identity matches the stat
		// proves it was this directory, not one that replaced it.
		f, err := openDir(abs, rel == "")
		if err != nil {
			if isVanished(err) {
				return nil, errVanished
			}
			return nil, fmt.Errorf("watch %s: %w", abs, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("watch %s: %w", abs, err)
		}
		if idOf(fi) != id {
			f.Close()
			continue // replaced meanwhile: the next round re-adds the watch
		}
		entries, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", abs, err)
		}
		return entries, nil
	}
	return nil, fmt.Errorf("watch %s: the directory keeps being replaced", abs)
}

// statDir returns the identity of the directory rel, without following a
// symlink (except for the root, which may be one).
func (t *Tree) statDir(rel string) (fileID, error) {
	var fi fs.FileInfo
	var err error
	if rel == "" {
		fi, err = os.Stat(t.root)
	} else {
		fi, err = os.Lstat(t.abs(rel))
	}
	switch {
	case err != nil && !isVanished(err):
		return fileID{}, fmt.Errorf("watch %s: %w", t.abs(rel), err)
	case err == nil && fi.IsDir():
		return idOf(fi), nil
	case rel == "":
		return fileID{}, t.rootGone()
	default:
		return fileID{}, errVanished
	}
}

func openDir(abs string, follow bool) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_DIRECTORY
	if !follow {
		flags |= syscall.O_NOFOLLOW
	}
	return os.OpenFile(abs, flags, 0)
}

// addError turns an inotify_add_watch failure for rel into Run's error.
func (t *Tree) addError(rel string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return &WatchLimitError{Dirs: len(t.dirs)}
	case rel == "" && isVanished(err):
		return t.rootGone()
	case isVanished(err):
		return errVanished
	default:
		return fmt.Errorf("watch %s: %w", t.abs(rel), err)
	}
}

func (t *Tree) rootGone() error {
	return fmt.Errorf("watch %s: %w (removed, moved or unmounted); this tree is not synced until it is back",
		t.root, ErrRootGone)
}

func (t *Tree) addNode(rel string, id fileID) *dirNode {
	node := &dirNode{id: id}
	t.dirs[rel] = node
	t.byID[id] = rel
	if rel != "" {
		if parent := t.dirs[parentOf(rel)]; parent != nil {
			if parent.children == nil {
				parent.children = make(map[string]*dirNode)
			}
			parent.children[baseOf(rel)] = node
		}
	}
	t.watches.Store(int64(len(t.dirs)))
	return node
}

// unwatch removes the watches of the directory rel and of every directory
// below it. With report, each of them is reported.
func (t *Tree) unwatch(rel string, now time.Time, report bool) {
	node := t.dirs[rel]
	if node == nil {
		return
	}
	if rel != "" {
		if parent := t.dirs[parentOf(rel)]; parent != nil {
			delete(parent.children, baseOf(rel))
		}
	}
	type item struct {
		rel  string
		node *dirNode
	}
	stack := []item{{rel, node}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for name, child := range it.node.children {
			stack = append(stack, item{join(it.rel, name), child})
		}
		delete(t.dirs, it.rel)
		if t.byID[it.node.id] == it.rel {
			delete(t.byID, it.node.id)
		}
		// The kernel has already dropped the watch of a deleted directory,
		// so an error here says nothing worth acting on.
		_ = t.n.Remove(t.abs(it.rel))
		if report {
			t.touch(it.rel, now)
		}
	}
	t.watches.Store(int64(len(t.dirs)))
}

// resync walks the whole tree: it watches every directory not watched yet,
// re-watches every directory replaced since it was watched, and drops the
// watches of directories gone.
func (t *Tree) resync(ctx context.Context) error {
	t.gen++
	if err := t.watch(ctx, "", time.Time{}, false); err != nil {
		return err
	}
	for rel, node := range t.dirs {
		if node.seen != t.gen {
			t.unwatch(rel, time.Time{}, false)
		}
	}
	return nil
}

// rel returns name relative to the root; ok is false for a name outside it.
func (t *Tree) rel(name string) (rel string, ok bool) {
	if name == t.root {
		return "", true
	}
	rel, ok = strings.CutPrefix(name, t.prefix)
	return rel, ok && rel != ""
}

func (t *Tree) abs(rel string) string {
	if rel == "" {
		return t.root
	}
	return t.prefix + rel
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func parentOf(rel string) string {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ""
	}
	return rel[:i]
}

func baseOf(rel string) string { return rel[strings.LastIndexByte(rel, '/')+1:] }

// notifier is the part of an inotify instance that Tree uses; tests wrap or
// replace it to inject errors and lost events.
type notifier interface {
	Add(path string) error
	Remove(path string) error
	Events() <-chan fsnotify.Event
	Errors() <-chan error
	Close() error
}

type fsNotifier struct{ w *fsnotify.Watcher }

func newFSNotifier() (notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return fsNotifier{w}, nil
}

func (n fsNotifier) Add(path string) error         { return n.w.Add(path) }
func (n fsNotifier) Remove(path string) error      { return n.w.Remove(path) }
func (n fsNotifier) Events() <-chan fsnotify.Event { return n.w.Events }
func (n fsNotifier) Errors() <-chan error          { return n.w.Errors }
func (n fsNotifier) Close() error                  { return n.w.Close() }
