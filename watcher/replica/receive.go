package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/zeebo/blake3"
	"go.uber.org/zap"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/pipe/delta"
	"github.com/tandemhost/tandem/watcher/index"
)

// recvBatch bounds how many changes are applied in one index transaction.
const recvBatch = 512

// smallBatch is the most changes applied with an fsync each rather than
// one syncfs for the batch.
const smallBatch = 8

// receiver applies one sender's changes to one root. One goroutine (run)
// owns it; bulk streams reach its large transfers through pendingMu.
type receiver struct {
	e  *Engine
	r  *rootState
	st *pipe.Stream

	// Seqs received and not yet applied, ascending: large files waiting
	// for their content. The watermark stays below the first.
	waiting []uint64
	// last is the highest seq received so far.
	last uint64
	// acked is the watermark committed and acked.
	acked uint64

	pendingMu sync.Mutex // guards pending, seen
	pending   map[uint64]*transfer
	seen      uint64 // the highest seq received, for bulk streams

	done chan *transfer // transfers whose every byte arrived (or failed)
	quit chan struct{}  // closed when run returns

	// par writes a batch's new small files on a few goroutines; nil
	// outside a batch. parPaths are the paths it has in hand.
	par      *parallel
	parPaths map[string]bool

	// rmdirs are directories this batch deleted that still held entries
	// when their turn came.
	rmdirs []string

	// Renames within one batch: files this batch deletes, by content hash,
	// so that a large file created elsewhere with the same content is
	// moved locally instead of sent again. See renameSources.
	sources map[[32]byte]string // hash -> path deleted in this batch
	trash   map[[32]byte]string // hash -> where a deleted source waits
	reused  map[[32]byte]bool   // sources already taken by a create
}

// transfer is a large file arriving over bulk streams.
type transfer struct {
	c     *Change
	tmp   *os.File
	name  string
	basis *os.File // the receiver's copy the deltas refer to, or nil
	mu    sync.Mutex
	got   int64
	err   error
	// dropped: a delete of its path or above, or an Abandon, superseded
	// it after all its bytes had arrived; finish skips it. Guarded by mu.
	dropped bool
	// handed: all its bytes arrived (or it failed) and it was given to
	// run over done; it stays in pending, where a delete can still drop
	// it, until finish. Guarded by the receiver's pendingMu.
	handed bool
}

// errNoTransfer: a range arrived for a transfer that is over.
var errNoTransfer = errors.New("no such transfer")

func (e *Engine) receive(ctx context.Context, st *pipe.Stream) error {
	typ, body, err := st.Recv()
	if err != nil {
		return err
	}
	var open Open
	if typ != typeOpen {
		return fmt.Errorf("%w: type %d instead of Open", pipe.ErrMalformed, typ)
	}
	if err := pipe.Unmarshal(body, &open); err != nil {
		return err
	}
	r := e.roots[open.Root]
	if r == nil {
		st.Send(&Opened{Error: fmt.Sprintf("node %s syncs no tree named %q; give a [[sync]] there that name (or the same path), or remove the tree on %s", e.opts.Node, open.Root, e.opts.Peer)})
		return nil
	}
	if h := r.halted.Load(); h != nil {
		st.Send(&Opened{Error: fmt.Sprintf("tree %s is halted on %s: %s", r.Name, e.opts.Node, *h)})
		return nil
	}
	r.recvMu.Lock()
	defer r.recvMu.Unlock()
	wm, err := e.opts.DB.Watermark(r.Name, e.opts.Peer)
	if err != nil {
		return err
	}
	if err := st.Send(&Opened{Watermark: wm, Empty: wm == 0 && r.tree.empty()}); err != nil {
		return err
	}
	rc := &receiver{e: e, r: r, st: st, last: wm, acked: wm, pending: make(map[uint64]*transfer),
		done: make(chan *transfer, 16), quit: make(chan struct{})}
	e.setReceiver(r.Name, rc)
	defer e.setReceiver(r.Name, nil)
	defer func() {
		// Transfers handed over but not finished: their temp files go.
		for {
			select {
			case tr := <-rc.done:
				rc.closeTransfer(tr)
			default:
				return
			}
		}
	}()
	defer rc.dropAll()
	defer close(rc.quit)
	err = rc.run(ctx)
	if err != nil && ctx.Err() == nil {
		msg := err.Error()
		r.recvErr.Store(&msg)
	}
	return err
}

func (e *Engine) setReceiver(root string, rc *receiver) {
	e.recvMu.Lock()
	defer e.recvMu.Unlock()
	if rc == nil {
		delete(e.receivers, root)
		return
	}
	e.receivers[root] = rc
}

func (e *Engine) receiverOf(root string) *receiver {
	e.recvMu.Lock()
	defer e.recvMu.Unlock()
	return e.receivers[root]
}

type incoming struct {
	change  *Change
	abandon uint64
}

