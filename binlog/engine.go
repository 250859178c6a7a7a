package binlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"

	"github.com/tandemhost/tandem/pipe"
)

// The rows stream: one per session, opened by the side whose transactions
// it carries (the sender); the peer's handler applies them.
//
//	receiver -> sender  frameStart      applied seq, applied GTID
//	sender -> receiver  frameTxn        one Txn (wire.go)
//	sender -> receiver  frameTxnsZstd   uvarint length, then frameTxn
//	                                    frames of that length, compressed
//	                                    as one zstd frame (rows-zstd only)
//	receiver -> sender  frameAck        highest seq committed
//
// The sender opens a rows-zstd stream, and a rows stream when the peer
// serves none (an older tandem). On rows-zstd each batch of frames the
// sender writes at once goes compressed when that makes it smaller: the
// SSH channel lets 2 MiB be on the way at once, which at a 100 ms round
// trip held a sysbench catch-up (1,350 bytes a transaction) to about
// 15,000 transactions a second; compressed, a transaction is about 450.
const (
	kindRows      = "rows"
	kindRowsZstd  = "rows-zstd"
	frameStart    = 1
	frameTxn      = 2
	frameAck      = 3
	frameTxnsZstd = 4
	// zstdBatchMax bounds the frames one frameTxnsZstd carries,
	// uncompressed; a larger batch goes as it is.
	zstdBatchMax = 1 << 20

	// rowsMaxFrame bounds one frame: a Txn, at most MaxTxnBytes.
	rowsMaxFrame = MaxTxnBytes + 1024
	// window is how many Txns may be sent and not yet acknowledged.
	window = 4096
	// applyBatch is the most Txns one Apply call gets: on a catch-up,
	// each call ends with every worker waiting for the slowest, so fewer,
	// larger calls keep them busier (512 -> 2048: +8% apply rate in
	// BenchmarkRows, A/B 4 runs each). At most half the window, so the
	// next batch is on its way while one is applied.
	applyBatch = 2048
	// readAhead is how many Txns the tailer may read beyond the window.
	readAhead = 16384
	// sendBatchBytes is about the most the sender writes at once.
	sendBatchBytes = 64 << 10
)

// sendItem is a Txn the sender has encoded and queued.
type sendItem struct {
	seq   uint64
	gtid  string
	frame []byte // AppendTxn's
}

// Source is what the Engine tails: the local server's binlog (Tailer).
type Source interface {
	Run(ctx context.Context, from string, emit func(*Txn) error) error
}

// Sink is what the Engine applies the peer's transactions with (Applier).
type Sink interface {
	Applied(ctx context.Context, origin string) (seq uint64, gtid string, err error)
	Apply(ctx context.Context, txns []*Txn) error
}

// EngineOptions configure an Engine.
type EngineOptions struct {
	Node, Peer string
	Source     Source
	Sink       Sink
	// Position returns the local server's current GTID position
	// (@@gtid_binlog_pos). The first time the engine runs it records it in
	// StateDir as the point the peer's stream starts from when the peer has
	// applied nothing yet: earlier rows are the seed's business.
	Position func(ctx context.Context) (string, error)
	StateDir string
	// Observe, if set, sees every local Txn the sender reads, before it is
	// sent: the applier's clock of local writes for the "newer" rule.
	Observe func(*Txn)
	// Dumper and Loader serve and make seeds (see Seed); nil: no seeding.
	Dumper Dumper
	Loader Loader
	Log    *zap.Logger
	Now    func() time.Time
}

// Engine streams local transactions to the peer and applies the peer's.
type Engine struct {
	o   EngineOptions
	log *zap.Logger
	now func() time.Time

	mu sync.Mutex
	st Status
	// sentAt maps the seqs in flight to when they were read, for lag.
	sentAt map[uint64]time.Time
	rate   rateMeter
	inRate rateMeter

	seed seeding

	readMu    sync.Mutex // guards readSeq, readMoved
	readSeq   uint64     // the last GTID seq the tailer has read
	readMoved chan struct{}
}

