package quorum

// The test cluster: three voters in one process, each with a TCP listener on
// 127.0.0.1, every conn a real loopback socket wrapped by ChannelConn (as an
// SSH channel will be), and a network that can isolate a voter by failing
// its dials and closing its sockets both ways.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// testDeadAfter is small so that the suite is fast, and large enough that a
// busy machine does not make raft's leader lease expire spuriously.
const testDeadAfter = 1500 * time.Millisecond

var voterNames = []string{"alpha", "beta", "witness"}

// network connects the voters over loopback TCP.
type network struct {
	t         testing.TB
	listeners map[string]net.Listener // by voter; fixed for the test

	mu       sync.Mutex // guards the fields below
	layers   map[string]*StreamLayer
	isolated map[string]bool
	sockets  map[net.Conn][2]string // every TCP socket (both ends) -> its two voters

	wg sync.WaitGroup // accept loops and inbound handlers
}

func newNetwork(t testing.TB) *network {
	t.Helper()
	n := &network{
		t:         t,
		listeners: map[string]net.Listener{},
		layers:    map[string]*StreamLayer{},
		isolated:  map[string]bool{},
		sockets:   map[net.Conn][2]string{},
	}
	for _, name := range voterNames {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n.listeners[name] = l
		n.wg.Add(1)
		go n.acceptLoop(name, l)
	}
	t.Cleanup(n.close)
	return n
}

func (n *network) close() {
	for _, l := range n.listeners {
		l.Close()
	}
	n.mu.Lock()
	for c := range n.sockets {
		c.Close()
	}
	n.mu.Unlock()
	n.wg.Wait()
}

// layer makes the stream layer of voter name and routes its inbound conns.
func (n *network) layer(name string) *StreamLayer {
	s := NewStreamLayer(name, n.dialer(name))
	n.mu.Lock()
	n.layers[name] = s
	n.mu.Unlock()
	return s
}

// addSocket registers a socket between a and b, or closes it and fails
// when either is isolated.
func (n *network) addSocket(c net.Conn, a, b string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isolated[a] || n.isolated[b] {
		c.Close()
		return fmt.Errorf("link %s-%s is cut", a, b)
	}
	n.sockets[c] = [2]string{a, b}
	return nil
}

func (n *network) dropSocket(c net.Conn) {
	n.mu.Lock()
	delete(n.sockets, c)
	n.mu.Unlock()
}

// dialer opens a socket to the peer's listener and introduces itself with
// one length-prefixed name, as SSH authentication would.
func (n *network) dialer(from string) DialFunc {
	return func(ctx context.Context, to string) (net.Conn, error) {
		l, ok := n.listeners[to]
		if !ok {
			return nil, fmt.Errorf("no voter %q", to)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err != nil {
			return nil, err
		}
		if err := n.addSocket(c, from, to); err != nil {
			return nil, err
		}
		if _, err := c.Write(append([]byte{byte(len(from))}, from...)); err != nil {
			c.Close()
			return nil, err
		}
		return &socketConn{ChannelConn(c, from, to), func() { n.dropSocket(c) }}, nil
	}
}

func (n *network) acceptLoop(name string, l net.Listener) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer n.dropSocket(c)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var size [1]byte
			if _, err := io.ReadFull(c, size[:]); err != nil {
				c.Close()
				return
			}
			from := make([]byte, size[0])
			if _, err := io.ReadFull(c, from); err != nil {
				c.Close()
				return
			}
			c.SetReadDeadline(time.Time{})
			if err := n.addSocket(c, name, string(from)); err != nil {
				return
			}
			n.mu.Lock()
			layer := n.layers[name]
			n.mu.Unlock()
			if layer == nil {
				c.Close()
				return
			}
			// Errors here are conns refused by a closed layer, or cut.
			_ = layer.Deliver(ChannelConn(c, name, string(from)))
		}()
	}
}