// testHookWaitMore, when set (before the engine starts), is called with
// the batch's length each time the receiver waits for the rest of a
// flagged batch.
var testHookWaitMore func(n int)

// more reports whether the sender flagged more changes of the same batch
// right behind this one; an Abandon leaves that as it was (was).
func (it incoming) more(was bool) bool {
	if it.change == nil {
		return was
	}
	return it.change.Flags&flagMore != 0
}

func (rc *receiver) run(ctx context.Context) error {
	in := make(chan incoming, recvBatch)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			typ, body, err := rc.st.Recv()
			if err != nil {
				errc <- err
				return
			}
			var item incoming
			switch typ {
			case typeChange:
				c, err := decodeChange(body)
				if err != nil {
					errc <- fmt.Errorf("refused change: %w", err)
					return
				}
				c.Data = bytes.Clone(c.Data)
				item.change = c
			case typeAbandon:
				var m Abandon
				if err := pipe.Unmarshal(body, &m); err != nil {
					errc <- err
					return
				}
				item.abandon = m.Seq
			default:
				errc <- fmt.Errorf("%w: frame type %d from sender", pipe.ErrMalformed, typ)
				return
			}
			select {
			case in <- item:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, pipe.ErrMalformed) || errors.Is(err, ErrBadPath) {
				rc.e.log.Warn("refused a change from the peer; closing its stream", zap.String("root", rc.r.Name), zap.Error(err))
			}
			return err
		case t := <-rc.done:
			// Finish what else has arrived with it in one go: one scan,
			// one intent, one commit and one filesystem sync for all, not
			// one each (a first sync of a tree the peer lacks is
			// thousands of them).
			done := []*transfer{t}
		more:
			for len(done) < recvBatch {
				select {
				case t := <-rc.done:
					done = append(done, t)
				default:
					break more
				}
			}
			if err := rc.finish(ctx, done...); err != nil {
				return err
			}
		case item := <-in:
			// What has arrived goes as one batch, and so does the rest of
			// a batch the sender flagged as having more (flagMore).
			batch := []incoming{item}
			more := item.more(false)
		drain:
			for len(batch) < recvBatch {
				var item incoming
				if more {
					if testHookWaitMore != nil {
						testHookWaitMore(len(batch))
					}
					select {
					case item = <-in:
					case <-ctx.Done():
						return nil
					case err := <-errc:
						errc <- err // the reader has ended: the slot is free
						break drain
					}
				} else {
					select {
					case item = <-in:
					default:
						break drain
					}
				}
				batch = append(batch, item)
				more = item.more(more)
			}
			if err := rc.apply(ctx, batch); err != nil {
				return err
			}
		}
	}
}

// apply decides and applies a batch of changes and acks what is durable.
func (rc *receiver) apply(ctx context.Context, batch []incoming) error {
	if h := rc.r.halted.Load(); h != nil {
		return fmt.Errorf("tree %s halted: %s", rc.r.Name, *h)
	}
	var changes []*Change
	for _, it := range batch {
		if it.change != nil {
			if it.change.Seq <= rc.last {
				return fmt.Errorf("%w: change %d after %d", pipe.ErrMalformed, it.change.Seq, rc.last)
			}
			rc.last = it.change.Seq
			rc.pendingMu.Lock()
			rc.seen = it.change.Seq
			rc.pendingMu.Unlock()
			changes = append(changes, it.change)
		} else {
			rc.abandon(it.abandon)
		}
	}
	if len(changes) == 0 {
		return rc.commit(nil, nil)
	}
	paths := make([]string, 0, len(changes))
	for _, c := range changes {
		paths = append(paths, c.Rec.Path)
	}
	if err := rc.refresh(ctx, paths); err != nil {
		return err
	}
	release := rc.e.opts.DB.Hold(rc.r.Name, paths...)
	defer release()
	if err := rc.intend(changes...); err != nil {
		return err
	}
	rc.renameSources(changes)
	defer rc.emptyTrash()
	rc.rmdirs = nil
	var recs []index.Record
	t := rc.r.tree
	if len(changes) > smallBatch {
		// syncfs flushes the whole filesystem: worth it for a burst,
		// not for a file or two, whose own fsyncs are cheaper and are not
		// slowed by other programs' dirty data.
		t.begin()
		rc.par, rc.parPaths = newParallel(parallelWrites), make(map[string]bool)
		defer func() { rc.par, rc.parPaths = nil, nil }()
	}
	var failed error
	for _, c := range changes {
		out, err := rc.act(c, nil)
		if err != nil {
			// What was applied before stays applied and recorded; the
			// watermark stops below the change that failed, which the
			// sender sends again.
			failed = fmt.Errorf("apply %s: %w", c.Rec.Path, err)
			rc.last = c.Seq - 1
			break
		}
		recs = append(recs, out...)
	}
	if err := rc.barrier(); err != nil {
		// Writing a checked file failed (disk full, permissions): no file
		// of the batch is renamed into place, nothing is recorded, and the
		// sender sends it all again.
		t.discard()
		return err
	}
	if err := t.flush(); err != nil {
		return err
	}
	// Deleted files kept aside for renames, and directories deleted before
	// what was in them, go now that every rename is done.
	rc.emptyTrash()
	rc.retryRmdirs()
	// Stat caches are taken after the renames, which a batch defers.
	t.begin() // for the sub-root cache of stamp
	for i := range recs {
		t.stamp(&recs[i])
	}
	t.flush()
	if err := rc.commit(recs, paths, release); err != nil {
		return err
	}
	if failed == nil {
		rc.r.recvErr.Store(nil)
	}
	return failed
}

