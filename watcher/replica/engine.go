package replica

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/watcher"
	"github.com/tandemhost/tandem/watcher/index"
)

// Root is one synced tree.
type Root struct {
	// Name identifies the tree on both nodes (the sync path).
	Name string
	// Dir is the tree's absolute path on this node.
	Dir string
	// Exclude lists gitignore-style patterns of paths not synced.
	Exclude []string

	// Excluded is the matcher built from Exclude.
	Excluded func(rel string, isDir bool) bool
}

// Options configure an Engine.
type Options struct {
	Node string // this node
	Peer string // the other node
	DB   *index.DB
	// Conflicts receives an entry for every conflict this node resolves.
	Conflicts *conflict.Log
	Roots     []Root
	Log       *zap.Logger
	// BulkStreams is how many streams carry large files (default 8).
	BulkStreams int
	// Window bounds the changes in flight per root (default 8192).
	Window int
	// Now is the clock for the conflict log (nil: time.Now).
	Now func() time.Time
	// maxWatches is watcher.Options.MaxWatches, for tests.
	maxWatches int
}

// Engine replicates the roots between this node and its peer.
type Engine struct {
	opts  Options
	log   *zap.Logger
	roots map[string]*rootState

	recvMu    sync.Mutex           // guards receivers
	receivers map[string]*receiver // the running receiver of each root, for bulk streams
}

// rootState is what the engine keeps per root, shared by its sender and
// receiver. Counters are atomics, read by Status at any time.
type rootState struct {
	Root
	tree *tree

	mu      sync.Mutex // guards changed
	changed chan struct{}

	cursor   atomic.Uint64 // the sender has gone through the index up to here
	cursorOK atomic.Bool   // cursor is known: the peer has told its watermark once
	inflight atomic.Int64  // sent, not acked
	sent     atomic.Int64  // changes sent since start
	applied  atomic.Int64  // peer changes applied since start
	asked    atomic.Int64  // peer files whose content this node asked for (Wants)
	lastSent atomic.Int64  // unix nanos
	lastAck  atomic.Int64
	lastApp  atomic.Int64
	lagNs    atomic.Int64 // last applied change's age (peer mtime to apply)
	halted   atomic.Pointer[string]
	recvErr  atomic.Pointer[string] // why applying the peer's changes last failed
	recvMu   sync.Mutex             // one receiver per root at a time

	local localState
}

