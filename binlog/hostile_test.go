package binlog

// These tests start a real receiving node (beta: a pipe node serving an
// Engine whose Sink is a recording fake, or a real Applier on a real
// MariaDB) and a hostile peer (alpha: a pipe node holding a trusted key
// that, instead of an Engine, opens the rows stream itself and sends
// crafted frames). Every bad input must end the stream with a logged
// error, write nothing, and leave beta serving the next good stream.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tandemhost/tandem/internal/mysqltest"
	"github.com/tandemhost/tandem/internal/pipetest"
	"github.com/tandemhost/tandem/pipe"
)

// idleSource is a binlog nobody writes to: beta has nothing to send.
type idleSource struct{}

func (idleSource) Run(ctx context.Context, from string, emit func(*Txn) error) error {
	<-ctx.Done()
	return ctx.Err()
}

// recordingSink records what it is asked to apply, like the Applier's
// checkpoint: the highest seq per origin.
type recordingSink struct {
	mu      sync.Mutex // guards applied
	applied []*Txn
}

func (r *recordingSink) Applied(ctx context.Context, origin string) (uint64, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.applied) - 1; i >= 0; i-- {
		if r.applied[i].Origin == origin {
			return r.applied[i].Seq, r.applied[i].GTID, nil
		}
	}
	return 0, "", nil
}

func (r *recordingSink) Apply(ctx context.Context, txns []*Txn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, txns...)
	return nil
}

func (r *recordingSink) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.applied)
}

// rowsHostile is beta (a real Engine) and alpha (a hostile peer).
type rowsHostile struct {
	beta, alpha *pipetest.Node
	eng         *Engine
	seq         uint64 // the last seq alpha sent in a good transaction

	mu   sync.Mutex // guards sess, sessCtx
	sess *pipe.Session
	sctx context.Context
}

func hostileUnusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newRowsHostile(t *testing.T, sink Sink) *rowsHostile {
	h := &rowsHostile{alpha: pipetest.NewNode(t, "alpha"), beta: pipetest.NewNode(t, "beta")}
	pipetest.Trust(t, h.beta, h.alpha)
	pipetest.Trust(t, h.alpha, h.beta)
	h.eng = NewEngine(EngineOptions{
		Node: "beta", Peer: "alpha", Source: idleSource{}, Sink: sink, StateDir: t.TempDir(),
		Position: func(context.Context) (string, error) { return "0-2-0", nil },
		Log:      h.beta.Log,
	})
	// beta dials nobody: alpha dials it, and alpha runs no Engine.
	h.beta.Start(t, "alpha", hostileUnusedAddr(t), h.eng.Register)
	h.alpha.Start(t, "beta", h.beta.Addr(), func(n *pipe.Node) {
		n.OnSession(func(ctx context.Context, s *pipe.Session) {
			h.mu.Lock()
			h.sess, h.sctx = s, ctx
			h.mu.Unlock()
			<-ctx.Done()
		})
	})
	return h
}

func (h *rowsHostile) session(t *testing.T) *pipe.Session {
	t.Helper()
	var s *pipe.Session
	pipetest.WaitFor(t, "a session from the hostile peer", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		s = h.sess
		return s != nil && h.sctx.Err() == nil
	})
	return s
}

type rowsFrame struct {
	typ  uint8
	body []byte
	err  error
}

func rowsRecv(t *testing.T, st *pipe.Stream) rowsFrame {
	t.Helper()
	c := make(chan rowsFrame, 1)
	go func() {
		typ, body, err := st.Recv()
		c <- rowsFrame{typ, bytes.Clone(body), err}
	}()
	timer := time.NewTimer(pipetest.WaitTimeout)
	defer timer.Stop()
	select {
	case f := <-c:
		return f
	case <-timer.C:
		st.Close()
		<-c
		t.Fatalf("no frame and no end of stream within %v", pipetest.WaitTimeout)
		return rowsFrame{}
	}
}

// open opens a rows stream to beta and reads its Start: the seq beta has
// applied from alpha.
func (h *rowsHostile) open(t *testing.T) (*pipe.Stream, uint64) {
	t.Helper()
	return h.openKind(t, kindRows)
}

