package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// readSize is the largest chunk read from one side at a time. Small
	// enough that a short message is forwarded as soon as it arrives, large
	// enough that bulk data costs few system calls.
	readSize = 32 << 10

	// queueBytes bounds the data held per direction per connection while it
	// waits out the latency. It caps throughput at queueBytes per one-way
	// latency: 8 MiB / 100 ms is about 80 MiB/s.
	queueBytes = 8 << 20

	// chunkOverhead is charged to the queue for every chunk besides its data,
	// so that a stream of one-byte writes cannot queue millions of chunks.
	chunkOverhead = 64

	// dialTimeout bounds the dial to the target for one accepted connection.
	dialTimeout = 10 * time.Second
)

// Stats counts what a Proxy has done since New.
type Stats struct {
	// Accepted is the number of connections accepted, including those
	// refused, blackholed or whose dial to the target failed.
	Accepted int64
	// Active is the number of accepted connections not yet closed.
	Active int
	// ToTarget and FromTarget are the bytes delivered to the target and to
	// the clients. Bytes still queued, held by a blackhole or thrown away by
	// a reset are not counted.
	ToTarget   int64
	FromTarget int64
}

// Proxy is a TCP proxy on loopback that forwards to one target and injects
// faults. Its methods are safe for concurrent use. Setters take effect at
// once; see each for what it does to connections already open.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // ends at Close; cancels dials to the target
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and one handler per connection

	latency    atomic.Int64 // one-way latency, a time.Duration
	bandwidth  atomic.Int64 // bytes per second per direction per connection, 0 unlimited
	accepted   atomic.Int64
	toTarget   atomic.Int64
	fromTarget atomic.Int64

	mu sync.Mutex
	// Guarded by mu.
	blackhole bool
	refuse    bool
	closed    bool
	conns     map[*conn]struct{}
}

// New listens on 127.0.0.1 on a free port and forwards every connection it
// accepts to target (host:port), which is dialed once per accepted
// connection. The Proxy starts with no faults. Close releases it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[*conn]struct{}),
	}
	p.wg.Go(p.acceptLoop)
	return p, nil
}

// Addr returns the host:port to dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency sets the one-way delay added in each direction. Data read after
// the call is delivered no earlier than oneWay after it was read; data
// already queued keeps the delay it was stamped with, and order is always
// preserved (so lowering the latency lets new data through only behind the
// old). Zero or negative means no delay.
func (p *Proxy) SetLatency(oneWay time.Duration) { p.latency.Store(int64(max(oneWay, 0))) }

// SetBandwidth caps each direction of each connection at bytesPerSec, paced
// in slices of about 10 ms. Zero or negative means unlimited. It applies to
// data read after the call.
func (p *Proxy) SetBandwidth(bytesPerSec int64) { p.bandwidth.Store(max(bytesPerSec, 0)) }

// Blackhole partitions the link while on is true, like a network where every
// packet vanishes:
//
//   - Connections already open stay open and fall silent in both directions.
//     The proxy stops reading from either side, so a peer's writes block once
//     the kernel buffers fill, as they do when ACKs stop; data already queued
//     or read is held, never delivered. A peer's close is not passed on.
//   - New connections are accepted (the dial succeeds) but not connected to
//     the target; they stay open and silent too.
//
// Blackhole(false) ends the partition: every connection that was open at any
// time during it is closed with a reset on both sides (a TCP stream that lost
// data cannot resume), and connections made afterwards are forwarded
// normally. While a blackhole is on, it takes precedence over Refuse.
func (p *Proxy) Blackhole(on bool) {
	var ended []*conn
	p.mu.Lock()
	p.blackhole = on
	for c := range p.conns {
		if on {
			c.blackholed.Store(true)
		} else if c.blackholed.Load() {
			ended = append(ended, c)
		}
	}
	p.mu.Unlock()
	for _, c := range ended {
		c.kill()
	}
}

// Reset closes every open connection at once with a TCP reset on both sides,
// throwing away whatever is queued: each peer's next read fails (with
// ECONNRESET, or io.EOF if it has already seen the close). Connections made
// after the call work normally.
func (p *Proxy) Reset() {
	p.mu.Lock()
	all := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.kill()
	}
}

// Refuse makes the target look down while on is true: each new connection is
// accepted and immediately closed with a reset, before anything is read or
// the target is dialed. The reset may reach a dialer before its connect
// returns, failing the dial, or after, failing its first read or write.
// Connections already open are not affected.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Stats returns the counters as of the call.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{
		Accepted:   p.accepted.Load(),
		Active:     active,
		ToTarget:   p.toTarget.Load(),
		FromTarget: p.fromTarget.Load(),
	}
}

// Close stops listening, resets every open connection as Reset does and
// waits until every goroutine of the Proxy has returned. It returns the
// error from closing the listener; later calls return nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	p.Reset() // no connection can be added once closed is set
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("faultproxy close: %w", err)
	}
	return nil
}

