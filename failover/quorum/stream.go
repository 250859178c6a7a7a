package quorum

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// DialFunc opens a new byte stream to the node named peer, for example a new
// SSH channel over the link to it wrapped by ChannelConn. It must honour
// ctx (cancelled on timeout and when the layer closes). The conn must
// support deadlines.
type DialFunc func(ctx context.Context, peer string) (net.Conn, error)

// Every conn starts with a header written by the dialer: the version and the
// purpose of the conn.
const (
	headerVersion  = 1
	purposeRaft    = 'R' // raft's NetworkTransport RPCs
	purposeControl = 'C' // one forwarded request (Transfer), one reply
)

// headerTimeout bounds the wait for an inbound conn's header.
const headerTimeout = 10 * time.Second

// ErrClosed is returned by a StreamLayer (and a Quorum) after Close.
var ErrClosed = errors.New("quorum: closed")

// StreamLayer is raft's transport stream layer over conns that the caller
// opens (Dial, through its DialFunc) and accepts (Deliver). It knows nothing
// of sockets or SSH: addresses are node names. It is safe for concurrent
// use. Every conn it hands to raft is tracked and closed by Close, since
// raft's NetworkTransport does not close its inbound conns itself.
type StreamLayer struct {
	self   string
	dial   DialFunc
	accept chan net.Conn
	ctx    context.Context // ended by Close; parent of every dial's ctx
	cancel context.CancelFunc
	done   <-chan struct{} // ctx.Done()

	mu      sync.Mutex // guards conns and control
	conns   map[*trackedConn]struct{}
	control func(conn net.Conn) error // serves control conns; set by New
}

// NewStreamLayer returns a stream layer for the node named self that dials
// peers with dial.
func NewStreamLayer(self string, dial DialFunc) *StreamLayer {
	ctx, cancel := context.WithCancel(context.Background())
	return &StreamLayer{
		self:   self,
		dial:   dial,
		accept: make(chan net.Conn),
		ctx:    ctx,
		cancel: cancel,
		done:   ctx.Done(),
		conns:  make(map[*trackedConn]struct{}),
	}
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// Accept waits for the next inbound raft conn handed over by Deliver.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accept:
		return c, nil
	case <-s.done:
		return nil, ErrClosed
	}
}

// Close stops Accept and Deliver and closes every conn the layer handed
// out. It is called by raft when the Quorum shuts down.
func (s *StreamLayer) Close() error {
	s.cancel()
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}

// Addr returns this node's name.
func (s *StreamLayer) Addr() net.Addr { return Addr(s.self) }

// Dial opens a raft conn to the node named address.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dialPurpose(string(address), purposeRaft, timeout)
}

func (s *StreamLayer) dialPurpose(peer string, purpose byte, timeout time.Duration) (net.Conn, error) {
	if isDone(s.done) {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(s.ctx)
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(s.ctx, timeout)
	}
	defer cancel()
	conn, err := s.dial(ctx, peer)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", peer, err)
	}
	if timeout > 0 {
		_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := conn.Write([]byte{headerVersion, purpose}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("dial %s: write header: %w", peer, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	tc, err := s.track(conn)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", peer, err)
	}
	return tc, nil
}

// Deliver hands an inbound conn (one the peer opened with its Dial) to this
// layer and returns when the conn is finished: closed by raft, by the peer,
// or by Close. It always closes conn before it returns. Call it from the
// goroutine that serves the inbound channel; the error says why the conn
// was refused (bad header, layer closed), or nil.
func (s *StreamLayer) Deliver(conn net.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(headerTimeout))
	var hdr [2]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		_ = conn.Close()
		return fmt.Errorf("deliver conn from %s: read header: %w", conn.RemoteAddr(), err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if hdr[0] != headerVersion {
		_ = conn.Close()
		return fmt.Errorf("deliver conn from %s: header version %d, want %d (upgrade the older tandem)",
			conn.RemoteAddr(), hdr[0], headerVersion)
	}
	tc, err := s.track(conn)
	if err != nil {
		return fmt.Errorf("deliver conn from %s: %w", conn.RemoteAddr(), err)
	}
	defer tc.Close()
	switch hdr[1] {
	case purposeRaft:
		select {
		case s.accept <- tc:
		case <-s.done:
			return ErrClosed
		}
		select {
		case <-tc.closed:
		case <-s.done:
		}
		return nil
	case purposeControl:
		s.mu.Lock()
		serve := s.control
		s.mu.Unlock()
		if serve == nil {
			return fmt.Errorf("deliver conn from %s: no quorum serves control requests", conn.RemoteAddr())
		}
		return serve(tc)
	default:
		return fmt.Errorf("deliver conn from %s: unknown purpose %q", conn.RemoteAddr(), hdr[1])
	}
}

func (s *StreamLayer) setControl(serve func(net.Conn) error) {
	s.mu.Lock()
	s.control = serve
	s.mu.Unlock()
}

// track registers conn so that Close closes it; it refuses (and closes)
// conn when the layer is closed.
func (s *StreamLayer) track(conn net.Conn) (*trackedConn, error) {
	tc := &trackedConn{Conn: conn, layer: s, closed: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if isDone(s.done) {
		_ = conn.Close()
		return nil, ErrClosed
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// trackedConn is a conn the layer handed out; Close forgets it.
type trackedConn struct {
	net.Conn
	layer  *StreamLayer
	once   sync.Once
	err    error
	closed chan struct{}
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		close(c.closed)
		c.layer.mu.Lock()
		delete(c.layer.conns, c)
		c.layer.mu.Unlock()
	})
	return c.err
}
