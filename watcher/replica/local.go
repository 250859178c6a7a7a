package replica

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/watcher"
	"github.com/tandemhost/tandem/watcher/index"
)

// localState is the scan loop's part of a root: what status shows about
// local change detection.
type localState struct {
	progress index.Progress
	scanning atomic.Bool
	lastScan atomic.Int64 // unix nanos of the last completed scan
	// initialTop is the index's top seq when the first full scan since
	// start completed (initialDone): what the tree held before live changes.
	initialTop  atomic.Uint64
	initialDone atomic.Bool
	watches     atomic.Int64
	scanErr     atomic.Pointer[string]
	rescanMu    sync.Mutex // guards rescanPaths, rescanC
	rescanPath  map[string]bool
	rescanC     chan struct{}
}

// Run watches every root and keeps the index up to date with it, telling
// the senders about new local changes, until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(e.opts.Roots))
	for _, cr := range e.opts.Roots {
		r := e.roots[cr.Name]
		wg.Go(func() {
			if err := e.watchRoot(ctx, r); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// rescan queues paths for the root's scan loop.
func (e *Engine) rescan(root string, paths []string) {
	r := e.roots[root]
	if r == nil {
		return
	}
	r.local.rescanMu.Lock()
	for _, p := range paths {
		r.local.rescanPath[p] = true
	}
	select {
	case r.local.rescanC <- struct{}{}:
	default:
	}
	r.local.rescanMu.Unlock()
}

// watchRoot runs one root's watcher and scans what it reports. A watcher
// that fails (root gone, watch limit) is reported, and the root is watched
// again after a pause: nothing is left silently unwatched.
func (e *Engine) watchRoot(ctx context.Context, r *rootState) error {
	log := e.log.With(zap.String("root", r.Name))
	wait := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := e.watchOnce(ctx, r, log)
		if ctx.Err() != nil {
			return nil
		}
		msg := err.Error()
		r.local.scanErr.Store(&msg)
		if errors.Is(err, watcher.ErrRootGone) || errors.Is(err, index.ErrRootVanished) {
			msg = "the tree vanished or was emptied at once (unmounted disk?); nothing is deleted on the peer, replication resumes when it is back: " + msg
			r.halted.Store(&msg)
		}
		if time.Since(started) > time.Minute {
			wait = time.Second
		}
		log.Error("watching stopped; retrying", zap.Duration("in", wait), zap.Error(err))
		t := time.NewTimer(wait)
		wait = min(2*wait, 30*time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

func (e *Engine) watchOnce(ctx context.Context, r *rootState, log *zap.Logger) error {
	tree, err := watcher.New(r.Dir, watcher.Options{Exclude: r.Exclude, MaxWatches: e.opts.maxWatches}, e.opts.Log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	treeErr := make(chan error, 1)
	go func() { treeErr <- tree.Run(ctx) }()
	defer func() { cancel(); <-treeErr }()

	scan := func(paths []string) error {
		r.local.scanning.Store(true)
		defer r.local.scanning.Store(false)
		changed, err := index.Scan(ctx, e.opts.DB, r.Name, r.Dir, e.opts.Node, index.ScanOptions{
			Paths: paths, Excluded: r.Excluded, Progress: &r.local.progress, Now: e.opts.Now,
		})
		r.local.watches.Store(int64(tree.Watches()))
		if len(changed) > 0 {
			e.Notify(r.Name)
		}
		if errors.Is(err, index.ErrRootVanished) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			msg := err.Error()
			r.local.scanErr.Store(&msg)
			log.Warn("scan", zap.Error(err))
			return nil
		}
		r.local.scanErr.Store(nil)
		r.local.lastScan.Store(e.opts.Now().UnixNano())
		if paths == nil && !r.local.initialDone.Load() {
			if top, err := e.opts.DB.Seq(r.Name); err == nil {
				r.local.initialTop.Store(top)
				r.local.initialDone.Store(true)
			}
		}
		if r.halted.Load() != nil && paths == nil {
			r.halted.Store(nil)
			log.Info("root is back; replication resumes")
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-treeErr:
			treeErr <- err
			if errors.Is(err, watcher.ErrWatchLimit) {
				// Part of the tree has no watch: scan all of it now (and
				// at every retry), so that changes there are picked up
				// late, never missed.
				if serr := scan(nil); serr != nil {
					return serr
				}
			}
			return err
		case b := <-tree.Batches():
			var paths []string
			if !b.Rescan {
				paths = b.Paths
			}
			if err := scan(paths); err != nil {
				return err
			}
		case <-r.local.rescanC:
			r.local.rescanMu.Lock()
			paths := make([]string, 0, len(r.local.rescanPath))
			for p := range r.local.rescanPath {
				paths = append(paths, p)
			}
			clear(r.local.rescanPath)
			r.local.rescanMu.Unlock()
			sort.Strings(paths)
			if err := scan(paths); err != nil {
				return err
			}
		}
	}
}