// refresh scans paths so that the index knows about local writes that
// happened since the last event: they must be decided against, not
// overwritten.
func (rc *receiver) refresh(ctx context.Context, all []string) error {
	// A path that is neither on disk nor live in the index has nothing to
	// refresh: the common case of a new file from the peer. Skipping it
	// also keeps the scanner from widening to the nearest indexed parent.
	var paths []string
	for _, p := range all {
		if _, err := rc.r.tree.root.Lstat(p); err != nil {
			if rec, ok, _ := rc.e.opts.DB.Get(rc.r.Name, p); !ok || rec.Deleted {
				continue
			}
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil
	}
	changed, err := index.Scan(ctx, rc.e.opts.DB, rc.r.Name, rc.r.Dir, rc.e.opts.Node, index.ScanOptions{
		Paths: paths, Excluded: rc.r.Excluded, Workers: 2,
	})
	if errors.Is(err, index.ErrRootVanished) {
		reason := err.Error()
		rc.r.halted.Store(&reason)
		return err
	}
	if err != nil {
		rc.e.log.Warn("scan before apply", zap.String("root", rc.r.Name), zap.Error(err))
	}
	if len(changed) > 0 {
		rc.e.Notify(rc.r.Name)
	}
	return nil
}

// commit stores recs with the new watermark, releases holds, asks for a
// rescan of the paths written and acks.
func (rc *receiver) commit(recs []index.Record, paths []string, release ...func()) error {
	wm := rc.last
	if len(rc.waiting) > 0 {
		wm = rc.waiting[0] - 1
	}
	if wm < rc.acked {
		wm = rc.acked
	}
	if len(recs) > 0 || wm > rc.acked {
		if _, err := rc.e.opts.DB.Apply(rc.r.Name, rc.e.opts.Peer, wm, recs...); err != nil {
			return fmt.Errorf("record applied changes: %w", err)
		}
	}
	for _, f := range release {
		f()
	}
	for _, rec := range recs {
		if rec.Origin != rc.e.opts.Peer {
			// Conflict copies and merged versions are ours to send.
			rc.e.Notify(rc.r.Name)
			break
		}
	}
	if len(paths) > 0 {
		rc.e.rescan(rc.r.Name, paths)
	}
	if wm > rc.acked {
		rc.acked = wm
		if err := rc.st.Send(&Ack{Seq: wm}); err != nil {
			return err
		}
	}
	return nil
}

// content is where a file's new bytes come from when a change is acted on.
type content struct {
	tmp  *os.File
	name string // tmp's name in the root
}

// act applies one change (whose content is in c or in ct) and returns the
// index records to store. A large file whose content has not arrived yet
// starts a transfer and returns nothing.
func (rc *receiver) act(c *Change, ct *content) ([]index.Record, error) {
	e, r, rec := rc.e, rc.r, &c.Rec
	if r.Excluded(rec.Path, rec.Type == index.Dir) {
		return nil, nil
	}
	local, ok, err := e.opts.DB.Get(r.Name, rec.Path)
	if err != nil {
		return nil, err
	}
	lv, rv := versionOf(e.opts.Node, &local, ok), versionOf(e.opts.Peer, rec, true)
	d := conflict.Decide(rec.Path, lv, rv, rc.copyTaken(rec.Path, lv, rv))

	// Where the remote version must be written, if anywhere.
	dest := ""
	switch {
	case d.Action == conflict.Apply || (d.Action == conflict.Conflict && d.Winner == conflict.Remote):
		dest = rec.Path
	case d.Action == conflict.Conflict && d.KeepLoserAs != "":
		dest = d.KeepLoserAs
	}
	// The loser's copy that the peer made and sent, when it decided this
	// conflict first: nothing to write.
	copyHere := d.Action == conflict.Conflict && d.Winner == conflict.Local && d.KeepLoserAs != "" && rc.holds(d.KeepLoserAs, rv)
	if dest != "" && rec.Type == index.File && !rec.Deleted && ct == nil && c.Flags&flagInline == 0 {
		same := ok && !local.Deleted && local.Type == index.File && local.Hash == rec.Hash && dest == rec.Path
		if !same && !copyHere {
			if ct = rc.moved(rec.Hash, dest); ct == nil {
				return nil, rc.startTransfer(c, ok, &local)
			}
		}
	}

	e.log.Debug("change from peer", zap.String("root", r.Name), zap.String("path", rec.Path),
		zap.Uint64("seq", c.Seq), zap.Stringer("decision", d))
	if rc.par != nil && d.Action == conflict.Apply && rec.Type == index.File && !rec.Deleted &&
		c.Flags&flagInline != 0 && ct == nil && !(ok && !local.Deleted && local.Type == index.Dir) && !rc.parPaths[rec.Path] {
		// A new version of a small file: written beside the others of the
		// batch, renamed into place with them at flush.
		data, err := inlineData(c)
		if err != nil {
			return nil, err // checked here, so a bad change fails in order
		}
		w := *rec
		w.Vector = d.Merged
		rc.parPaths[rec.Path] = true
		rc.par.do(func() error { return r.tree.writeFile(w.Path, &w, data) })
		r.applied.Add(1)
		r.lastApp.Store(e.opts.Now().UnixNano())
		return []index.Record{w}, nil
	}
	// Everything else runs alone, after what runs in parallel.
	if err := rc.barrier(); err != nil {
		return nil, err
	}
	now := e.opts.Now()
	var out []index.Record
	switch d.Action {
	case conflict.Ignore:
		return nil, nil
	case conflict.Merge:
		if d.Winner == conflict.Remote && rec.Deleted && !local.Deleted {
			// The peer deleted exactly what we hold (see Decide, rule
			// 0): the delete applies.
			w := *rec
			w.Vector = d.Merged
			if err := rc.write(&w, c, ct, ok, &local); err != nil {
				return nil, err
			}
			out = append(out, w)
			break
		}
		m := local
		m.Vector = d.Merged
		m.PeerHas = true // the same content: the peer needs the vector, not the bytes
		if d.Winner == conflict.Remote && !local.Deleted && !rec.Deleted {
			m.Mode, m.UID, m.GID, m.MtimeNs = rec.Mode, rec.UID, rec.GID, rec.MtimeNs
			if err := r.tree.setMeta(rec.Path, &m); err != nil {
				return nil, fmt.Errorf("apply %s: %w", rec.Path, err)
			}
		}
		r.tree.stamp(&m)
		return []index.Record{m}, nil
	case conflict.Apply:
		w := *rec
		w.Vector = d.Merged
		if err := rc.write(&w, c, ct, ok, &local); err != nil {
			return nil, err
		}
		out = append(out, w)
	case conflict.Conflict:
		if d.Winner == conflict.Remote {
			if d.KeepLoserAs != "" && ok && !local.Deleted {
				if err := r.tree.renameIn(rec.Path, d.KeepLoserAs); err != nil {
					return nil, fmt.Errorf("keep %s's version of %s: %w", e.opts.Node, rec.Path, err)
				}
				cp := local
				cp.Path, cp.Vector, cp.Origin = d.KeepLoserAs, d.CopyVector, e.opts.Node
				r.tree.stamp(&cp)
				out = append(out, cp)
			}
			w := *rec
			w.Vector = d.Merged
			if err := rc.write(&w, c, ct, false, nil); err != nil {
				return nil, err
			}
			out = append(out, w)
		} else {
			if d.KeepLoserAs != "" && !rec.Deleted && !copyHere {
				// The copy is this node's to send: the peer may learn of
				// the conflict only through our merged version, which
				// dominates its own, and then keeps no copy itself.
				cp := *rec
				cp.Path, cp.Vector, cp.Origin = d.KeepLoserAs, d.CopyVector, e.opts.Node
				if err := rc.write(&cp, c, ct, false, nil); err != nil {
					return nil, err
				}
				out = append(out, cp)
			}
			m := local
			m.Vector = d.Merged
			r.tree.stamp(&m)
			out = append(out, m)
		}
		entry := conflict.NewEntry(r.Name, rec.Path, versionOf(e.opts.Node, &local, ok), versionOf(e.opts.Peer, rec, true), d)
		entry.Time = now.UTC()
		if e.opts.Conflicts != nil {
			if _, err := e.opts.Conflicts.Append(entry); err != nil {
				return nil, fmt.Errorf("conflict log: %w", err)
			}
		}
		e.log.Warn("conflict", zap.String("root", r.Name), zap.String("path", rec.Path),
			zap.String("winner", d.Winner.Of(versionOf(e.opts.Node, &local, ok), versionOf(e.opts.Peer, rec, true)).Node),
			zap.String("kept_as", d.KeepLoserAs), zap.String("kind", string(d.Kind)))
	}
	r.applied.Add(1)
	r.lastApp.Store(now.UnixNano())
	if rec.MtimeNs > 0 && rec.Type == index.File {
		r.lagNs.Store(max(0, now.UnixNano()-rec.MtimeNs))
	}
	return out, nil
}

// copyTaken returns Decide's taken for a conflict between lv and rv at
// path: a name is taken when something is there, unless it is the loser's
// copy already (its record holds the loser's content), which the peer made
// and sent when it decided the same conflict first. Both nodes then choose
// the same name, and keep one copy, not two.
func (rc *receiver) copyTaken(path string, lv, rv conflict.Version) func(string) bool {
	loser := conflict.Decide(path, lv, rv, nil).Winner.Other().Of(lv, rv)
	return func(name string) bool {
		if _, err := rc.r.tree.root.Lstat(name); err != nil {
			return false
		}
		return !rc.holds(name, loser)
	}
}

// holds reports whether the file or symlink at name has v's content, as
// it is on disk now: the copy may have been written earlier in this batch,
// before its record is stored.
func (rc *receiver) holds(name string, v conflict.Version) bool {
	root := rc.r.tree.root
	fi, err := root.Lstat(name)
	if err != nil || v.Deleted {
		return false
	}
	switch {
	case v.Type == conflict.TypeSymlink && fi.Mode()&os.ModeSymlink != 0:
		target, err := root.Readlink(name)
		return err == nil && target == v.Target
	case v.Type == conflict.TypeFile && fi.Mode().IsRegular() && fi.Size() == v.Size:
		f, err := root.Open(name)
		if err != nil {
			return false
		}
		defer f.Close()
		sum, err := hashOf(f)
		return err == nil && conflict.Hash(sum) == v.Hash
	}
	return false
}

// hashOf returns the BLAKE3 hash of what r holds.
func hashOf(r io.Reader) ([32]byte, error) {
	var sum [32]byte
	h := blake3.New()
	if _, err := io.Copy(h, r); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// write puts version w (a record from the peer, maybe at another path) on
// disk and stamps it. For files the content comes from ct, the change's
// inline data, or (same hash) the local copy already there.
func (rc *receiver) write(w *index.Record, c *Change, ct *content, hadLocal bool, local *index.Record) error {
	t := rc.r.tree
	if w.Deleted && w.Type == index.File && rc.sources[w.Hash] == w.Path && !rc.reused[w.Hash] {
		// A file created elsewhere in this batch may want this content:
		// keep it aside until the batch ends.
		name := tempName(w.Path)
		if err := t.renameIn(w.Path, name); err == nil {
			rc.trash[w.Hash] = name
			return nil
		}
	}
	if w.Deleted {
		// Transfers still in flight for the path or below it are
		// superseded by this delete: their temp files would keep a
		// directory the peer deleted from going.
		rc.dropTransfers(w.Path)
		err := t.remove(w.Path)
		if errors.Is(err, errNotEmpty) {
			// The directory still holds entries: ones the peer deletes
			// later in this batch (tried again at its end), or ones this
			// node has and the peer did not delete, which replicate back
			// and keep it.
			rc.rmdirs = append(rc.rmdirs, w.Path)
			return nil
		}
		if err == nil {
			rc.removeDeletedParents(w.Path)
		}
		return err
	}
	// A directory in the way of a file or symlink stays if it holds
	// anything; otherwise it goes.
	if w.Type != index.Dir {
		if fi, err := t.root.Lstat(w.Path); err == nil && fi.IsDir() {
			if err := t.remove(w.Path); err != nil {
				return fmt.Errorf("replace directory %s with a %s: %w", w.Path, w.Type, err)
			}
		}
	}
	switch w.Type {
	case index.Dir:
		if fi, err := t.root.Lstat(w.Path); err == nil && !fi.IsDir() {
			if err := t.remove(w.Path); err != nil {
				return err
			}
		}
		if err := t.mkdir(w.Path, w); err != nil {
			return err
		}
	case index.Symlink:
		if err := t.symlink(w.Path, w); err != nil {
			return err
		}
	case index.File:
		switch {
		case ct != nil && ct.tmp != nil:
			if err := t.commitFile(ct.tmp, ct.name, w.Path, w); err != nil {
				return err
			}
			ct.tmp = nil
		case c.Flags&flagInline != 0:
			data, err := inlineData(c)
			if err != nil {
				return err
			}
			if err := t.writeFile(w.Path, w, data); err != nil {
				return err
			}
		default:
			// Same content as the local copy: only metadata changes.
			if err := t.setMeta(w.Path, w); err != nil {
				return fmt.Errorf("apply %s: %w", w.Path, err)
			}
		}
	}
	t.stamp(w)
	return nil
}

// intend records the peer's versions about to be written (deletes too), so
// that a crash before they are recorded does not make them look like local
// changes (see index.Intend).
func (rc *receiver) intend(changes ...*Change) error {
	recs := make([]index.Record, len(changes))
	for i, c := range changes {
		recs[i] = c.Rec
	}
	return rc.e.opts.DB.Intend(rc.r.Name, recs...)
}

// dropTransfers abandons the transfers in flight for rel or below it.
func (rc *receiver) dropTransfers(rel string) {
	rc.pendingMu.Lock()
	var drop []uint64
	for seq, tr := range rc.pending {
		if p := tr.c.Rec.Path; p == rel || strings.HasPrefix(p, rel+"/") {
			drop = append(drop, seq)
		}
	}
	rc.pendingMu.Unlock()
	for _, seq := range drop {
		rc.abandon(seq)
	}
}

// retryRmdirs removes, deepest first, the directories this batch deleted
// that were not empty at the time: the peer deletes a directory before what
// was in it. One still holding entries stays (see write).
func (rc *receiver) retryRmdirs() {
	dirs := rc.rmdirs
	rc.rmdirs = nil
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		if rc.r.tree.remove(d) == nil {
			rc.removeDeletedParents(d)
		}
	}
}

// removeDeletedParents removes the now empty parents of a deleted path
// whose own deletion, applied in an earlier batch, had to leave them
// because they still held entries. Without this an empty directory the
// peer deleted would stay, be found by the next scan as new, and come back
// to life on the peer.
func (rc *receiver) removeDeletedParents(rel string) {
	for p := path.Dir(rel); p != "." && p != "/"; p = path.Dir(p) {
		rec, ok, err := rc.e.opts.DB.Get(rc.r.Name, p)
		if err != nil || !ok || !rec.Deleted {
			return
		}
		if rc.r.tree.remove(p) != nil {
			return
		}
	}
}

// startTransfer asks the sender for a large file's content, as deltas
// against the local copy at the same path when there is one.
func (rc *receiver) startTransfer(c *Change, hadLocal bool, local *index.Record) error {
	t := rc.r.tree
	tmp, name, err := t.createTemp(c.Rec.Path)
	if err != nil {
		return err
	}
	if err := tmp.Truncate(c.Rec.Size); err != nil {
		tmp.Close()
		t.root.Remove(name)
		return err
	}
	tr := &transfer{c: c, tmp: tmp, name: name}
	var sig bytes.Buffer
	if hadLocal && !local.Deleted && local.Type == index.File {
		if f, err := t.root.Open(c.Rec.Path); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				if s, err := delta.Sign(io.NewSectionReader(f, 0, fi.Size()), fi.Size()); err == nil {
					s.WriteTo(&sig)
					tr.basis = f
				}
			}
			if tr.basis == nil {
				f.Close()
			}
		}
	}
	rc.pendingMu.Lock()
	rc.pending[c.Seq] = tr
	rc.pendingMu.Unlock()
	rc.waiting = append(rc.waiting, c.Seq)
	rc.e.log.Debug("asking for content", zap.String("path", c.Rec.Path), zap.Uint64("seq", c.Seq),
		zap.Bool("have_basis", tr.basis != nil), zap.Int("signature_bytes", sig.Len()))
	rc.r.asked.Add(1)
	return rc.st.Send(&Want{Seq: c.Seq, Signature: sig.Bytes()})
}

