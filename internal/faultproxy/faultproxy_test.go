// These tests start a TCP server and a Proxy in front of it, both on loopback.
package faultproxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait for something that should happen.
const waitLimit = 5 * time.Second

// quiet is how long a connection must stay silent to count as silent.
const quiet = 150 * time.Millisecond

func TestForwardsBothWays(t *testing.T) {
	srv := startServer(t, echo)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())

	var sent int64
	for _, msg := range []string{"hello", "x", string(bytes.Repeat([]byte("big"), 50000))} {
		roundTrip(t, c, []byte(msg))
		sent += int64(len(msg))
	}
	eventually(t, "stats count every byte", func() bool {
		s := p.Stats()
		return s.ToTarget == sent && s.FromTarget == sent
	})
	if s := p.Stats(); s.Accepted != 1 || s.Active != 1 {
		t.Errorf("Stats() = %+v, want Accepted 1, Active 1", s)
	}

	// A half-close travels through: the echo server sees EOF and closes,
	// and the client then reads EOF.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read after CloseWrite = %d, %v, want 0, EOF", n, err)
	}
	eventually(t, "the closed connection is forgotten", func() bool { return p.Stats().Active == 0 })
}

func TestLatency(t *testing.T) {
	const oneWay = 40 * time.Millisecond
	srv := startServer(t, echo)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())

	if rtt := roundTrip(t, c, []byte("before")); rtt >= 2*oneWay {
		t.Logf("round trip without latency took %v", rtt) // slow machine, not a failure
	}
	p.SetLatency(oneWay)
	for i := range 3 {
		rtt := roundTrip(t, c, []byte("ping"))
		if rtt < 2*oneWay || rtt > 2*oneWay+2*time.Second {
			t.Errorf("round trip %d with one-way latency %v took %v, want at least %v", i, oneWay, rtt, 2*oneWay)
		}
	}
	p.SetLatency(0)
	roundTrip(t, c, []byte("after"))
}

func TestLatencyKeepsThroughput(t *testing.T) {
	const (
		oneWay = 100 * time.Millisecond
		size   = 8 << 20
		// A proxy that waited out the latency once per chunk read would
		// take this long; a pipelined one takes about one round trip plus
		// the copying. Ask for a quarter of it, which leaves room for a
		// loaded machine and the race detector.
		stopAndWait = size / readSize * oneWay
		limit       = stopAndWait / 4
	)
	srv := startServer(t, countBytes)
	p := newProxy(t, srv.addr())
	p.SetLatency(oneWay)
	c := dial(t, p.Addr())

	start := time.Now()
	written := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, size))
		if err == nil {
			err = c.CloseWrite()
		}
		written <- err
	}()
	c.SetReadDeadline(time.Now().Add(stopAndWait))
	var got uint64
	if err := binary.Read(c, binary.BigEndian, &got); err != nil {
		t.Fatalf("read count: %v", err)
	}
	elapsed := time.Since(start)
	if err := <-written; err != nil {
		t.Fatalf("write: %v", err)
	}

	if got != size {
		t.Fatalf("server counted %d bytes, want %d", got, size)
	}
	t.Logf("%d bytes with %v one-way latency in %v: %.1f MiB/s",
		size, oneWay, elapsed, float64(size)/elapsed.Seconds()/(1<<20))
	if elapsed < 2*oneWay {
		t.Errorf("transfer took %v, less than the round trip %v", elapsed, 2*oneWay)
	}
	if elapsed > limit {
		t.Errorf("transfer took %v, want under %v (stop-and-wait would take %v)", elapsed, limit, stopAndWait)
	}
}