// openKind is open for a stream of kind (rows or rows-zstd).
func (h *rowsHostile) openKind(t *testing.T, kind string) (*pipe.Stream, uint64) {
	t.Helper()
	st, err := h.session(t).Open(kind, pipe.LimitMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := rowsRecv(t, st)
	if f.err != nil || f.typ != frameStart {
		t.Fatalf("first frame from beta: type %d, %v; want Start", f.typ, f.err)
	}
	d := pipe.NewDecoder(f.body)
	seq := d.Uvarint()
	d.String(4096)
	if err := d.Finish(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return st, seq
}

// expectEnd checks that beta closes st without acknowledging anything.
func expectRowsEnd(t *testing.T, st *pipe.Stream) {
	t.Helper()
	if f := rowsRecv(t, st); f.err == nil {
		t.Fatalf("beta answered with a frame of type %d instead of closing the stream", f.typ)
	}
}

func expectRowsAck(t *testing.T, st *pipe.Stream, seq uint64) {
	t.Helper()
	f := rowsRecv(t, st)
	if f.err != nil || f.typ != frameAck {
		t.Fatalf("waiting for Ack %d: frame type %d, %v", seq, f.typ, f.err)
	}
	d := pipe.NewDecoder(f.body)
	if got := d.Uvarint(); d.Finish() != nil || got != seq {
		t.Fatalf("Ack %d, want %d", got, seq)
	}
}

// waitWarn waits for a warning of beta's mentioning every one of want.
func (h *rowsHostile) waitWarn(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(pipetest.WaitTimeout)
	for !h.beta.Warned(want...) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning mentioning %q; warnings: %q", want, h.beta.Warnings())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hostileRow is an insert into shop.t (id INT PRIMARY KEY, v VARCHAR).
func hostileRow(schema, table string, id int64, v string) Row {
	return Row{Op: Insert, Schema: schema, Table: table,
		Columns: []Column{{Name: "id", Type: "int"}, {Name: "v", Type: "varchar(64)", Charset: "utf8mb4"}},
		Key:     []int{0}, After: []Value{{Kind: Int, I: id}, {Kind: Text, B: []byte(v)}}}
}

func hostileTxn(origin string, seq uint64, rows ...Row) *Txn {
	return &Txn{Origin: origin, GTID: fmt.Sprintf("0-1-%d", seq), Seq: seq,
		Time: time.Unix(1_790_000_000+int64(seq), 0).UTC(), Rows: rows}
}

// good sends a well-formed transaction on a new stream and waits for its
// Ack: beta still serves.
func (h *rowsHostile) good(t *testing.T) {
	t.Helper()
	st, _ := h.open(t)
	h.seq++
	if err := st.SendFrame(frameTxn, AppendTxn(nil, hostileTxn("alpha", h.seq, hostileRow("shop", "t", int64(h.seq), "good")))); err != nil {
		t.Fatal(err)
	}
	expectRowsAck(t, st, h.seq)
	st.Close()
}

// rawRows opens a rows stream without framing, reads beta's Start, and
// returns the channel for byte-level attacks.
func (h *rowsHostile) rawRows(t *testing.T) io.ReadWriteCloser {
	t.Helper()
	ch, err := h.session(t).OpenRaw(kindRows)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	if typ, _, err := pipe.NewFrameReader(ch, 0).Read(); err != nil || typ != frameStart {
		t.Fatalf("first frame from beta: type %d, %v; want Start", typ, err)
	}
	return ch
}

// rawEnd waits until beta closes a raw stream.
func rawEnd(t *testing.T, ch io.ReadWriteCloser) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, ch)
		done <- err
	}()
	timer := time.NewTimer(pipetest.WaitTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		ch.Close()
		<-done
		t.Fatal("beta did not close the stream")
	}
}

func frameHeader(n uint32, typ uint8) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), typ)
}

