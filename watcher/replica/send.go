package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"go.uber.org/zap"

	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/pipe/delta"
	"github.com/tandemhost/tandem/watcher/index"
)

// sendBatch bounds how many records one pass over the index reads.
const sendBatch = 1024

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(InlineMax*2))
)

// rangeJob is one range of a large file for a bulk stream to send.
type rangeJob struct {
	root *rootState
	seq  uint64
	rec  index.Record
	sig  *delta.Signature
	off  int64
	size int64
	fail func(error) // called once per file on the first failed range
}

// send runs for each outbound session: one sender per root, and the bulk
// streams they share. It returns when the session ends.
func (e *Engine) send(ctx context.Context, s *pipe.Session) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan rangeJob)
	var wg sync.WaitGroup
	// Each sender runs again after a failure for as long as the session
	// lives: a stream can end (the peer halted a tree, refused a change)
	// while the connection is fine. A broken connection ends the session.
	again := func(what string, f func() error) {
		wait := 500 * time.Millisecond
		for {
			err := f()
			if ctx.Err() != nil {
				return
			}
			e.log.Warn(what+" ended; starting it again", zap.Duration("in", wait), zap.Error(err))
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, 10*time.Second)
		}
	}
	for i := 0; i < e.opts.BulkStreams; i++ {
		wg.Go(func() { again("bulk stream", func() error { return e.bulkSender(ctx, s, jobs) }) })
	}
	for _, cr := range e.opts.Roots {
		r := e.roots[cr.Name]
		wg.Go(func() { again("sending tree "+r.Name, func() error { return e.sendRoot(ctx, s, r, jobs) }) })
	}
	wg.Wait()
}

