package quorum

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Addr is a node name used as a net.Addr: raft's server addresses are node
// names, not host:port pairs.
type Addr string

// Network returns "tandem".
func (Addr) Network() string { return "tandem" }

// String returns the node name.
func (a Addr) String() string { return string(a) }

// readChunk bounds one read from the channel by the pump.
const readChunk = 32 << 10

// ChannelConn makes a net.Conn of a byte stream that has no deadlines of its
// own, such as an SSH channel, with local and remote node names as its
// addresses. It takes ownership of ch: closing the conn closes ch.
//
// Deadlines work as net.Conn documents them, with os.ErrDeadlineExceeded
// (a net.Error whose Timeout is true) as the error:
//   - A read deadline leaves the stream intact: a pump goroutine reads ch,
//     and Read waits for its data, the deadline or Close. Data that arrives
//     after a timed-out Read is returned by the next Read.
//   - Writes go through a writer goroutine that holds a copy of the bytes.
//     When the deadline passes while ch.Write is blocked (the peer's window
//     is full), Write returns len(p) with the timeout: the bytes are
//     committed, like bytes in a socket's send buffer, and a later Write
//     waits for them first. A Write that starts after the deadline writes
//     nothing.
//
// ch.Close must unblock a pending ch.Read and ch.Write (true of io.Pipe and
// of an ssh.Channel once the channel or its connection is torn down); the
// conn's two goroutines end then. Close itself does not wait for them.
func ChannelConn(ch io.ReadWriteCloser, local, remote string) net.Conn {
	c := &channelConn{
		ch:       ch,
		local:    Addr(local),
		remote:   Addr(remote),
		rd:       newDeadline(),
		wd:       newDeadline(),
		chunks:   make(chan []byte),
		readDone: make(chan struct{}),
		writes:   make(chan []byte),
		written:  make(chan writeResult, 1),
		closed:   make(chan struct{}),
	}
	go c.pump()
	go c.writer()
	return c
}

type writeResult struct {
	n   int
	err error
}

type channelConn struct {
	ch            io.ReadWriteCloser
	local, remote Addr
	rd, wd        *deadline

	// The pump sends what it reads on chunks; when ch.Read fails it sets
	// readErr and closes readDone (after its last chunk was taken).
	chunks   chan []byte
	readErr  error
	readDone chan struct{}

	readMu sync.Mutex // serializes Read; guards rest
	rest   []byte     // unread part of the last chunk

	writeMu  sync.Mutex // serializes Write; guards inflight and writeErr
	inflight bool       // the writer holds bytes whose result is not collected
	writeErr error      // the channel failed a write: every later Write fails

	writes  chan []byte      // Write -> writer goroutine (a private copy)
	written chan writeResult // writer goroutine -> Write

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

func (c *channelConn) pump() {
	buf := make([]byte, readChunk)
	for {
		n, err := c.ch.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			select {
			case c.chunks <- chunk:
			case <-c.closed:
				return
			}
		}
		if err != nil {
			c.readErr = err
			close(c.readDone)
			return
		}
	}
}

func (c *channelConn) writer() {
	for {
		select {
		case b := <-c.writes:
			n, err := c.ch.Write(b)
			c.written <- writeResult{n, err}
		case <-c.closed:
			return
		}
	}
}

func (c *channelConn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	if isDone(c.closed) {
		return 0, net.ErrClosed
	}
	if isDone(c.rd.wait()) {
		return 0, os.ErrDeadlineExceeded
	}
	if len(p) == 0 {
		return 0, nil
	}
	select {
	case chunk := <-c.chunks:
		n := copy(p, chunk)
		c.rest = chunk[n:]
		return n, nil
	case <-c.readDone:
		return 0, c.readErr
	case <-c.rd.wait():
		return 0, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *channelConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if isDone(c.closed) {
		return 0, net.ErrClosed
	}
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	if c.inflight {
		// A timed-out Write left its bytes with the writer: they go
		// first.
		select {
		case r := <-c.written:
			c.inflight = false
			if r.err != nil {
				c.writeErr = r.err
				return 0, r.err
			}
		case <-c.wd.wait():
			return 0, os.ErrDeadlineExceeded
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	if isDone(c.wd.wait()) {
		return 0, os.ErrDeadlineExceeded
	}
	if len(p) == 0 {
		return 0, nil
	}
	// The writer gets a copy: after a timeout it is still inside ch.Write
	// while the caller reuses p.
	select {
	case c.writes <- append([]byte(nil), p...):
		c.inflight = true
	case <-c.wd.wait():
		return 0, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, net.ErrClosed
	}
	select {
	case r := <-c.written:
		c.inflight = false
		if r.err != nil {
			c.writeErr = r.err
		}
		return r.n, r.err
	case <-c.wd.wait():
		// The bytes are committed, like bytes in a socket's send
		// buffer: they count as written, and the next Write waits for
		// them.
		return len(p), os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

// Close closes the channel and unblocks pending Reads and Writes.
func (c *channelConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.closeErr = c.ch.Close()
	})
	return c.closeErr
}

func (c *channelConn) LocalAddr() net.Addr  { return c.local }
func (c *channelConn) RemoteAddr() net.Addr { return c.remote }

func (c *channelConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *channelConn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

func (c *channelConn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}

var _ net.Conn = (*channelConn)(nil)

// deadline is a settable point in time that closes a channel when it
// passes, after the pipeDeadline of package net.
type deadline struct {
	mu     sync.Mutex // guards timer and cancel
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline has passed
}

func newDeadline() *deadline { return &deadline{cancel: make(chan struct{})} }

// set arms the deadline at t; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until it has closed cancel
	}
	d.timer = nil

	passed := isDone(d.cancel)
	if t.IsZero() {
		if passed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if passed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !passed {
		close(d.cancel)
	}
}

// wait returns a channel that is closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