func (p *Proxy) acceptLoop() {
	backoff := time.NewTimer(0)
	defer backoff.Stop()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: wait a little rather
			// than spin, unless we are closing.
			backoff.Reset(10 * time.Millisecond)
			select {
			case <-backoff.C:
				continue
			case <-p.ctx.Done():
				return
			}
		}
		p.accepted.Add(1)

		p.mu.Lock()
		if p.closed || (p.refuse && !p.blackhole) {
			p.mu.Unlock()
			abort(nc)
			continue
		}
		c := &conn{p: p, client: nc, done: make(chan struct{})}
		c.blackholed.Store(p.blackhole)
		p.conns[c] = struct{}{}
		// Added under mu while not closed, so Close's Wait cannot have
		// started yet.
		p.wg.Go(c.run)
		p.mu.Unlock()
	}
}

// conn is one accepted connection and, once dialed, its connection to the
// target.
type conn struct {
	p      *Proxy
	client net.Conn

	// blackholed is set under p.mu when a blackhole covers this connection
	// and never cleared: the connection is killed when the blackhole ends.
	blackholed atomic.Bool

	done     chan struct{} // closed by kill
	killOnce sync.Once

	// upstream is guarded by p.mu. It is set once, after the dial, unless
	// the connection was killed during the dial.
	upstream net.Conn
}

// run dials the target, forwards both directions until they end or the
// connection is killed, and then forgets the connection.
func (c *conn) run() {
	defer func() {
		c.p.mu.Lock()
		delete(c.p.conns, c)
		up := c.upstream
		c.p.mu.Unlock()
		c.client.Close()
		if up != nil {
			up.Close()
		}
	}()

	if c.blackholed.Load() {
		// Accepted during a partition: never connected through.
		<-c.done
		return
	}

	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(c.p.ctx, "tcp", c.p.target)
	if err != nil {
		c.kill()
		return
	}
	c.p.mu.Lock()
	select {
	case <-c.done:
		c.p.mu.Unlock()
		abort(up)
		return
	default:
	}
	c.upstream = up
	c.p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { c.pipe(c.client, up, &c.p.toTarget) })
	wg.Go(func() { c.pipe(up, c.client, &c.p.fromTarget) })
	wg.Wait()
}

// kill closes both sides with a reset and wakes every goroutine of c. It is
// safe to call more than once and from any goroutine.
func (c *conn) kill() {
	c.killOnce.Do(func() {
		close(c.done)
		c.p.mu.Lock()
		up := c.upstream
		c.p.mu.Unlock()
		abort(c.client)
		if up != nil {
			abort(up)
		}
	})
}

// pipe carries one direction, from src to dst, until src ends and the end has
// been passed on, or c is killed.
func (c *conn) pipe(src, dst net.Conn, delivered *atomic.Int64) {
	q := newQueue(queueBytes)
	var wg sync.WaitGroup
	wg.Go(func() { c.read(src, q) })
	c.write(dst, q, delivered)
	wg.Wait()
}

// read reads src, paces it to the bandwidth cap, stamps each chunk with the
// time it may be delivered and queues it. An end of src (io.EOF or an error)
// is queued last, stamped the same way.
func (c *conn) read(src net.Conn, q *queue) {
	buf := make([]byte, readSize)
	timer := newStoppedTimer()
	defer timer.Stop()
	var linkFree time.Time // when the capped link can take the next bytes
	for {
		size := len(buf)
		bw := c.p.bandwidth.Load()
		if bw > 0 {
			size = int(min(max(bw/100, 1), int64(len(buf))))
		}
		n, err := src.Read(buf[:size])
		if c.blackholed.Load() {
			// Partitioned: what was just read vanishes and nothing more
			// is read until the connection is killed.
			<-c.done
			return
		}
		now := time.Now()
		if n > 0 && bw > 0 {
			if linkFree.After(now) {
				if !c.sleepUntil(timer, linkFree) {
					return
				}
				now = linkFree
			}
			linkFree = now.Add(time.Duration(n) * time.Second / time.Duration(bw))
		}
		due := now.Add(time.Duration(c.p.latency.Load()))
		if n > 0 && !q.push(chunk{data: bytes.Clone(buf[:n]), due: due}, c.done) {
			return
		}
		if err != nil {
			q.push(chunk{end: true, err: err, due: due}, c.done)
			return
		}
	}
}

// write delivers queued chunks to dst in order, each no earlier than its
// stamp. It passes an io.EOF on as a half-close and any other end of the
// source, or a failed write, as a reset of the whole connection.
func (c *conn) write(dst net.Conn, q *queue, delivered *atomic.Int64) {
	timer := newStoppedTimer()
	defer timer.Stop()
	for {
		ch, ok := q.pop(c.done)
		if !ok {
			return
		}
		if !c.sleepUntil(timer, ch.due) {
			return
		}
		if c.blackholed.Load() {
			<-c.done
			return
		}
		if ch.end {
			if ch.err == io.EOF {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
					return
				}
			}
			c.kill()
			return
		}
		n, err := dst.Write(ch.data)
		delivered.Add(int64(n))
		if err != nil {
			c.kill()
			return
		}
	}
}

// sleepUntil waits until t using timer, and reports false if c was killed
// first.
func (c *conn) sleepUntil(timer *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-c.done:
			return false
		default:
			return true
		}
	}
	timer.Reset(d)
	select {
	case <-timer.C:
		return true
	case <-c.done:
		timer.Stop()
		return false
	}
}

func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// abort closes nc so that its peer sees a reset rather than an orderly end.
func abort(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	nc.Close()
}