func TestBandwidth(t *testing.T) {
	const (
		rate = 1 << 20
		size = 200 << 10
		// The first slice goes at once; the rest must wait for the link.
		atLeast = time.Duration(size-rate/100) * time.Second / rate * 9 / 10
	)
	srv := startServer(t, countBytes)
	p := newProxy(t, srv.addr())
	p.SetBandwidth(rate)
	c := dial(t, p.Addr())

	start := time.Now()
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitLimit))
	var got uint64
	if err := binary.Read(c, binary.BigEndian, &got); err != nil {
		t.Fatalf("read count: %v", err)
	}
	elapsed := time.Since(start)
	if got != size {
		t.Fatalf("server counted %d bytes, want %d", got, size)
	}
	if elapsed < atLeast {
		t.Errorf("%d bytes at %d B/s took %v, want at least %v", size, rate, elapsed, atLeast)
	}
}

func TestBlackhole(t *testing.T) {
	srv := startServer(t, echo)
	p := newProxy(t, srv.addr())
	before := dial(t, p.Addr())
	roundTrip(t, before, []byte("hello"))

	p.Blackhole(true)
	write(t, before, []byte("lost"))
	expectSilent(t, before)

	during := dial(t, p.Addr()) // accepted, but never connected through
	write(t, during, []byte("lost too"))
	expectSilent(t, during)

	if got := srv.accepted.Load(); got != 1 {
		t.Errorf("target accepted %d connections during the blackhole, want 1 (from before it)", got)
	}
	if got := srv.received.Load(); got != int64(len("hello")) {
		t.Errorf("target received %d bytes, want %d: nothing sent in the blackhole may arrive", got, len("hello"))
	}
	if s := p.Stats(); s.Active != 2 {
		t.Errorf("Stats().Active = %d during the blackhole, want 2: connections stay open", s.Active)
	}

	p.Blackhole(false)
	expectClosed(t, before)
	expectClosed(t, during)
	srv.expectEnds(t, 1) // the target's side of the connection from before

	after := dial(t, p.Addr())
	roundTrip(t, after, []byte("back"))
}

func TestBlackholeHoldsQueuedData(t *testing.T) {
	srv := startServer(t, echo)
	p := newProxy(t, srv.addr())
	p.SetLatency(200 * time.Millisecond)
	c := dial(t, p.Addr())

	write(t, c, []byte("in flight"))
	p.Blackhole(true) // before the data is due
	expectSilent(t, c)
	if got := srv.received.Load(); got != 0 {
		t.Errorf("target received %d bytes queued before the blackhole, want 0", got)
	}
	p.Blackhole(false)
	expectClosed(t, c)
}

func TestReset(t *testing.T) {
	srv := startServer(t, echo)
	p := newProxy(t, srv.addr())
	a := dial(t, p.Addr())
	b := dial(t, p.Addr())
	roundTrip(t, a, []byte("a"))
	roundTrip(t, b, []byte("b"))

	p.Reset()
	expectClosed(t, a)
	expectClosed(t, b)
	srv.expectEnds(t, 2)
	eventually(t, "reset connections are forgotten", func() bool { return p.Stats().Active == 0 })

	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("c"))
}

func TestRefuse(t *testing.T) {
	srv := startServer(t, echo)
	p := newProxy(t, srv.addr())
	open := dial(t, p.Addr())
	roundTrip(t, open, []byte("hello"))

	p.Refuse(true)
	// The reset can beat the end of the handshake, failing the dial itself.
	if refused, err := net.DialTimeout("tcp", p.Addr(), waitLimit); err == nil {
		expectClosed(t, refused)
		refused.Close()
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("dial while refusing: %v, want a reset", err)
	}
	if got := srv.accepted.Load(); got != 1 {
		t.Errorf("target accepted %d connections, want 1: a refused one must not be dialed", got)
	}
	roundTrip(t, open, []byte("still here")) // Refuse leaves open connections alone

	p.Refuse(false)
	roundTrip(t, dial(t, p.Addr()), []byte("up again"))
	if s := p.Stats(); s.Accepted != 3 {
		t.Errorf("Stats().Accepted = %d, want 3", s.Accepted)
	}
}