// finish applies a large file whose bytes all arrived.
func (rc *receiver) finish(ctx context.Context, trs ...*transfer) error {
	live := trs[:0]
	for _, tr := range trs {
		tr.mu.Lock()
		dropped := tr.dropped
		tr.mu.Unlock()
		if dropped {
			continue // superseded while it waited (see abandon)
		}
		live = append(live, tr)
	}
	trs = live
	if len(trs) == 0 {
		return nil
	}
	for _, tr := range trs {
		rc.forget(tr.c.Seq)
		defer rc.closeTransfer(tr)
	}
	// Check every file's content first; a bad one fails them all, and
	// the sender sends what was not acknowledged again.
	tmps := make([]*os.File, len(trs))
	for i, tr := range trs {
		tr.mu.Lock()
		trErr, tmp := tr.err, tr.tmp
		tr.mu.Unlock()
		if trErr != nil {
			rc.e.log.Warn("large file transfer failed; the sender sends it again", zap.String("path", tr.c.Rec.Path), zap.Error(trErr))
			return trErr
		}
		sum, err := hashOf(io.NewSectionReader(tmp, 0, tr.c.Rec.Size))
		if err != nil {
			return err
		}
		if sum != tr.c.Rec.Hash {
			return fmt.Errorf("%w: content of %s does not match its hash", pipe.ErrMalformed, tr.c.Rec.Path)
		}
		tmps[i] = tmp
	}
	paths := make([]string, len(trs))
	changes := make([]*Change, len(trs))
	for i, tr := range trs {
		paths[i], changes[i] = tr.c.Rec.Path, tr.c
	}
	if err := rc.refresh(ctx, paths); err != nil {
		return err
	}
	release := rc.e.opts.DB.Hold(rc.r.Name, paths...)
	defer release()
	if err := rc.intend(changes...); err != nil {
		return err
	}
	t := rc.r.tree
	if len(trs) > smallBatch {
		t.begin() // renames deferred to one flush and one syncfs
	}
	var recs []index.Record
	var failed error
	for i, tr := range trs {
		ct := &content{tmp: tmps[i], name: tr.name}
		out, err := rc.act(tr.c, ct)
		if ct.tmp == nil {
			tr.mu.Lock()
			tr.tmp = nil // renamed into place (or will be, at flush)
			tr.mu.Unlock()
		}
		if err != nil {
			failed = err
			break
		}
		recs = append(recs, out...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if failed != nil {
		// Nothing is recorded: the stream ends, the sender sends again
		// from the last acknowledged change, and what was written is
		// found equal (or adopted from the intents) then.
		return failed
	}
	t.begin() // for the sub-root cache of stamp
	for i := range recs {
		t.stamp(&recs[i])
	}
	t.flush()
	return rc.commit(recs, paths, release)
}

// abandon drops a transfer whose source changed: a newer change follows.
func (rc *receiver) abandon(seq uint64) {
	rc.pendingMu.Lock()
	tr := rc.pending[seq]
	rc.pendingMu.Unlock()
	if tr == nil {
		return
	}
	rc.forget(seq)
	tr.mu.Lock()
	tr.dropped = true
	tr.mu.Unlock()
	rc.closeTransfer(tr)
}

// forget removes seq from the transfers and the waiting list.
func (rc *receiver) forget(seq uint64) {
	rc.pendingMu.Lock()
	delete(rc.pending, seq)
	rc.pendingMu.Unlock()
	i := sort.Search(len(rc.waiting), func(i int) bool { return rc.waiting[i] >= seq })
	if i < len(rc.waiting) && rc.waiting[i] == seq {
		rc.waiting = append(rc.waiting[:i], rc.waiting[i+1:]...)
	}
}

// dropAll removes every unfinished transfer's temp file.
func (rc *receiver) dropAll() {
	rc.pendingMu.Lock()
	defer rc.pendingMu.Unlock()
	for seq, tr := range rc.pending {
		rc.closeTransfer(tr)
		delete(rc.pending, seq)
	}
}

// close releases the transfer's files and reports whether it removed its
// temp file.
func (tr *transfer) close(t *tree) (removed bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.basis != nil {
		tr.basis.Close()
		tr.basis = nil
	}
	if tr.tmp != nil {
		tr.tmp.Close()
		removed = t.root.Remove(tr.name) == nil
		tr.tmp = nil
	}
	return removed
}

// closeTransfer closes tr on the receiver's own goroutine: its temp file
// may have been all that kept a directory the peer deleted from going.
func (rc *receiver) closeTransfer(tr *transfer) {
	if tr.close(rc.r.tree) {
		rc.removeDeletedParents(tr.name)
	}
}

// receiveBulk serves one bulk stream: ranges of large files, applied into
// their transfers' temp files.
func (e *Engine) receiveBulk(ctx context.Context, st *pipe.Stream) error {
	for {
		typ, body, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if typ != typeRange {
			return fmt.Errorf("%w: frame type %d on a bulk stream", pipe.ErrMalformed, typ)
		}
		var m Range
		if err := pipe.Unmarshal(body, &m); err != nil {
			return err
		}
		rc := e.receiverOf(m.Root)
		if rc == nil {
			continue // the root's stream ended; the change is sent again
		}
		rc.pendingMu.Lock()
		tr := rc.pending[m.Seq]
		if tr != nil && tr.handed {
			tr = nil // complete: later ranges find nothing
		}
		rc.pendingMu.Unlock()
		if tr == nil {
			if m.Seq > rc.lastSeen() {
				e.log.Warn("range for a change never announced; dropped", zap.String("root", m.Root), zap.Uint64("seq", m.Seq))
			}
			continue // abandoned or superseded
		}
		err = tr.put(&m)
		tr.mu.Lock()
		if err != nil {
			tr.err = err
		}
		over := tr.err != nil || tr.got == tr.c.Rec.Size
		tr.mu.Unlock()
		if !over {
			continue
		}
		// Hand the transfer over once: later ranges for it find nothing.
		rc.pendingMu.Lock()
		mine := rc.pending[m.Seq] == tr && !tr.handed
		if mine {
			tr.handed = true
		}
		rc.pendingMu.Unlock()
		if !mine {
			continue
		}
		select {
		case rc.done <- tr:
		case <-rc.quit:
			tr.close(rc.r.tree)
		case <-ctx.Done():
			tr.close(rc.r.tree)
			return nil
		}
	}
}

// lastSeen returns the highest seq the receiver has been told of.
func (rc *receiver) lastSeen() uint64 {
	rc.pendingMu.Lock()
	defer rc.pendingMu.Unlock()
	return rc.seen
}

// put applies one range's delta into the temp file.
func (tr *transfer) put(m *Range) error {
	tr.mu.Lock()
	tmp, basis := tr.tmp, tr.basis
	tr.mu.Unlock()
	if tmp == nil {
		return errNoTransfer
	}
	if m.Offset > tr.c.Rec.Size-m.Size {
		return fmt.Errorf("%w: range beyond the end of %s", pipe.ErrMalformed, tr.c.Rec.Path)
	}
	var old io.ReaderAt = bytes.NewReader(nil)
	if basis != nil {
		old = basis
	}
	w := &limitedWriter{w: io.NewOffsetWriter(tmp, m.Offset), left: m.Size}
	if _, err := delta.Apply(old, bytes.NewReader(m.Delta), w, delta.Limits{MaxNewSize: m.Size}); err != nil {
		return fmt.Errorf("range of %s: %w", tr.c.Rec.Path, err)
	}
	if w.left != 0 {
		return fmt.Errorf("%w: range of %s is %d bytes short", pipe.ErrMalformed, tr.c.Rec.Path, w.left)
	}
	tr.mu.Lock()
	tr.got += m.Size
	tr.mu.Unlock()
	return nil
}

// limitedWriter refuses to write more than left bytes.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("%w: range longer than announced", pipe.ErrMalformed)
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}

// renameSources notes the files this batch deletes whose local copy is the
// version being deleted: a rename on the peer arrives as a delete and a
// create with the same content, in either order.
func (rc *receiver) renameSources(changes []*Change) {
	rc.sources = make(map[[32]byte]string)
	rc.trash = make(map[[32]byte]string)
	rc.reused = make(map[[32]byte]bool)
	for _, c := range changes {
		rec := &c.Rec
		if !rec.Deleted || rec.Type != index.File || rec.Size <= InlineMax {
			continue
		}
		local, ok, err := rc.e.opts.DB.Get(rc.r.Name, rec.Path)
		if err != nil || !ok || local.Deleted || local.Type != index.File || local.Hash != rec.Hash {
			continue
		}
		if local.Vector.Compare(rec.Vector) != conflict.Lesser {
			continue // not a plain delete here: conflict rules decide
		}
		rc.sources[rec.Hash] = rec.Path
	}
}

// moved returns the content with hash h from a file this batch deletes,
// placed in a temp file beside dest, or nil when there is none.
func (rc *receiver) moved(h [32]byte, dest string) *content {
	src, ok := rc.sources[h]
	if !ok || rc.reused[h] {
		return nil
	}
	t := rc.r.tree
	name := tempName(dest)
	if err := t.parent(dest); err != nil {
		return nil
	}
	if trashed, ok := rc.trash[h]; ok {
		// The delete came first: the content waits in the trash.
		if err := t.root.Rename(trashed, name); err != nil {
			return nil
		}
		delete(rc.trash, h)
	} else if err := t.root.Link(src, name); err != nil {
		// The delete comes later in the batch and unlinks only src.
		return nil
	}
	f, err := t.root.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.root.Remove(name)
		return nil
	}
	rc.reused[h] = true
	rc.e.log.Debug("rename done locally", zap.String("from", src), zap.String("to", dest))
	return &content{tmp: f, name: name}
}

