package binlog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/pipetest"
	"github.com/tandemhost/tandem/pipe"
)

// fakeSource is a binlog in memory: Run emits every transaction after
// from ("0-1-N" means after seq N), then waits for more.
type fakeSource struct {
	mu    sync.Mutex
	txns  []*Txn
	more  chan struct{}
	froms []string
}

func newFakeSource() *fakeSource { return &fakeSource{more: make(chan struct{})} }

func (f *fakeSource) commit(origin string, rows int) *Txn {
	f.mu.Lock()
	defer f.mu.Unlock()
	seq := uint64(len(f.txns) + 1)
	t := &Txn{Origin: origin, GTID: fmt.Sprintf("0-1-%d", seq), Seq: seq, Time: time.Unix(1700000000+int64(seq), 0).UTC()}
	for i := range rows {
		t.Rows = append(t.Rows, Row{Op: Insert, Schema: "shop", Table: "t",
			Columns: []Column{{Name: "id", Type: "int"}}, Key: []int{0},
			After: []Value{{Kind: Int, I: int64(seq*1000) + int64(i)}}})
	}
	f.txns = append(f.txns, t)
	close(f.more)
	f.more = make(chan struct{})
	return t
}

func (f *fakeSource) position() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("0-1-%d", len(f.txns))
}

func (f *fakeSource) Run(ctx context.Context, from string, emit func(*Txn) error) error {
	f.mu.Lock()
	f.froms = append(f.froms, from)
	f.mu.Unlock()
	next, err := strconv.ParseUint(from[strings.LastIndexByte(from, '-')+1:], 10, 64)
	if err != nil {
		return err
	}
	for {
		f.mu.Lock()
		pending := f.txns[next:]
		more := f.more
		f.mu.Unlock()
		for _, t := range pending {
			if err := emit(t); err != nil {
				return err
			}
			next++
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-more:
		}
	}
}

// fakeSink applies into memory with a checkpoint per origin, skipping what
// it has applied, like the Applier.
type fakeSink struct {
	mu      sync.Mutex
	applied map[string][]*Txn
	batches int
	fail    error
}

func newFakeSink() *fakeSink { return &fakeSink{applied: make(map[string][]*Txn)} }

func (f *fakeSink) Applied(ctx context.Context, origin string) (uint64, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.applied[origin]
	if len(a) == 0 {
		return 0, "", nil
	}
	return a[len(a)-1].Seq, a[len(a)-1].GTID, nil
}

func (f *fakeSink) Apply(ctx context.Context, txns []*Txn) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.batches++
	for _, t := range txns {
		a := f.applied[t.Origin]
		if len(a) > 0 && t.Seq <= a[len(a)-1].Seq {
			continue
		}
		f.applied[t.Origin] = append(a, t)
	}
	return nil
}

func (f *fakeSink) seqs(origin string) []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint64
	for _, t := range f.applied[origin] {
		out = append(out, t.Seq)
	}
	return out
}

type engineSide struct {
	src  *fakeSource
	sink *fakeSink
	eng  *Engine
	node *pipetest.Node
}

func newEngineSide(t *testing.T, name, peer string) *engineSide {
	s := &engineSide{src: newFakeSource(), sink: newFakeSink()}
	s.eng = NewEngine(EngineOptions{
		Node: name, Peer: peer, Source: s.src, Sink: s.sink, StateDir: t.TempDir(),
		Position: func(context.Context) (string, error) { return s.src.position(), nil },
	})
	return s
}

func startPair(t *testing.T, a, b *engineSide) {
	a.node, b.node = pipetest.Pair(t, "alpha", "beta",
		func(n *pipe.Node) { a.eng.Register(n) },
		func(n *pipe.Node) { b.eng.Register(n) })
}

func wantSeqs(t *testing.T, s *fakeSink, origin string, n int) {
	t.Helper()
	pipetest.WaitFor(t, fmt.Sprintf("%d transactions from %s applied", n, origin), func() bool {
		return len(s.seqs(origin)) >= n
	})
	got := s.seqs(origin)
	if len(got) != n {
		t.Fatalf("applied from %s: %v, want seqs 1..%d once each", origin, got, n)
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("applied from %s: %v, want seqs 1..%d in order", origin, got, n)
		}
	}
}

func TestEngineStreamsBothWaysOnce(t *testing.T) {
	a, b := newEngineSide(t, "alpha", "beta"), newEngineSide(t, "beta", "alpha")
	// Written before the engines first ran: not streamed (seeding's job).
	a.src.commit("alpha", 1)
	if err := a.eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		a.src.commit("alpha", 2)
		b.src.commit("beta", 1)
	}
	startPair(t, a, b)
	pipetest.WaitFor(t, "alpha's transactions 2..4 on beta", func() bool { return len(b.sink.seqs("alpha")) == 3 })
	if got := b.sink.seqs("alpha"); got[0] != 2 {
		t.Errorf("beta applied %v from alpha; seq 1 predates the engine and must not be streamed", got)
	}
	wantSeqs(t, a.sink, "beta", 3)
	for range 200 {
		a.src.commit("alpha", 1)
	}
	pipetest.WaitFor(t, "alpha's 200 more", func() bool { return len(b.sink.seqs("alpha")) == 203 })
	pipetest.WaitFor(t, "acks", func() bool { st := a.eng.Status(); return st.Acked == 204 && st.InFlight == 0 })
	if st := b.eng.Status(); st.Applied != 204 || st.AppliedGTID != "0-1-204" {
		t.Errorf("beta status applied = %d %q, want 204 0-1-204", st.Applied, st.AppliedGTID)
	}
}