func TestClose(t *testing.T) {
	srv := startServer(t, echo)
	p, err := New(srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	idle := dial(t, p.Addr())
	roundTrip(t, idle, []byte("hello"))
	queued := dial(t, p.Addr())
	p.SetLatency(time.Hour)
	write(t, queued, []byte("never delivered"))
	// A large write fills the queue, so the proxy's reader waits for space.
	full := dial(t, p.Addr())
	go full.Write(make([]byte, 2*queueBytes)) // fails when the proxy closes

	eventually(t, "all three connections open", func() bool { return p.Stats().Active == 3 })
	if err := p.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	for _, c := range []*net.TCPConn{idle, queued, full} {
		expectClosed(t, c)
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Errorf("dial after Close succeeded")
	}

	// Nothing of the proxy may outlive Close.
	full.Close()
	srv.close()
	goleak.VerifyNone(t)
}

func TestQueueBoundsBytes(t *testing.T) {
	q := newQueue(3 * (10 + chunkOverhead))
	done := make(chan struct{})
	for i := range 3 {
		if !q.push(chunk{data: make([]byte, 10)}, done) {
			t.Fatalf("push %d into a queue with room = false", i)
		}
	}
	closed := make(chan struct{})
	close(closed)
	if q.push(chunk{data: make([]byte, 10)}, closed) {
		t.Fatalf("push into a full queue returned true, want it to wait")
	}

	pushed := make(chan bool)
	go func() { pushed <- q.push(chunk{data: []byte("next")}, done) }()
	if _, ok := q.pop(done); !ok {
		t.Fatal("pop from a full queue = false")
	}
	select {
	case ok := <-pushed:
		if !ok {
			t.Fatal("push after a pop = false")
		}
	case <-time.After(waitLimit):
		t.Fatal("push still waiting after a pop made room")
	}

	empty := newQueue(100)
	if !empty.push(chunk{data: make([]byte, 1000)}, done) {
		t.Error("push of a chunk over the limit into an empty queue = false, want true")
	}
}

// server is a TCP server on loopback that runs handle on every connection.
type server struct {
	ln       net.Listener
	accepted atomic.Int64
	received atomic.Int64
	ends     chan error // the error that ended each connection's reads
	wg       sync.WaitGroup
	once     sync.Once

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu
}

func startServer(t testing.TB, handle func(*server, net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, ends: make(chan error, 100), conns: make(map[net.Conn]struct{})}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Go(func() {
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(s, c)
			})
		}
	})
	t.Cleanup(s.close)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) close() {
	s.once.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// expectEnds waits until n connections of s have seen their peer go away.
func (s *server) expectEnds(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for i := range n {
		select {
		case <-s.ends:
		case <-deadline:
			t.Fatalf("target saw %d of %d connections end", i, n)
		}
	}
}

// echo writes back everything it reads.
func echo(s *server, c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		s.received.Add(int64(n))
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			s.ends <- err
			return
		}
	}
}

// countBytes reads until EOF and then writes the count as a big-endian
// uint64.
func countBytes(s *server, c net.Conn) {
	n, err := io.Copy(io.Discard, c)
	s.received.Add(n)
	if err == nil {
		binary.Write(c, binary.BigEndian, uint64(n))
	}
	s.ends <- err
}

func newProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return p
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func write(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(waitLimit))
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// roundTrip sends msg to the echo server behind c and waits for it to come
// back, returning how long that took.
func roundTrip(t testing.TB, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	write(t, c, msg)
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo of %d bytes: %v", len(msg), err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes differs from what was sent", len(msg))
	}
	return time.Since(start)
}

// expectSilent checks that nothing arrives on c and that it stays open for
// the quiet period.
func expectSilent(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(quiet))
	n, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read on a silent connection = %d, %v, want a timeout", n, err)
	}
	c.SetReadDeadline(time.Time{})
}

// expectClosed waits for c to be closed from the far side: a read returns
// io.EOF or an error such as a reset, not data and not a timeout.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection still open after %v", waitLimit)
		}
		if err != nil {
			return
		}
		if n > 0 {
			t.Fatalf("read %d bytes from a connection that should be closed", n)
		}
	}
}

// eventually polls cond until it holds, failing the test after waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