// emptyTrash removes deleted files no create of the batch wanted.
func (rc *receiver) emptyTrash() {
	for _, name := range rc.trash {
		rc.r.tree.root.Remove(name)
	}
	rc.sources, rc.trash, rc.reused = nil, nil, nil
}

// parallelWrites is how many new files of a batch are written at once.
const parallelWrites = 4

// barrier waits for the batch's parallel writes.
func (rc *receiver) barrier() error {
	if rc.par == nil {
		return nil
	}
	err := rc.par.wait()
	clear(rc.parPaths)
	return err
}

// parallel runs functions on at most n goroutines and keeps the first error.
type parallel struct {
	wg  sync.WaitGroup
	sem chan struct{}
	mu  sync.Mutex // guards err
	err error
}

func newParallel(n int) *parallel { return &parallel{sem: make(chan struct{}, n)} }

func (p *parallel) do(f func() error) {
	p.sem <- struct{}{}
	p.wg.Go(func() {
		defer func() { <-p.sem }()
		if err := f(); err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
		}
	})
}

// wait waits for every function and returns the first error, then resets.
func (p *parallel) wait() error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.err
	p.err = nil
	return err
}

// inlineData returns a change's inline content, decompressed and checked
// against the record's size and hash.
func inlineData(c *Change) ([]byte, error) {
	rec := &c.Rec
	data := c.Data
	if c.Flags&flagZstd != 0 {
		var err error
		if data, err = zdec.DecodeAll(c.Data, make([]byte, 0, rec.Size)); err != nil {
			return nil, fmt.Errorf("%w: content of %s: %v", pipe.ErrMalformed, rec.Path, err)
		}
	}
	if int64(len(data)) != rec.Size || blake3.Sum256(data) != rec.Hash {
		return nil, fmt.Errorf("%w: content of %s does not match its hash", pipe.ErrMalformed, rec.Path)
	}
	return data, nil
}