func TestEngineResumesFromPeerCheckpoint(t *testing.T) {
	a, b := newEngineSide(t, "alpha", "beta"), newEngineSide(t, "beta", "alpha")
	if err := a.eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		a.src.commit("alpha", 1)
	}
	startPair(t, a, b)
	wantSeqs(t, b.sink, "alpha", 5)
	addr := a.node.Addr()
	b.node.Restart(t, "alpha", addr, func(n *pipe.Node) {
		for range 5 {
			a.src.commit("alpha", 1)
		}
		b.eng.Register(n)
	})
	wantSeqs(t, b.sink, "alpha", 10)
	a.src.mu.Lock()
	froms := a.src.froms
	a.src.mu.Unlock()
	if len(froms) < 2 || froms[len(froms)-1] != "0-1-5" {
		t.Errorf("alpha tailed from %q; the last run must start from beta's checkpoint 0-1-5", froms)
	}
}

func TestEngineApplyErrorStopsAndRetries(t *testing.T) {
	a, b := newEngineSide(t, "alpha", "beta"), newEngineSide(t, "beta", "alpha")
	if err := a.eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.sink.mu.Lock()
	b.sink.fail = fmt.Errorf("disk full")
	b.sink.mu.Unlock()
	a.src.commit("alpha", 1)
	startPair(t, a, b)
	pipetest.WaitFor(t, "the apply error in beta's status", func() bool {
		return strings.Contains(b.eng.Status().ApplyError, "disk full")
	})
	if got := b.sink.seqs("alpha"); len(got) != 0 {
		t.Fatalf("applied %v while failing", got)
	}
	b.sink.mu.Lock()
	b.sink.fail = nil
	b.sink.mu.Unlock()
	wantSeqs(t, b.sink, "alpha", 1)
	pipetest.WaitFor(t, "the apply error cleared", func() bool { return b.eng.Status().ApplyError == "" })
}

// TestEngineStopsAtOversizedTxn: a transaction too large for one frame
// stops the sender at it, with the reason in the status; what came before
// is applied, nothing after it is, and nothing is skipped silently.
func TestEngineStopsAtOversizedTxn(t *testing.T) {
	a, b := newEngineSide(t, "alpha", "beta"), newEngineSide(t, "beta", "alpha")
	if err := a.eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.src.commit("alpha", 1)
	big := a.src.commit("alpha", 0)
	a.src.mu.Lock()
	big.Rows = []Row{{Op: Insert, Schema: "shop", Table: "t",
		Columns: []Column{{Name: "id", Type: "int"}, {Name: "b", Type: "longblob"}}, Key: []int{0},
		After: []Value{{Kind: Int, I: 1}, {Kind: Bytes, B: make([]byte, MaxTxnBytes)}}}}
	a.src.mu.Unlock()
	a.src.commit("alpha", 1)
	startPair(t, a, b)
	pipetest.WaitFor(t, "the oversized transaction in alpha's status", func() bool {
		e := a.eng.Status().SendError
		return strings.Contains(e, "transaction 0-1-2 is ") && strings.Contains(e, "MiB encoded, over the")
	})
	wantSeqs(t, b.sink, "alpha", 1)
}

// TestEngineCompressesRows: between two of today's engines, a backlog goes
// compressed (rows-zstd); to a peer that serves only the rows stream (an
// older tandem), as it is. Both arrive whole, in order.
func TestEngineCompressesRows(t *testing.T) {
	for _, older := range []bool{false, true} {
		t.Run(fmt.Sprintf("olderPeer=%v", older), func(t *testing.T) {
			a, b := newEngineSide(t, "alpha", "beta"), newEngineSide(t, "beta", "alpha")
			for _, s := range []*engineSide{a, b} {
				if err := s.eng.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			const n = 3000
			for range n {
				a.src.commit("alpha", 4)
			}
			registerB := func(n *pipe.Node) { b.eng.Register(n) }
			if older {
				registerB = func(n *pipe.Node) {
					n.Handle(kindRows, rowsMaxFrame, func(ctx context.Context, st *pipe.Stream) error { return b.eng.receive(ctx, st, false) })
					n.Handle(kindSeed, rowsMaxFrame, b.eng.serveSeed)
					n.OnSession(b.eng.send)
				}
			}
			a.node, b.node = pipetest.Pair(t, "alpha", "beta", func(n *pipe.Node) { a.eng.Register(n) }, registerB)
			wantSeqs(t, b.sink, "alpha", n)
			st := a.eng.Status()
			t.Logf("%d transactions: %d bytes encoded, %d on the stream", n, st.SentBytes, st.WireBytes)
			switch {
			case st.SentBytes == 0:
				t.Errorf("no bytes counted as sent")
			case older && st.WireBytes != st.SentBytes:
				t.Errorf("to an older peer %d bytes went as %d; want them uncompressed", st.SentBytes, st.WireBytes)
			case !older && st.WireBytes*3 > st.SentBytes:
				t.Errorf("%d bytes went as %d; want them compressed to a third or less", st.SentBytes, st.WireBytes)
			}
		})
	}
}