// sendRoot streams root's records above the peer's watermark, then live
// changes, keeping at most Window unacked, and serves the peer's requests
// for large files.
func (e *Engine) sendRoot(ctx context.Context, s *pipe.Session, r *rootState, jobs chan<- rangeJob) error {
	for {
		err := e.sendRootOnce(ctx, s, r, jobs)
		if !errors.Is(err, errRefused) {
			return err
		}
		// The peer cannot take this tree now (halted, not configured):
		// ask again later on the same session.
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// errRefused: the receiver answered Open with an error.
var errRefused = errors.New("peer refuses the tree")

func (e *Engine) sendRootOnce(ctx context.Context, s *pipe.Session, r *rootState, jobs chan<- rangeJob) error {
	st, err := s.Open(kindFiles, wantMaxFrame)
	if err != nil {
		return err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	if err := st.Send(&Open{Root: r.Name}); err != nil {
		return err
	}
	typ, body, err := st.Recv()
	if err != nil {
		return fmt.Errorf("open %s: %w", r.Name, err)
	}
	var opened Opened
	if typ != typeOpened {
		return fmt.Errorf("%w: type %d instead of Opened", pipe.ErrMalformed, typ)
	}
	if err := pipe.Unmarshal(body, &opened); err != nil {
		return err
	}
	if opened.Error != "" {
		e.log.Warn("peer refuses tree", zap.String("root", r.Name), zap.String("reason", opened.Error))
		return errRefused
	}
	// The first sync with this peer: it may hold many of these files
	// already (both nodes were filled before pairing). What the tree held
	// at the first full scan goes without content; the peer asks for what
	// it lacks. Changes made since go with their content as usual. A peer
	// whose copy is empty lacks everything: small files go with their
	// content, a round trip each saved.
	firstSync := opened.Watermark == 0 && !opened.Empty
	initial := func(rec *index.Record) bool {
		return firstSync && (!r.local.initialDone.Load() || rec.Seq <= r.local.initialTop.Load())
	}

	acks := make(chan uint64, 64)
	wants := make(chan *Want, 64)
	errc := make(chan error, 1)
	// The reader ends when the stream closes (deferred above) or when
	// this function returns, whichever it notices first.
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for {
			typ, body, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			switch typ {
			case typeAck:
				var m Ack
				if err := pipe.Unmarshal(body, &m); err != nil {
					errc <- err
					return
				}
				select {
				case acks <- m.Seq:
				case <-quit:
					return
				}
			case typeWant:
				m := new(Want)
				if err := pipe.Unmarshal(body, m); err != nil {
					errc <- err
					return
				}
				m.Signature = bytes.Clone(m.Signature)
				select {
				case wants <- m:
				case <-quit:
					return
				}
			default:
				errc <- fmt.Errorf("%w: frame type %d from receiver", pipe.ErrMalformed, typ)
				return
			}
		}
	}()

	cursor := opened.Watermark
	var inflight []uint64 // sent, unacked seqs, ascending
	large := make(map[uint64]index.Record)
	defer r.inflight.Store(0)
	var enc pipe.Encoder
	for {
		// Send what the index has above the cursor, within the window.
		more := false
		if len(inflight) < e.opts.Window {
			top, err := e.opts.DB.Seq(r.Name)
			if err != nil {
				return err
			}
			var batch []index.Record
			err = e.opts.DB.Since(r.Name, cursor, func(rec index.Record) error {
				if len(batch) >= sendBatch || len(inflight)+len(batch) >= e.opts.Window {
					more = true
					return errStop
				}
				batch = append(batch, rec)
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
			// Each change goes once the next one of the batch is known,
			// flagged as having more behind it (flagMore): the receiver
			// applies the batch as one.
			var held *Change
			send := func(m *Change, more bool) error {
				if more {
					m.Flags |= flagMore
				}
				enc.Reset()
				m.Encode(&enc)
				if err := st.SendFrame(m.Type(), enc.Buf()); err != nil {
					return err
				}
				if m.Flags&flagLarge != 0 {
					large[m.Seq] = m.Rec
				}
				inflight = append(inflight, m.Seq)
				r.sent.Add(1)
				r.lastSent.Store(e.opts.Now().UnixNano())
				return nil
			}
			for i := range batch {
				rec := &batch[i]
				cursor = rec.Seq
				if rec.Origin == e.opts.Peer {
					continue // the peer made this version: it has it
				}
				m, ok := e.change(r, rec, initial(rec))
				if !ok {
					e.log.Debug("skipped a change that is already outdated", zap.String("path", rec.Path), zap.Uint64("seq", rec.Seq))
					continue // changed while we read it: a newer record follows
				}
				if held != nil {
					if err := send(held, true); err != nil {
						return err
					}
				}
				held = m
			}
			if held != nil {
				if err := send(held, false); err != nil {
					return err
				}
			}
			if !more {
				// Everything up to top was seen, including numbers whose
				// records were replaced by newer ones since.
				cursor = max(cursor, top)
			}
		}
		r.inflight.Store(int64(len(inflight)))
		r.cursor.Store(cursor)
		r.cursorOK.Store(true)
		var wake <-chan struct{}
		if !more {
			wake = r.changedC()
			// A change stored between Since and here must not be missed.
			if seq, err := e.opts.DB.Seq(r.Name); err == nil && seq > cursor && len(inflight) < e.opts.Window {
				continue
			}
		}
		var now <-chan struct{}
		if more && len(inflight) < e.opts.Window {
			c := make(chan struct{})
			close(c)
			now = c
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-wake:
		case <-now:
		case seq := <-acks:
			i := 0
			for i < len(inflight) && inflight[i] <= seq {
				delete(large, inflight[i])
				i++
			}
			inflight = inflight[i:]
			r.lastAck.Store(e.opts.Now().UnixNano())
		case w := <-wants:
			rec, ok := large[w.Seq]
			if !ok {
				return fmt.Errorf("%w: Want for seq %d, which is not a large change in flight", pipe.ErrMalformed, w.Seq)
			}
			if err := e.startLarge(ctx, st, r, rec, w, jobs); err != nil {
				return err
			}
		}
	}
}

var errStop = errors.New("stop")

// change builds the Change for rec: small files with their content (read
// now, and checked against the record's hash: a file that changed since
// its scan is skipped, since a newer record for it follows), unless this is
// the initial sync, when the receiver asks for the content it lacks.
func (e *Engine) change(r *rootState, rec *index.Record, initial bool) (*Change, bool) {
	m := &Change{Seq: rec.Seq, Rec: *rec}
	if rec.Type != index.File || rec.Deleted {
		return m, true
	}
	if rec.Size > InlineMax || ((initial || rec.PeerHas) && rec.Size > 0) {
		m.Flags = flagLarge
		return m, true
	}
	data, err := r.tree.root.ReadFile(rec.Path)
	if err != nil || int64(len(data)) != rec.Size || blake3.Sum256(data) != rec.Hash {
		return nil, false
	}
	m.Flags = flagInline
	if len(data) >= 512 {
		if z := zenc.EncodeAll(data, nil); len(z) < len(data)-len(data)/16 {
			m.Flags |= flagZstd
			data = z
		}
	}
	m.Data = data
	return m, true
}

// startLarge answers a Want: the file's ranges go to the bulk streams. If
// the file is no longer the version the peer wants, Abandon tells it so.
func (e *Engine) startLarge(ctx context.Context, st *pipe.Stream, r *rootState, rec index.Record, w *Want, jobs chan<- rangeJob) error {
	var sig *delta.Signature
	if len(w.Signature) > 0 {
		var err error
		if sig, err = delta.ReadSignature(bytes.NewReader(w.Signature), delta.MaxFileSize); err != nil {
			return fmt.Errorf("signature for %s: %w", rec.Path, err)
		}
	}
	var once sync.Once
	fail := func(err error) {
		once.Do(func() {
			e.log.Debug("large file changed while sending", zap.String("path", rec.Path), zap.Error(err))
			st.Send(&Abandon{Seq: rec.Seq})
		})
	}
	go func() {
		for off := int64(0); off < rec.Size; off += RangeSize {
			j := rangeJob{root: r, seq: rec.Seq, rec: rec, sig: sig, off: off, size: min(RangeSize, rec.Size-off), fail: fail}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// bulkSender owns one bulk stream and sends ranges from jobs on it.
func (e *Engine) bulkSender(ctx context.Context, s *pipe.Session, jobs <-chan rangeJob) error {
	st, err := s.Open(kindBulk, bulkMaxFrame)
	if err != nil {
		return err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	var buf bytes.Buffer
	var enc pipe.Encoder
	for {
		var j rangeJob
		select {
		case <-ctx.Done():
			return nil
		case j = <-jobs:
		}
		buf.Reset()
		if err := diffRange(j, &buf); err != nil {
			j.fail(err)
			continue
		}
		m := &Range{Root: j.root.Name, Seq: j.seq, Offset: j.off, Size: j.size, Delta: buf.Bytes()}
		enc.Reset()
		m.Encode(&enc)
		if err := st.SendFrame(m.Type(), enc.Buf()); err != nil {
			return err
		}
	}
}

// diffRange writes the delta of one range of the file against the peer's
// signature (or all of it as literal data without one).
func diffRange(j rangeJob, w io.Writer) error {
	f, err := j.root.tree.root.Open(j.rec.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != j.rec.Size || fi.ModTime().UnixNano() != j.rec.MtimeNs {
		return errors.New("file changed since its scan")
	}
	sig := j.sig
	if sig == nil {
		sig = emptySignature
	}
	_, err = delta.Diff(sig, io.NewSectionReader(f, j.off, j.size), w)
	return err
}

var emptySignature, _ = delta.Sign(bytes.NewReader(nil), 0)