// TestHostileRowsPeer sends malformed rows-stream frames to a real Engine
// (with a recording Sink): each must end the stream with a warning naming
// the problem, reach the Sink never, and leave the Engine serving.
func TestHostileRowsPeer(t *testing.T) {
	sink := &recordingSink{}
	h := newRowsHostile(t, sink)
	h.good(t)

	valid := AppendTxn(nil, hostileTxn("alpha", 1000, hostileRow("shop", "t", 1000, "bad")))
	// A Txn re-encoded with one field replaced: the header fields are
	// written here by hand so that the decoder's own checks are reached.
	header := func(version byte, origin, gtid string) []byte {
		w := wireWriter{}
		w.byte(version)
		w.str(origin)
		w.str(gtid)
		w.uvarint(1000)
		w.varint(1_790_000_000)
		w.uvarint(0)
		w.byte(0)
		return w.buf
	}
	countClaim := func(n uint64) []byte {
		return binary.AppendUvarint(header(wireVersion, "alpha", "0-1-1000"), n)
	}
	colsClaim := func(n uint64) []byte {
		b := countClaim(1)
		b = append(b, byte(Insert))
		b = binary.AppendUvarint(b, 0)
		w := wireWriter{buf: b}
		w.str("shop")
		w.str("t")
		w.uvarint(n)
		return w.buf
	}
	type frame struct {
		typ  uint8
		body []byte
	}
	cases := []struct {
		name   string
		frames []frame
		want   string // in beta's warning
	}{
		{"origin not the peer", []frame{{frameTxn, AppendTxn(nil, hostileTxn("gamma", 1000, hostileRow("shop", "t", 1, "x")))}}, `transaction from "gamma"`},
		{"origin is the receiver (echo)", []frame{{frameTxn, AppendTxn(nil, hostileTxn("beta", 1000, hostileRow("shop", "t", 1, "x")))}}, `transaction from "beta"`},
		{"unknown frame type", []frame{{77, valid}}, "frame type 77"},
		{"ack to the receiver", []frame{{frameAck, binary.AppendUvarint(nil, 5)}}, "frame type 3"},
		{"start to the receiver", []frame{{frameStart, []byte{0, 0}}}, "frame type 1"},
		{"empty Txn body", []frame{{frameTxn, nil}}, "malformed"},
		{"truncated Txn", []frame{{frameTxn, valid[:len(valid)/2]}}, "malformed"},
		{"Txn cut by one byte", []frame{{frameTxn, valid[:len(valid)-1]}}, "malformed"},
		{"trailing bytes", []frame{{frameTxn, append(bytes.Clone(valid), 0)}}, "malformed"},
		{"garbage", []frame{{frameTxn, bytes.Repeat([]byte{0xff}, 300)}}, "malformed"},
		{"wire version 2", []frame{{frameTxn, append(header(2, "alpha", "0-1-1000"), 0)}}, "wire version 2"},
		{"origin with NUL", []frame{{frameTxn, append(header(wireVersion, "al\x00pha", "0-1-1000"), 0)}}, "NUL"},
		{"origin not UTF-8", []frame{{frameTxn, append(header(wireVersion, "al\xffpha", "0-1-1000"), 0)}}, "UTF-8"},
		{"row count of 2^40", []frame{{frameTxn, countClaim(1 << 40)}}, "row count"},
		{"column count of 2^30", []frame{{frameTxn, colsClaim(1 << 30)}}, "column count"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := sink.count()
			st, _ := h.open(t)
			for _, f := range c.frames {
				if err := st.SendFrame(f.typ, f.body); err != nil {
					t.Fatal(err)
				}
			}
			expectRowsEnd(t, st)
			h.waitWarn(t, "stream ended with error", "rows", c.want)
			if got := sink.count(); got != before {
				t.Errorf("the sink was given %d transaction(s) from a refused stream", got-before)
			}
			h.good(t)
		})
	}

	t.Run("frame header over the limit", func(t *testing.T) {
		before := sink.count()
		ch := h.rawRows(t)
		if _, err := ch.Write(frameHeader(1<<31, frameTxn)); err != nil {
			t.Fatal(err)
		}
		rawEnd(t, ch)
		h.waitWarn(t, "stream ended with error", "rows", "frame too large")
		if got := sink.count(); got != before {
			t.Errorf("the sink was given %d transaction(s)", got-before)
		}
		h.good(t)
	})
	t.Run("zero-length frame", func(t *testing.T) {
		ch := h.rawRows(t)
		if _, err := ch.Write([]byte{0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		rawEnd(t, ch)
		h.waitWarn(t, "stream ended with error", "rows", "zero-length frame")
		h.good(t)
	})
	t.Run("frame cut short", func(t *testing.T) {
		before := sink.count()
		ch := h.rawRows(t)
		b := append(frameHeader(uint32(1+len(valid)), frameTxn), valid[:len(valid)/2]...)
		if _, err := ch.Write(b); err != nil {
			t.Fatal(err)
		}
		ch.Close()
		h.waitWarn(t, "stream ended with error", "rows", "unexpected EOF")
		if got := sink.count(); got != before {
			t.Errorf("the sink was given %d transaction(s)", got-before)
		}
		h.good(t)
	})

	// A transaction the sender is allowed to send (under MaxTxnBytes) must
	// get through, whatever the pipe's default frame size.
	t.Run("large good transaction", func(t *testing.T) {
		st, _ := h.open(t)
		h.seq++
		big := strings.Repeat("x", 60)
		var rows []Row
		for i := range 40_000 { // about 3 MB encoded
			rows = append(rows, hostileRow("shop", "t", int64(i), big))
		}
		body := AppendTxn(nil, hostileTxn("alpha", h.seq, rows...))
		if len(body) > MaxTxnBytes || len(body) < 2<<20 {
			t.Fatalf("test transaction is %d bytes", len(body))
		}
		if err := st.SendFrame(frameTxn, body); err != nil {
			t.Fatalf("send a %d-byte transaction (limit MaxTxnBytes=%d): %v; warnings: %q", len(body), MaxTxnBytes, err, h.beta.Warnings())
		}
		f := rowsRecv(t, st)
		if f.err != nil || f.typ != frameAck {
			t.Fatalf("a %d-byte transaction (under MaxTxnBytes=%d) was refused: frame type %d, %v; warnings: %q",
				len(body), MaxTxnBytes, f.typ, f.err, h.beta.Warnings())
		}
		h.good(t)
	})
}

// TestHostileRowsSender plays a hostile receiver against beta's sender:
// answers that are not a Start, or acks that are not acks, end the
// sender's stream with an error in its status; it starts again.
func TestHostileRowsSender(t *testing.T) {
	alpha, beta := pipetest.NewNode(t, "alpha"), pipetest.NewNode(t, "beta")
	pipetest.Trust(t, alpha, beta)
	pipetest.Trust(t, beta, alpha)
	src := newFakeSource()
	eng := NewEngine(EngineOptions{
		Node: "beta", Peer: "alpha", Source: src, Sink: &recordingSink{}, StateDir: t.TempDir(),
		Position: func(context.Context) (string, error) { return src.position(), nil },
		Log:      beta.Log,
	})
	if err := eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	src.commit("beta", 1)
	// Each time beta's sender opens the stream, alpha answers with the
	// next script; the last one is a correct receiver.
	scripts := []func(st *pipe.Stream) error{
		func(st *pipe.Stream) error { return st.SendFrame(frameAck, binary.AppendUvarint(nil, 1)) }, // ack before start
		func(st *pipe.Stream) error { return st.SendFrame(frameStart, []byte{0xff}) },               // truncated start
		func(st *pipe.Stream) error { return st.SendFrame(frameStart, []byte{0, 1, 0xff}) },         // start with a non-UTF-8 GTID
		func(st *pipe.Stream) error { // start, then an ack with trailing garbage
			var e pipe.Encoder
			e.Uvarint(0)
			e.String("")
			if err := st.SendFrame(frameStart, e.Buf()); err != nil {
				return err
			}
			return st.SendFrame(frameAck, []byte{1, 2, 3})
		},
	}
	var mu sync.Mutex
	calls := 0
	got := make(chan *Txn, 16)
	alpha.Start(t, "beta", beta.Addr(), func(n *pipe.Node) {
		n.Handle(kindRows, pipe.LimitMaxFrame, func(ctx context.Context, st *pipe.Stream) error {
			mu.Lock()
			i := calls
			calls++
			mu.Unlock()
			if i < len(scripts) {
				if err := scripts[i](st); err != nil {
					return err
				}
				// Wait for beta to give up on the stream.
				for {
					if _, _, err := st.Recv(); err != nil {
						return nil
					}
				}
			}
			var e pipe.Encoder
			e.Uvarint(0)
			e.String("")
			if err := st.SendFrame(frameStart, e.Buf()); err != nil {
				return err
			}
			for {
				typ, body, err := st.Recv()
				if err != nil {
					return nil
				}
				tx, err := DecodeTxn(body)
				if typ != frameTxn || err != nil {
					return fmt.Errorf("beta sent frame type %d: %v", typ, err)
				}
				got <- tx
				var a pipe.Encoder
				a.Uvarint(tx.Seq)
				if err := st.SendFrame(frameAck, a.Buf()); err != nil {
					return err
				}
			}
		})
	})
	beta.Start(t, "alpha", alpha.Addr(), eng.Register)
	select {
	case tx := <-got:
		if tx.Seq != 1 || tx.Origin != "beta" {
			t.Errorf("got %s seq %d, want beta's seq 1", tx.Origin, tx.Seq)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("beta's sender never got through to the good receiver; warnings: %q", beta.Warnings())
	}
	for _, want := range []string{"before start", "rows stream start", "bad ack"} {
		if !beta.Warned("rows sender ended", want) {
			t.Errorf("no warning of beta's sender mentioning %q; warnings: %q", want, beta.Warnings())
		}
	}
	pipetest.WaitFor(t, "the ack in beta's status", func() bool { st := eng.Status(); return st.Acked == 1 && st.InFlight == 0 })
	if st := eng.Status(); st.SendError != "" {
		t.Errorf("status send_error = %q while the stream works again; want it cleared", st.SendError)
	}
}

// TestHostileRowsApplier sends well-framed but hostile transactions to an
// Engine backed by a real Applier on a real MariaDB: identifiers that try
// to break out of their quotes, values that try to break out of their
// literals, writes to the system schemas and to tandem's own marker table,
// DDL that is not a replicated schema change. Nothing may be written
// outside the replicated tables; each must be refused and logged; beta
// keeps applying good transactions.
func TestHostileRowsApplier(t *testing.T) {
	s := mysqltest.Start(t, mysqltest.Options{ServerID: 2})
	s.Exec("CREATE DATABASE shop",
		"CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB",
		"CREATE TABLE shop.victim (id INT PRIMARY KEY) ENGINE=InnoDB",
		"INSERT INTO shop.victim VALUES (1)",
		"CREATE TABLE shop.log (v BIGINT) ENGINE=InnoDB")
	a, _ := testApplier(t, s, "beta", ApplierOptions{})
	h := newRowsHostile(t, a)
	db := s.DB("")
	// count returns the number a query counts, or -1 when the query fails
	// (a table the attack dropped, say).
	count := func(q string) int {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	tableExists := func(schema, table string) bool {
		return count(fmt.Sprintf("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '%s' AND table_name = '%s'", schema, table)) > 0
	}
	h.good(t)

	// untouched checks what every hostile transaction must leave as it was.
	untouched := func(t *testing.T, goodRows int) {
		t.Helper()
		if n := count("SELECT COUNT(*) FROM shop.victim"); n != 1 {
			t.Errorf("shop.victim has %d rows, want 1", n)
		}
		if n := count("SELECT COUNT(*) FROM shop.t"); n != goodRows {
			t.Errorf("shop.t has %d rows, want the %d good ones", n, goodRows)
		}
		if !tableExists("mysql", "global_priv") {
			t.Errorf("mysql.global_priv is gone")
		}
		if n := count("SELECT COUNT(*) FROM mysql.global_priv WHERE User = 'evil'"); n != 0 {
			t.Errorf("mysql.global_priv has %d row(s) for user evil: the peer wrote the grant tables", n)
		}
		if tableExists("mysql", "evil") || tableExists("shop", "evil") || tableExists("shop", "evil2") {
			t.Errorf("a table named evil was created")
		}
		if n := count("SELECT COUNT(*) FROM tandem.applied WHERE origin <> 'alpha' OR seq > 1000000"); n != 0 {
			t.Errorf("tandem.applied has %d forged marker row(s)", n)
		}
	}

	rowOf := func(schema, table string, cols []Column, vals ...Value) Row {
		return Row{Op: Insert, Schema: schema, Table: table, Columns: cols, Key: []int{0}, After: vals}
	}
	idv := []Column{{Name: "id", Type: "int"}, {Name: "v", Type: "varchar(64)", Charset: "utf8mb4"}}
	grant := rowOf("mysql", "global_priv",
		[]Column{{Name: "Host", Type: "char(255)", Charset: "utf8mb3"}, {Name: "User", Type: "char(128)", Charset: "utf8mb3"}, {Name: "Priv", Type: "longtext", Charset: "utf8mb4"}},
		Value{Kind: Text, B: []byte("%")}, Value{Kind: Text, B: []byte("evil")}, Value{Kind: Text, B: []byte(`{"access":1073741823}`)})
	marker := rowOf("tandem", "applied",
		[]Column{{Name: "origin", Type: "varchar(255)", Charset: "utf8mb4"}, {Name: "seq", Type: "bigint unsigned"}, {Name: "prev", Type: "bigint unsigned"}, {Name: "gtid", Type: "varchar(255)", Charset: "ascii"}},
		Value{Kind: Text, B: []byte("alpha")}, Value{Kind: Uint, U: 1 << 40}, Value{Kind: Uint, U: 0}, Value{Kind: Text, B: []byte("0-1-1099511627776")})
	markerDelete := Row{Op: Delete, Schema: "tandem", Table: "applied",
		Columns: []Column{{Name: "origin", Type: "varchar(255)", Charset: "utf8mb4"}, {Name: "seq", Type: "bigint unsigned"}, {Name: "prev", Type: "bigint unsigned"}, {Name: "gtid", Type: "varchar(255)", Charset: "ascii"}},
		Key:     []int{0, 1}}
	decimal := func(s string) Row {
		return rowOf("shop", "t", []Column{{Name: "id", Type: "decimal(10,2)"}, {Name: "v", Type: "varchar(64)", Charset: "utf8mb4"}},
			Value{Kind: Decimal, S: s}, Value{Kind: Text, B: []byte("x")})
	}
	date := func(s string) Row {
		return rowOf("shop", "t", []Column{{Name: "id", Type: "int"}, {Name: "v", Type: "datetime"}},
			Value{Kind: Int, I: 7}, Value{Kind: DateTime, S: s})
	}
	charset := rowOf("shop", "t", []Column{{Name: "id", Type: "int"}, {Name: "v", Type: "varchar(64)", Charset: "utf8mb4 X'41'; DROP TABLE shop.victim; -- "}},
		Value{Kind: Int, I: 8}, Value{Kind: Text, B: []byte("x")})
	ddl := func(schema, stmt string) *Txn {
		return &Txn{Origin: "alpha", GTID: "0-1-x", Time: time.Unix(1_790_000_000, 0).UTC(), DDL: &DDL{Schema: schema, Statement: stmt}}
	}
	cases := []struct {
		name string
		txn  *Txn // Seq and GTID are set when sent
		row  *Row
	}{
		{name: "backtick in table name", row: ptr(rowOf("shop", "t` (id) VALUES (1); DROP TABLE shop.victim; -- ", idv, Value{Kind: Int, I: 2}, Value{Kind: Text, B: []byte("x")}))},
		{name: "backtick in schema name", row: ptr(rowOf("shop`.`victim` WHERE 1; DROP TABLE `shop", "t", idv, Value{Kind: Int, I: 2}, Value{Kind: Text, B: []byte("x")}))},
		{name: "backtick in column name", row: ptr(rowOf("shop", "t", []Column{{Name: "id`) VALUES (3); DROP TABLE shop.victim; -- ", Type: "int"}, {Name: "v", Type: "varchar(64)", Charset: "utf8mb4"}}, Value{Kind: Int, I: 3}, Value{Kind: Text, B: []byte("x")}))},
		{name: "quote in text value is data, not SQL", row: nil},
		{name: "decimal value with SQL", row: ptr(decimal("1); DROP TABLE shop.victim; -- "))},
		{name: "datetime value with SQL", row: ptr(date("2026-01-01'); DROP TABLE shop.victim; -- "))},
		{name: "charset with SQL", row: &charset},
		{name: "row in mysql.global_priv", row: &grant},
		{name: "forged marker row in tandem.applied", row: &marker},
		{name: "delete of the marker rows", row: &markerDelete},
		{name: "DDL in the mysql schema", txn: ddl("mysql", "CREATE TABLE evil (x INT)")},
		{name: "DDL that is a GRANT", txn: ddl("", "CREATE USER 'evil'@'%' IDENTIFIED BY 'x'")},
		{name: "DDL with a second statement", txn: ddl("shop", "CREATE TABLE shop.evil2 (x INT); DROP TABLE shop.victim")},
		{name: "DDL with a second statement in an executable comment", txn: ddl("shop", "CREATE TABLE shop.evil2 (x INT) /*!; DROP TABLE shop.victim */")},
		{name: "DDL reading the grant tables", txn: ddl("shop", "CREATE TABLE shop.evil AS SELECT * FROM mysql.global_priv")},
		{name: "DDL reading the grant tables in backticks", txn: ddl("shop", "CREATE TABLE `shop`.`evil` AS SELECT * FROM `mysql` . `global_priv`")},
		{name: "DDL reading the grant tables in an executable comment", txn: ddl("shop", "CREATE TABLE shop.evil /*!AS SELECT * FROM mysql.global_priv */")},
		{name: "DDL moving a grant table", txn: ddl("shop", "RENAME TABLE mysql.global_priv TO shop.evil")},
		{name: "CREATE TABLE ... SELECT with rows into the grant tables", txn: &Txn{Origin: "alpha", Time: time.Unix(1_790_000_000, 0).UTC(),
			DDL: &DDL{Schema: "shop", Statement: "CREATE TABLE shop.evil2 (x INT) SELECT 1 AS x"}, Rows: []Row{grant}}},
	}
	goodRows := 1
	// repair undoes what an attack that got through did, so that each
	// case is judged on its own.
	repair := func() {
		s.Exec("DELETE FROM mysql.global_priv WHERE User = 'evil'",
			"DELETE FROM tandem.applied WHERE origin <> 'alpha' OR seq > 1000000",
			"DROP TABLE IF EXISTS mysql.evil, shop.evil, shop.evil2",
			"CREATE TABLE IF NOT EXISTS shop.victim (id INT PRIMARY KEY) ENGINE=InnoDB",
			"INSERT IGNORE INTO shop.victim VALUES (1)")
		goodRows = count("SELECT COUNT(*) FROM shop.t")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Cleanup(repair)
			if c.row == nil && c.txn == nil {
				// The control: a text value full of quotes and
				// semicolons is stored as it is.
				h.seq++
				st, _ := h.open(t)
				v := `x'); DROP TABLE shop.victim; -- "` + "`"
				if err := st.SendFrame(frameTxn, AppendTxn(nil, hostileTxn("alpha", h.seq, hostileRow("shop", "t", int64(h.seq), v)))); err != nil {
					t.Fatal(err)
				}
				expectRowsAck(t, st, h.seq)
				goodRows++
				var got string
				if err := db.QueryRow("SELECT v FROM shop.t WHERE id = ?", h.seq).Scan(&got); err != nil || got != v {
					t.Errorf("stored %q (%v), want %q", got, err, v)
				}
				untouched(t, goodRows)
				return
			}
			h.seq++
			tx := c.txn
			if tx == nil {
				tx = hostileTxn("alpha", h.seq, *c.row)
				if c.row.Op == Delete {
					// Delete the marker of the good transaction
					// before: a replay would apply it twice.
					var seq, prev uint64
					var gtid string
					if err := db.QueryRow("SELECT seq, prev, gtid FROM tandem.applied WHERE origin = 'alpha' ORDER BY seq DESC LIMIT 1").Scan(&seq, &prev, &gtid); err != nil {
						t.Fatal(err)
					}
					tx.Rows[0].Before = []Value{{Kind: Text, B: []byte("alpha")}, {Kind: Uint, U: seq}, {Kind: Uint, U: prev}, {Kind: Text, B: []byte(gtid)}}
				}
			}
			tx.Seq, tx.GTID = h.seq, fmt.Sprintf("0-1-%d", h.seq)
			markers := count("SELECT COUNT(*) FROM tandem.applied")
			st, _ := h.open(t)
			if err := st.SendFrame(frameTxn, AppendTxn(nil, tx)); err != nil {
				t.Fatal(err)
			}
			f := rowsRecv(t, st)
			if f.err == nil {
				t.Errorf("beta acknowledged (frame type %d) a transaction it should refuse", f.typ)
			} else {
				h.waitWarn(t, "stream ended with error", "rows", tx.GTID)
			}
			untouched(t, goodRows)
			if got := count("SELECT COUNT(*) FROM tandem.applied"); got < markers {
				t.Errorf("tandem.applied went from %d rows to %d: the peer deleted marker rows", markers, got)
			}
			// The refused transaction is not applied: the next good one
			// takes its seq's place in the stream.
			h.seq--
			if f.err == nil {
				h.seq++ // it was acknowledged: its seq is spent
			}
			h.good(t)
			goodRows++
			untouched(t, goodRows)
		})
	}

	// Replays: a transaction sent again, older than the checkpoint, or
	// twice in one stream, is applied once. shop.log has no key, so a
	// second application would show as a second row.
	t.Run("replays are applied once", func(t *testing.T) {
		logRow := func(seq uint64) *Txn {
			return hostileTxn("alpha", seq, Row{Op: Insert, Schema: "shop", Table: "log",
				Columns: []Column{{Name: "v", Type: "bigint"}}, After: []Value{{Kind: Int, I: int64(seq)}}})
		}
		send := func(st *pipe.Stream, txns ...*Txn) {
			for _, tx := range txns {
				if err := st.SendFrame(frameTxn, AppendTxn(nil, tx)); err != nil {
					return // beta may have closed the stream
				}
			}
		}
		h.seq++
		first := h.seq
		st, _ := h.open(t)
		send(st, logRow(first))
		expectRowsAck(t, st, first)
		st.Close()
		// The same transaction again, then an older one, on a new stream.
		st, applied := h.open(t)
		if applied != first {
			t.Errorf("beta's Start says %d applied, want %d", applied, first)
		}
		send(st, logRow(first), logRow(first-1))
		st.Close()
		// The next one twice in one stream.
		h.seq++
		st, _ = h.open(t)
		send(st, logRow(h.seq), logRow(h.seq))
		st.Close()
		h.good(t)
		if n := count("SELECT COUNT(*) - COUNT(DISTINCT v) FROM shop.log"); n != 0 {
			t.Errorf("shop.log has %d repeated row(s): a replayed transaction was applied twice", n)
		}
		if n := count(fmt.Sprintf("SELECT COUNT(*) FROM shop.log WHERE v = %d", first)); n != 1 {
			t.Errorf("shop.log has %d rows of transaction %d, want 1", n, first)
		}
		if n := count(fmt.Sprintf("SELECT COUNT(*) FROM shop.log WHERE v = %d", first-1)); n != 0 {
			t.Errorf("shop.log has %d rows of a forged transaction %d, older than the checkpoint: want it skipped", n, first-1)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestRowsLargeTransactionCrosses sends a transaction of a few MB (well
// under MaxTxnBytes) between two real Engines: the frame limit of the rows
// stream must let it through on both the sender's and the receiver's side.
func TestRowsLargeTransactionCrosses(t *testing.T) {
	a, b := newEngineSide(t, "alpha", "beta"), newEngineSide(t, "beta", "alpha")
	if err := a.eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	big := a.src.commit("alpha", 1)
	for i := range 40_000 {
		big.Rows = append(big.Rows, hostileRow("shop", "t", int64(i+1), strings.Repeat("y", 60)))
	}
	if n := len(AppendTxn(nil, big)); n < 2<<20 || n > MaxTxnBytes {
		t.Fatalf("test transaction is %d bytes", n)
	}
	startPair(t, a, b)
	wantSeqs(t, b.sink, "alpha", 1)
}

// TestHostileRowsAckBeyondSent: a receiver that acknowledges a seq the
// sender never sent must not make the sender's status claim it was
// replicated: the stream ends as malformed, and Acked stays at most Sent.
func TestHostileRowsAckBeyondSent(t *testing.T) {
	alpha, beta := pipetest.NewNode(t, "alpha"), pipetest.NewNode(t, "beta")
	pipetest.Trust(t, alpha, beta)
	pipetest.Trust(t, beta, alpha)
	src := newFakeSource()
	eng := NewEngine(EngineOptions{
		Node: "beta", Peer: "alpha", Source: src, Sink: &recordingSink{}, StateDir: t.TempDir(),
		Position: func(context.Context) (string, error) { return src.position(), nil },
		Log:      beta.Log,
	})
	if err := eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	src.commit("beta", 1)
	alpha.Start(t, "beta", beta.Addr(), func(n *pipe.Node) {
		n.Handle(kindRows, pipe.LimitMaxFrame, func(ctx context.Context, st *pipe.Stream) error {
			var e pipe.Encoder
			e.Uvarint(0)
			e.String("")
			if err := st.SendFrame(frameStart, e.Buf()); err != nil {
				return err
			}
			if _, _, err := st.Recv(); err != nil {
				return err
			}
			var a pipe.Encoder
			a.Uvarint(1 << 60)
			if err := st.SendFrame(frameAck, a.Buf()); err != nil {
				return err
			}
			for {
				if _, _, err := st.Recv(); err != nil {
					return nil
				}
			}
		})
	})
	beta.Start(t, "alpha", alpha.Addr(), eng.Register)
	pipetest.WaitFor(t, "beta's sender to refuse the ack of a seq it never sent", func() bool {
		return beta.Warned("rows sender ended", "ack")
	})
	if st := eng.Status(); st.Acked > st.Sent {
		t.Errorf("status: acked %d > sent %d: the sender believes the peer has what it never sent", st.Acked, st.Sent)
	}
}

// TestHostileRowsZstd sends malformed compressed batches on a rows-zstd
// stream (and one on a rows stream, which takes none): each must end the
// stream with a warning naming the problem, reach the Sink never, decompress
// no more than zstdBatchMax, and leave the Engine serving. (As on a rows
// stream, good transactions before a bad one in a batch are applied: each
// is whole and checked on its own.)
func TestHostileRowsZstd(t *testing.T) {
	sink := &recordingSink{}
	h := newRowsHostile(t, sink)
	h.good(t)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	// body is a frameTxnsZstd body announcing n bytes, carrying plain.
	body := func(n int, plain []byte) []byte {
		return enc.EncodeAll(plain, binary.AppendUvarint(nil, uint64(n)))
	}
	txns := func(origins ...string) []byte {
		var b []byte
		for i, o := range origins {
			b = pipe.AppendFrame(b, frameTxn, AppendTxn(nil, hostileTxn(o, 2000+uint64(i), hostileRow("shop", "t", 2000+int64(i), "z"))))
		}
		return b
	}
	good, one := txns("alpha", "alpha"), txns("alpha")
	bomb := make([]byte, 16<<20) // zeros: 16 MiB in a few hundred bytes
	cases := []struct {
		name, kind string
		body       []byte
		want       string // in beta's warning
	}{
		{"on a plain rows stream", kindRows, body(len(good), good), "frame type 4"},
		{"length 0", kindRowsZstd, body(0, good), "compressed transactions of 0 bytes"},
		{"length over the limit", kindRowsZstd, body(zstdBatchMax+1, good), "limit 1048576"},
		{"no length", kindRowsZstd, nil, "compressed transactions of 0 bytes"},
		{"not zstd", kindRowsZstd, append(binary.AppendUvarint(nil, 100), bytes.Repeat([]byte{0xab}, 100)...), "compressed transactions"},
		{"less than announced", kindRowsZstd, body(len(good)+1, good), "announced"},
		{"more than announced", kindRowsZstd, body(len(good)-1, good), "compressed transactions"},
		{"a bomb", kindRowsZstd, body(zstdBatchMax, bomb), "compressed transactions"},
		{"cut inner frame", kindRowsZstd, body(len(one)-3, one[:len(one)-3]), "malformed"},
		{"inner ack", kindRowsZstd, body(6, pipe.AppendFrame(nil, frameAck, []byte{5})), "frame type 3"},
		{"inner transaction from another node", kindRowsZstd, body(len(txns("gamma")), txns("gamma")), `transaction from "gamma"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := sink.count()
			st, _ := h.openKind(t, c.kind)
			if err := st.SendFrame(frameTxnsZstd, c.body); err != nil {
				t.Fatal(err)
			}
			expectRowsEnd(t, st)
			h.waitWarn(t, "stream ended with error", "rows", c.want)
			if got := sink.count() - before; got != 0 {
				t.Errorf("the sink was given %d transaction(s) from a refused stream", got)
			}
			h.good(t)
		})
	}
	t.Run("a good batch", func(t *testing.T) {
		before := sink.count()
		st, _ := h.openKind(t, kindRowsZstd)
		var frames []byte
		for range 3 {
			h.seq++
			frames = pipe.AppendFrame(frames, frameTxn, AppendTxn(nil, hostileTxn("alpha", h.seq, hostileRow("shop", "t", int64(h.seq), "ok"))))
		}
		if err := st.SendFrame(frameTxnsZstd, body(len(frames), frames)); err != nil {
			t.Fatal(err)
		}
		// The three may be applied in one call or more: acks up to the
		// last.
		for acked := uint64(0); acked != h.seq; {
			f := rowsRecv(t, st)
			if f.err != nil || f.typ != frameAck {
				t.Fatalf("a good compressed batch got frame type %d, %v; warnings: %q", f.typ, f.err, h.beta.Warnings())
			}
			d := pipe.NewDecoder(f.body)
			if acked = d.Uvarint(); d.Finish() != nil || acked > h.seq {
				t.Fatalf("Ack %d, want up to %d", acked, h.seq)
			}
		}
		if got := sink.count() - before; got != 3 {
			t.Errorf("the sink was given %d transactions of the batch's 3", got)
		}
	})
}