// isolate cuts every link of voter name: its sockets are closed and new
// dials to or from it fail.
func (n *network) isolate(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[name] = true
	for c, ends := range n.sockets {
		if ends[0] == name || ends[1] == name {
			c.Close()
			delete(n.sockets, c)
		}
	}
}

func (n *network) heal(name string) {
	n.mu.Lock()
	n.isolated[name] = false
	n.mu.Unlock()
}

// socketConn forgets its socket when closed.
type socketConn struct {
	net.Conn
	forget func()
}

func (c *socketConn) Close() error {
	c.forget()
	return c.Conn.Close()
}

// cluster is three voters over a network.
type cluster struct {
	t         testing.TB
	net       *network
	dir       string
	priority  map[string]int
	deadAfter time.Duration
	log       *zap.Logger

	mu     sync.Mutex
	voters map[string]*Quorum
}

func newCluster(t testing.TB, priority map[string]int) *cluster {
	t.Helper()
	return newClusterWith(t, priority, testDeadAfter)
}

func newClusterWith(t testing.TB, priority map[string]int, deadAfter time.Duration) *cluster {
	t.Helper()
	c := &cluster{
		t:         t,
		net:       newNetwork(t),
		dir:       t.TempDir(),
		priority:  priority,
		deadAfter: deadAfter,
		log:       testLogger(t),
		voters:    map[string]*Quorum{},
	}
	t.Cleanup(func() {
		for _, name := range voterNames {
			c.stop(name)
		}
	})
	for _, name := range voterNames {
		c.start(name)
	}
	return c
}

func (c *cluster) options(name string) Options {
	return Options{
		Node:      name,
		Voters:    voterNames,
		Dir:       filepath.Join(c.dir, name),
		Transport: c.net.layer(name),
		Priority:  c.priority,
		DeadAfter: c.deadAfter,
		Log:       c.log.With(zap.String("voter", name)),
		Bootstrap: true,
	}
}

func (c *cluster) start(name string) *Quorum {
	c.t.Helper()
	q, err := New(c.options(name))
	if err != nil {
		c.t.Fatalf("New(%s): %v", name, err)
	}
	c.mu.Lock()
	c.voters[name] = q
	c.mu.Unlock()
	return q
}

func (c *cluster) stop(name string) {
	c.t.Helper()
	c.mu.Lock()
	q := c.voters[name]
	delete(c.voters, name)
	c.mu.Unlock()
	if q == nil {
		return
	}
	if err := q.Close(); err != nil {
		c.t.Errorf("Close(%s): %v", name, err)
	}
}

func (c *cluster) voter(name string) *Quorum {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.voters[name]
}

// agreed reports the leader and term when the named voters are running and
// see the same leader, a node among them, in the same term, and exactly that
// voter says IsSelf.
func (c *cluster) agreed(names ...string) (string, uint64, bool) {
	var leader string
	var term uint64
	selves := 0
	for i, name := range names {
		q := c.voter(name)
		if q == nil {
			return "", 0, false
		}
		ev := q.state()
		if i == 0 {
			leader, term = ev.Leader, ev.Term
		}
		if ev.Leader != leader || ev.Term != term {
			return "", 0, false
		}
		if ev.IsSelf {
			if name != leader {
				return "", 0, false
			}
			selves++
		}
	}
	return leader, term, leader != "" && leader != DefaultWitness && selves == 1
}

// waitAgreed waits until the named voters agree on a node as leader.
func (c *cluster) waitAgreed(within time.Duration, names ...string) (string, uint64) {
	c.t.Helper()
	var leader string
	var term uint64
	waitFor(c.t, within, fmt.Sprintf("%v to agree on a leader", names), func() bool {
		var ok bool
		leader, term, ok = c.agreed(names...)
		return ok
	})
	return leader, term
}

// waitFor polls cond until it holds or fails the test after within; it
// returns how long it waited.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// testLogger logs to the test until it ends, then discards: raft's conn
// goroutines may still report a closed conn after the test.
func testLogger(t testing.TB) *zap.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zapcore.InfoLevel))
}

type testWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