// Status is the database replication's state, for `tandem status`.
type Status struct {
	// Read is the GTID of the last local transaction read from the binlog.
	Read string `json:"read"`
	// Sent and Acked are the seq of the last local transaction sent to the
	// peer and of the last one the peer has committed.
	Sent  uint64 `json:"sent"`
	Acked uint64 `json:"acked"`
	// SentTxns and AppliedTxns count the transactions sent to the peer
	// and the peer's applied here since the daemon started.
	SentTxns    uint64 `json:"sent_txns"`
	AppliedTxns uint64 `json:"applied_txns"`
	// InFlight is how many are sent and not yet committed by the peer.
	InFlight int `json:"in_flight"`
	// LagMS is how long the oldest transaction in flight has waited, or
	// the last acknowledged one's read-to-commit time when none is.
	LagMS float64 `json:"lag_ms"`
	// TxPerSec is the rate of transactions sent, and AppliedPerSec of the
	// peer's applied here, over the last seconds.
	TxPerSec      float64 `json:"tx_per_sec"`
	AppliedPerSec float64 `json:"applied_per_sec"`
	// SentBytes counts the encoded transactions sent to the peer, and
	// WireBytes what they took on the stream, compressed.
	SentBytes uint64 `json:"sent_bytes"`
	WireBytes uint64 `json:"wire_bytes"`
	// Applied is the seq and GTID of the peer's last transaction applied
	// here.
	Applied     uint64 `json:"applied"`
	AppliedGTID string `json:"applied_gtid"`
	// SendError and ApplyError are the last errors of each direction, ""
	// once it works again.
	SendError  string `json:"send_error,omitempty"`
	ApplyError string `json:"apply_error,omitempty"`
	// Seeding is where a seed from the peer is, while one runs.
	Seeding *SeedStatus `json:"seeding,omitempty"`
	lastLag time.Duration
}

// SeedStatus is a running seed's progress.
type SeedStatus struct {
	Schema    string `json:"schema"`
	Table     string `json:"table"`
	Rows      int64  `json:"rows"`
	TableRows int64  `json:"table_rows"`
	Tables    int    `json:"tables"`
	Done      int    `json:"done"`
}

// NewEngine returns an engine; Register puts it on the pipe.
func NewEngine(o EngineOptions) *Engine {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Engine{o: o, log: o.Log.Named("rows"), now: o.Now, sentAt: make(map[uint64]time.Time), readMoved: make(chan struct{})}
}

// Register serves the peer's rows stream and opens ours on every session.
func (e *Engine) Register(node *pipe.Node) {
	node.Handle(kindRows, rowsMaxFrame, func(ctx context.Context, st *pipe.Stream) error { return e.receive(ctx, st, false) })
	node.Handle(kindRowsZstd, rowsMaxFrame, func(ctx context.Context, st *pipe.Stream) error { return e.receive(ctx, st, true) })
	node.Handle(kindSeed, rowsMaxFrame, e.serveSeed)
	node.OnSession(e.send)
}

// Status returns the current state.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st
	now := e.now()
	st.InFlight = len(e.sentAt)
	st.LagMS = float64(st.lastLag) / float64(time.Millisecond)
	for _, at := range e.sentAt {
		if d := now.Sub(at); float64(d)/float64(time.Millisecond) > st.LagMS {
			st.LagMS = float64(d) / float64(time.Millisecond)
		}
	}
	st.TxPerSec = e.rate.perSec(now)
	st.AppliedPerSec = e.inRate.perSec(now)
	return st
}

func (e *Engine) update(f func(st *Status)) {
	e.mu.Lock()
	f(&e.st)
	e.mu.Unlock()
}

// startPath records where the peer's stream starts when it has applied
// nothing.
func (e *Engine) startPath() string { return filepath.Join(e.o.StateDir, "binlog-start") }

// Start records the local server's position as the stream's beginning if
// none is recorded yet. The daemon calls it at start, so that writes made
// while the peer is away are not missed by a first connection later.
func (e *Engine) Start(ctx context.Context) error {
	_, err := e.start(ctx)
	return err
}

func (e *Engine) start(ctx context.Context) (string, error) {
	b, err := os.ReadFile(e.startPath())
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read binlog start position: %w", err)
	}
	pos, err := e.o.Position(ctx)
	if err != nil {
		return "", fmt.Errorf("read the server's GTID position: %w", err)
	}
	tmp := e.startPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(pos+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("record binlog start position: %w", err)
	}
	if f, err := os.Open(tmp); err == nil {
		f.Sync()
		f.Close()
	}
	if err := os.Rename(tmp, e.startPath()); err != nil {
		return "", fmt.Errorf("record binlog start position: %w", err)
	}
	e.log.Info("recorded the binlog position the peer's stream starts from", zap.String("gtid", pos))
	return pos, nil
}