// New checks opts and opens every root.
func New(opts Options) (*Engine, error) {
	if opts.Node == "" || opts.Peer == "" || opts.DB == nil {
		return nil, errors.New("replica: node, peer and index are required")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.BulkStreams <= 0 {
		opts.BulkStreams = 8
	}
	if opts.Window <= 0 {
		opts.Window = 8192
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{opts: opts, log: opts.Log.Named("replica"), roots: make(map[string]*rootState), receivers: make(map[string]*receiver)}
	for _, r := range opts.Roots {
		if e.roots[r.Name] != nil {
			e.Close()
			return nil, fmt.Errorf("two trees are named %q; give each [[sync]] its own name", r.Name)
		}
		m, err := watcher.NewExcluder(r.Exclude)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("exclude patterns of %s: %w", r.Dir, err)
		}
		r.Excluded = m.Match
		t, err := openTree(r.Dir)
		if err != nil {
			e.Close()
			return nil, err
		}
		if n := t.cleanTemps(); n > 0 {
			e.log.Info("removed unfinished transfers left by an earlier run", zap.String("root", r.Name), zap.Int("files", n))
		}
		e.roots[r.Name] = &rootState{Root: r, tree: t, changed: make(chan struct{}),
			local: localState{rescanPath: make(map[string]bool), rescanC: make(chan struct{}, 1)}}
	}
	return e, nil
}

// Close releases the roots.
func (e *Engine) Close() error {
	for _, r := range e.roots {
		r.tree.Close()
	}
	return nil
}

// Register installs the engine's stream handlers and its sender on node.
// Call it before node.Run.
func (e *Engine) Register(node *pipe.Node) {
	node.Handle(kindFiles, wantMaxFrame, e.receive)
	node.Handle(kindBulk, bulkMaxFrame, e.receiveBulk)
	node.OnSession(e.send)
}

// Notify tells the sender of root that the index has new local records.
// The local scan loop calls it after each scan that stored changes.
func (e *Engine) Notify(root string) {
	r := e.roots[root]
	if r == nil {
		return
	}
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *rootState) changedC() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Halt stops applying the peer's changes to root (and sending ours), with a
// reason shown in status; the scan loop calls it when the root vanishes.
// Resume clears it.
func (e *Engine) Halt(root, reason string) {
	if r := e.roots[root]; r != nil {
		r.halted.Store(&reason)
	}
}

// Resume clears a Halt.
func (e *Engine) Resume(root string) {
	if r := e.roots[root]; r != nil {
		r.halted.Store(nil)
	}
}

// RootStatus is what status shows per root.
type RootStatus struct {
	Name   string
	Queued int64
	// QueuedKnown: the peer has told where it is in this tree since start,
	// so Queued counts from there; before that, Queued is 0.
	QueuedKnown bool
	InFlight    int64
	Sent        int64
	Applied     int64
	LastSent    time.Time
	LastAck     time.Time
	LastApplied time.Time
	Lag         time.Duration
	Halted      string
	// ApplyError is why the last batch of the peer's changes failed to
	// apply, "" once one applies. The failed change is sent again.
	ApplyError string
}

// Status returns each root's counters, in the order of Options.Roots.
func (e *Engine) Status() []RootStatus {
	var out []RootStatus
	for _, cr := range e.opts.Roots {
		r := e.roots[cr.Name]
		st := RootStatus{
			Name:        r.Name,
			Queued:      e.queued(r),
			QueuedKnown: r.cursorOK.Load(),
			InFlight:    r.inflight.Load(),
			Sent:        r.sent.Load(),
			Applied:     r.applied.Load(),
			LastSent:    unixNano(r.lastSent.Load()),
			LastAck:     unixNano(r.lastAck.Load()),
			LastApplied: unixNano(r.lastApp.Load()),
			Lag:         time.Duration(r.lagNs.Load()),
		}
		if h := r.halted.Load(); h != nil {
			st.Halted = *h
		}
		if m := r.recvErr.Load(); m != nil {
			st.ApplyError = *m
		}
		out = append(out, st)
	}
	return out
}

// queued counts index records the sender has not gone through yet: local
// changes waiting for the peer (a few may turn out to be the peer's own).
// It keeps counting while the link is down.
func (e *Engine) queued(r *rootState) int64 {
	if !r.cursorOK.Load() {
		return 0 // not known before the first connection since start
	}
	seq, err := e.opts.DB.Seq(r.Name)
	if c := r.cursor.Load(); err == nil && seq > c {
		return int64(seq - c)
	}
	return 0
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// versionOf turns an index record into what conflict.Decide compares. A
// missing record is a version nobody made: deleted, empty vector.
func versionOf(node string, r *index.Record, ok bool) conflict.Version {
	if !ok {
		return conflict.Version{Node: node, Deleted: true}
	}
	v := conflict.Version{
		Node:    node,
		Vector:  r.Vector,
		Deleted: r.Deleted,
		Size:    r.Size,
		Mtime:   time.Unix(0, r.MtimeNs).UTC(),
		Target:  r.Target,
	}
	switch r.Type {
	case index.File:
		v.Type = conflict.TypeFile
		v.Hash = conflict.Hash(r.Hash)
	case index.Dir:
		v.Type = conflict.TypeDir
		v.Size, v.Mtime = 0, time.Time{}
	case index.Symlink:
		v.Type = conflict.TypeSymlink
	}
	return v
}

// LocalStatus is what the root's scan loop reports.
type LocalStatus struct {
	Scanning    bool
	ScanFiles   int64 // files looked at by scans since start
	ScanHashed  int64
	HashedBytes int64
	LastScan    time.Time
	Watches     int64
	Error       string
}

// Local returns the scan loop's status of root.
func (e *Engine) Local(root string) LocalStatus {
	r := e.roots[root]
	if r == nil {
		return LocalStatus{}
	}
	st := LocalStatus{
		Scanning:    r.local.scanning.Load(),
		ScanFiles:   r.local.progress.Files.Load(),
		ScanHashed:  r.local.progress.Hashed.Load(),
		HashedBytes: r.local.progress.HashedBytes.Load(),
		LastScan:    unixNano(r.local.lastScan.Load()),
		Watches:     r.local.watches.Load(),
	}
	if m := r.local.scanErr.Load(); m != nil {
		st.Error = *m
	}
	return st
}