// send streams local transactions for the life of a session, starting
// again after a failure.
func (e *Engine) send(ctx context.Context, s *pipe.Session) {
	e.seed.mu.Lock()
	e.seed.session = s
	e.seed.mu.Unlock()
	defer func() {
		e.seed.mu.Lock()
		if e.seed.session == s {
			e.seed.session = nil
		}
		e.seed.mu.Unlock()
	}()
	wait := 500 * time.Millisecond
	for {
		err := e.sendOnce(ctx, s)
		if ctx.Err() != nil {
			return
		}
		e.update(func(st *Status) { st.SendError = errString(err) })
		e.log.Warn("rows sender ended; starting it again", zap.Duration("in", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (e *Engine) sendOnce(ctx context.Context, s *pipe.Session) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	compress := true
	st, err := s.Open(kindRowsZstd, rowsMaxFrame)
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) && oce.Reason == ssh.UnknownChannelType {
		e.log.Info("the peer serves no compressed rows stream (an older tandem): sending uncompressed")
		compress = false
		st, err = s.Open(kindRows, rowsMaxFrame)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	context.AfterFunc(ctx, func() { st.Close() })

	typ, body, err := st.Recv()
	if err != nil {
		return fmt.Errorf("wait for the peer's position: %w", err)
	}
	if typ != frameStart {
		return fmt.Errorf("%w: rows stream: frame type %d before start", pipe.ErrMalformed, typ)
	}
	d := pipe.NewDecoder(body)
	appliedSeq := d.Uvarint()
	from := d.String(4096)
	if err := d.Finish(); err != nil {
		return fmt.Errorf("rows stream start: %w", err)
	}
	if from == "" {
		if from, err = e.start(ctx); err != nil {
			return err
		}
	}
	e.log.Info("sending rows", zap.String("from", from), zap.Uint64("peer_applied", appliedSeq))
	e.update(func(st *Status) { st.SendError = "" })

	e.mu.Lock()
	clear(e.sentAt)
	e.st.Acked = appliedSeq
	e.st.Sent = max(e.st.Sent, appliedSeq) // the peer has up to there
	e.mu.Unlock()

	// Acks free the window.
	slots := make(chan struct{}, window)
	for range window {
		slots <- struct{}{}
	}
	go func() {
		for {
			typ, body, err := st.Recv()
			if err != nil {
				cancel(fmt.Errorf("rows stream: %w", err))
				return
			}
			d := pipe.NewDecoder(body)
			seq := d.Uvarint()
			if err := d.Finish(); err != nil || typ != frameAck {
				cancel(fmt.Errorf("%w: rows stream: bad ack (type %d)", pipe.ErrMalformed, typ))
				return
			}
			now := e.now()
			freed := 0
			e.mu.Lock()
			if seq > e.st.Sent {
				sent := e.st.Sent
				e.mu.Unlock()
				cancel(fmt.Errorf("%w: rows stream: ack of seq %d, but only up to %d was sent", pipe.ErrMalformed, seq, sent))
				return
			}
			if seq > e.st.Acked {
				e.st.Acked = seq
			}
			for s, at := range e.sentAt {
				if s <= seq {
					e.st.lastLag = now.Sub(at)
					delete(e.sentAt, s)
					freed++
				}
			}
			e.mu.Unlock()
			for range freed {
				slots <- struct{}{}
			}
		}
	}()

	// The tailer reads ahead of the window into a queue, so that the
	// local writes are observed (for the "newer" rule) as soon as they are
	// in the binlog, not only once the peer has acknowledged what came
	// before them. The queue holds the Txns encoded: a catch-up fills it,
	// and 16k decoded Txns are a pointer graph the GC would scan each
	// cycle; their encodings are flat bytes.
	ahead := make(chan sendItem, readAhead)
	tailDone := make(chan error, 1)
	go func() {
		defer close(ahead)
		var scratch []byte
		tailDone <- e.o.Source.Run(ctx, from, func(t *Txn) error {
			e.update(func(st *Status) { st.Read = t.GTID })
			if e.o.Observe != nil {
				e.o.Observe(t)
			}
			e.Seen(t.GTID)
			if t.Seq <= appliedSeq && appliedSeq != 0 {
				// Already applied: a resume from the GTID the peer
				// reported can repeat the boundary.
				return nil
			}
			scratch = AppendTxn(scratch[:0], t)
			if len(scratch) > MaxTxnBytes {
				err := fmt.Errorf("transaction %s is %d MiB encoded, over the %d MiB one rows stream frame carries: replication from this node stops at it; split such transactions on the source (smaller batches), then restart tandem",
					t.GTID, len(scratch)>>20, MaxTxnBytes>>20)
				cancel(err)
				return err
			}
			it := sendItem{seq: t.Seq, gtid: t.GTID, frame: slices.Clone(scratch)}
			if cap(scratch) > 1<<20 {
				scratch = nil // don't pin one large transaction's buffer
			}
			select {
			case ahead <- it:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
	}()
	// Frames go out in batches of what the queue holds (up to
	// sendBatchBytes): one SSH packet and one write for many small
	// transactions on a catch-up, one frame each when they trickle in.
	var batch []byte
	var last string // the GTID of the batch's last transaction
	var z *txnsCompressor
	if compress {
		z = newTxnsCompressor()
	}
	for it := range ahead {
		select {
		case <-slots:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		batch = pipe.AppendFrame(batch, frameTxn, it.frame)
		last = it.gtid
		now := e.now()
		e.mu.Lock()
		e.sentAt[it.seq] = now
		e.st.Sent = it.seq
		e.st.SentTxns++
		e.rate.add(now, 1)
		e.mu.Unlock()
		// Only this loop takes from ahead and slots: what their
		// lengths show is there for the next round without waiting.
		if len(ahead) > 0 && len(slots) > 0 && len(batch) < sendBatchBytes {
			continue
		}
		wire := len(batch)
		var err error
		if body, ok := z.compress(batch); ok {
			wire = len(body)
			err = st.SendFrame(frameTxnsZstd, body)
		} else {
			err = st.SendFrames(batch)
		}
		if err != nil {
			cancel(fmt.Errorf("send transactions up to %s: %w", last, err))
			break
		}
		e.mu.Lock()
		e.st.SentBytes += uint64(len(batch))
		e.st.WireBytes += uint64(wire)
		e.mu.Unlock()
		batch = batch[:0]
		if cap(batch) > 1<<20 {
			batch = nil
		}
	}
	cancel(nil)
	for range ahead {
	}
	err = <-tailDone
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

// receive applies the peer's transactions on one rows stream; compressed
// is set for a rows-zstd stream, which may carry frameTxnsZstd.
func (e *Engine) receive(ctx context.Context, st *pipe.Stream, compressed bool) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	e.seed.mu.Lock()
	seeding := e.seed.running
	if !seeding {
		e.seed.stopRecv = stop
	}
	e.seed.mu.Unlock()
	if seeding {
		return errors.New("seeding from the peer: its transactions wait until the seed is done")
	}
	context.AfterFunc(ctx, func() { st.Close() })
	seq, gtid, err := e.o.Sink.Applied(ctx, e.o.Peer)
	if err != nil {
		e.update(func(s *Status) { s.ApplyError = err.Error() })
		return fmt.Errorf("read what was applied from %s: %w", e.o.Peer, err)
	}
	var enc pipe.Encoder
	enc.Uvarint(seq)
	enc.String(gtid)
	if err := st.SendFrame(frameStart, enc.Buf()); err != nil {
		return err
	}
	e.update(func(s *Status) { s.Applied, s.AppliedGTID = seq, gtid })

	// A reader goroutine decodes frames into a queue; the applier takes
	// whatever has queued up, so a stream that is behind is applied in
	// batches and one that keeps up goes one by one.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan *Txn, applyBatch)
	go func() {
		defer close(queue)
		// One decoder for the stream: it remembers the tables' definitions,
		// which every transaction repeats.
		dec := newTxnDecoder()
		var z *txnsDecompressor
		if compressed {
			z = newTxnsDecompressor()
			defer z.close()
		}
		one := func(body []byte) error {
			t, err := dec.decode(body)
			if err != nil {
				return err
			}
			if t.Origin != e.o.Peer {
				return fmt.Errorf("%w: transaction from %q on %s's stream", pipe.ErrMalformed, t.Origin, e.o.Peer)
			}
			select {
			case queue <- t:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		for {
			typ, body, err := st.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					cancel(fmt.Errorf("rows stream: %w", err))
				}
				return
			}
			switch {
			case typ == frameTxn:
				err = one(body)
			case typ == frameTxnsZstd && compressed:
				err = z.each(body, one)
			default:
				err = fmt.Errorf("%w: frame type %d", pipe.ErrMalformed, typ)
			}
			if err != nil {
				if ctx.Err() == nil {
					cancel(fmt.Errorf("rows stream: %w", err))
				}
				return
			}
		}
	}()

	batch := make([]*Txn, 0, applyBatch)
	for {
		batch = batch[:0]
		t, ok := <-queue
		if !ok {
			return context.Cause(ctx)
		}
		batch = append(batch, t)
	fill:
		for len(batch) < applyBatch {
			select {
			case t, ok := <-queue:
				if !ok {
					break fill
				}
				batch = append(batch, t)
			default:
				break fill
			}
		}
		if err := e.o.Sink.Apply(ctx, batch); err != nil {
			e.update(func(s *Status) { s.ApplyError = err.Error() })
			return fmt.Errorf("apply %d transaction(s) from %s from %s: %w", len(batch), e.o.Peer, batch[0].GTID, err)
		}
		last := batch[len(batch)-1]
		now := e.now()
		e.mu.Lock()
		e.st.Applied, e.st.AppliedGTID, e.st.ApplyError = last.Seq, last.GTID, ""
		e.st.AppliedTxns += uint64(len(batch))
		e.inRate.add(now, len(batch))
		e.mu.Unlock()
		enc.Reset()
		enc.Uvarint(last.Seq)
		if err := st.SendFrame(frameAck, enc.Buf()); err != nil {
			return err
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// rateMeter counts events per second over the last few whole seconds.
type rateMeter struct {
	sec    [8]int64
	counts [8]int
}

func (r *rateMeter) add(now time.Time, n int) {
	s := now.Unix()
	i := s % int64(len(r.sec))
	if r.sec[i] != s {
		r.sec[i], r.counts[i] = s, 0
	}
	r.counts[i] += n
}

// perSec is the mean rate over the complete seconds of the last few.
func (r *rateMeter) perSec(now time.Time) float64 {
	s := now.Unix()
	total, secs := 0, 0
	for back := int64(1); back < int64(len(r.sec)); back++ {
		i := (s - back) % int64(len(r.sec))
		if r.sec[i] == s-back {
			total += r.counts[i]
		}
		secs++
	}
	return float64(total) / float64(secs)
}

// seqOfGTID returns the sequence number of a GTID position's last
// component: "0-1-42" -> 42, "uuid:1-42" -> 42, "0-1-7,1-2-42" -> 42 (the
// largest). 0 when there is none.
func seqOfGTID(pos string) uint64 {
	var best uint64
	for _, part := range strings.Split(pos, ",") {
		part = strings.TrimSpace(part)
		i := strings.LastIndexAny(part, "-:")
		if i < 0 {
			continue
		}
		if n, err := strconv.ParseUint(part[i+1:], 10, 64); err == nil && n > best {
			best = n
		}
	}
	return best
}

// Seen records that the local tailer has read the binlog up to gtid,
// whether the transaction was sent or dropped (the peer's own, applied
// here). The tailer's Seen hook calls it.
func (e *Engine) Seen(gtid string) {
	seq := seqOfGTID(gtid)
	e.readMu.Lock()
	if seq > e.readSeq {
		e.readSeq = seq
		close(e.readMoved)
		e.readMoved = make(chan struct{})
	}
	e.readMu.Unlock()
}

// waitRead waits until the tailer has read up to seq, or d has passed.
func (e *Engine) waitRead(seq uint64, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		e.readMu.Lock()
		done, moved := e.readSeq >= seq, e.readMoved
		e.readMu.Unlock()
		if done {
			return true
		}
		select {
		case <-moved:
		case <-timer.C:
			return false
		}
	}
}

// Clock wraps the record of local writes for the applier's "newer" rule:
// a row it does not know may have been written locally a moment ago and
// not be read from the binlog yet, so it first waits (a few seconds at
// most) until the tailer has read as far as the server has written, then
// asks again. Without that wait, a node could decide a conflict without
// knowing its own write, and the two nodes would decide differently.
func (e *Engine) Clock(local *RecentWrites) LocalClock { return &caughtUpClock{e: e, local: local} }

type caughtUpClock struct {
	e     *Engine
	local *RecentWrites
}

// clockWait bounds how long a conflict waits for the tailer to catch up.
const clockWait = 5 * time.Second

func (c *caughtUpClock) LastWrite(schema, table string, key []Value) (time.Time, bool) {
	if t, ok := c.local.LastWrite(schema, table, key); ok {
		return t, ok
	}
	if c.e.o.Position == nil {
		return time.Time{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), clockWait)
	defer cancel()
	pos, err := c.e.o.Position(ctx)
	if err != nil {
		return time.Time{}, false
	}
	if !c.e.waitRead(seqOfGTID(pos), clockWait) {
		c.e.log.Warn("deciding a row conflict without knowing whether this node wrote the row lately: the binlog reader is behind",
			zap.String("table", schema+"."+table), zap.String("server_position", pos))
	}
	return c.local.LastWrite(schema, table, key)
}
