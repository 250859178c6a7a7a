package pipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
)

// serveConn runs one inbound connection: SSH handshake with public key auth,
// then the control stream and the stream handlers, until the connection or
// ctx ends.
func (n *Node) serveConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	remote := nc.RemoteAddr().String()
	nc.SetDeadline(n.opts.Now().Add(n.handshakeTimeout()))
	sconn, chans, reqs, err := ssh.NewServerConn(nc, n.sconf)
	if err != nil {
		n.log.Debug("inbound handshake failed", zap.String("remote", remote), zap.Error(err))
		return
	}
	nc.SetDeadline(time.Time{})
	n.serveSSH(ctx, sconn, chans, reqs)
}

// serveSSH runs one handshaken inbound SSH connection: the control stream
// and the stream handlers, until the connection or ctx ends.
func (n *Node) serveSSH(ctx context.Context, sconn *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	defer sconn.Close()
	remote := sconn.RemoteAddr().String()
	go ssh.DiscardRequests(reqs)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		sconn.Close()
	}()

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex // guards handshook
		handshook bool
		control   bool
	)
	defer wg.Wait()
	for nch := range chans {
		kind, ok := strings.CutPrefix(nch.ChannelType(), channelPrefix)
		if !ok {
			nch.Reject(ssh.UnknownChannelType, "tandem speaks only tandem-* channels")
			continue
		}
		if kind == controlKind {
			if control {
				nch.Reject(ssh.Prohibited, "control stream already open")
				continue
			}
			control = true
			early := nch.ExtraData()
			ch, creqs, err := nch.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(creqs)
			wg.Go(func() {
				defer cancel() // the connection lives as long as its control stream
				err := n.serveControl(ctx, sconn, newStream(ch, DefaultMaxFrame), early, func() {
					mu.Lock()
					handshook = true
					mu.Unlock()
				})
				ch.Close()
				switch {
				case err == nil || ctx.Err() != nil:
				case errors.Is(err, io.EOF):
					// The dialer hung up: a probe (`tandem check`) done,
					// or the peer redialing. Its own side reports why.
					n.log.Debug("inbound peer link closed", zap.String("remote", remote))
				default:
					n.limiter.warn(n.log, "inbound peer link ended", zap.String("remote", remote), zap.Error(err))
				}
			})
			continue
		}
		mu.Lock()
		ok = handshook
		mu.Unlock()
		if !ok {
			nch.Reject(ssh.Prohibited, "handshake on the control stream first")
			continue
		}
		h, found := n.handlers[kind]
		if !found {
			nch.Reject(ssh.UnknownChannelType, fmt.Sprintf("this node serves no %q streams (older version?)", kind))
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go ssh.DiscardRequests(creqs)
		if h.raw != nil {
			wg.Go(func() {
				defer ch.Close()
				h.raw(ctx, ch)
			})
			continue
		}
		wg.Go(func() {
			defer ch.Close()
			if err := h.fn(ctx, newStream(ch, h.maxFrame)); err != nil && ctx.Err() == nil {
				n.log.Warn("stream ended with error", zap.String("kind", kind), zap.String("remote", remote), zap.Error(err))
			}
		})
	}
}

// serveControl answers the dialer's Hello, then its pings. A dialer that
// stays silent past the timeout is dropped.
//
// early is the channel open's data: a dialer of this version puts its
// Hello there, so the Welcome goes out right behind the channel's
// confirmation, a round trip sooner. It sends the same Hello on
// the stream too, for servers that ignore the open's data; that copy is
// skipped here.
func (n *Node) serveControl(ctx context.Context, sconn *ssh.ServerConn, s *Stream, early []byte, handshook func()) error {
	ctx, cancel := context.WithCancel(ctx)
	msgs := make(chan Message)
	errc := make(chan error, 1)
	go func() {
		for {
			typ, body, err := s.Recv()
			if err != nil {
				errc <- err
				return
			}
			m, err := decodeControl(typ, body)
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	var wg sync.WaitGroup // the pong sender
	defer func() {
		cancel()
		sconn.Close() // unblocks the reader, and a blocked pong
		<-errc
		wg.Wait()
	}()

	out := newSender(ctx, s, &wg)
	silence := time.NewTimer(n.timeout)
	defer silence.Stop()
	var hello *Hello
	inbound := false // the connection is the peer's inbound link
	defer func() {
		if inbound {
			n.clearInbound(sconn)
		}
	}()
	// answer handshakes the dialer's Hello.
	answer := func(m *Hello) error {
		hello = m
		version, reason := n.checkHello(m)
		if reason != "" {
			s.Send(&Refuse{Reason: reason})
			return fmt.Errorf("refused peer %q: %s", m.Node, reason)
		}
		// Streams are allowed before the Welcome goes out: the
		// dialer may open one the moment it reads it.
		handshook()
		if m.Flags&HelloProbe == 0 {
			n.setInbound(sconn, m)
			inbound = true
		}
		return s.Send(&Welcome{Version: version, Node: n.opts.Node, Epoch: n.opts.Epoch(),
			TimeUnixNano: n.opts.Now().UnixNano()})
	}
	var earlyHello *Hello // until its copy on the stream is skipped
	if len(early) > 0 {
		m, err := decodeEarlyHello(early)
		if err != nil {
			return err
		}
		if err := answer(m); err != nil {
			return err
		}
		earlyHello = m
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			errc <- err // for the deferred drain
			return err
		case <-silence.C:
			return fmt.Errorf("peer silent for %s", n.timeout)
		case m := <-msgs:
			silence.Reset(n.timeout)
			switch m := m.(type) {
			case *Hello:
				if earlyHello != nil && *m == *earlyHello {
					earlyHello = nil // the early Hello's copy
					continue
				}
				if hello != nil {
					return fmt.Errorf("%w: second Hello", ErrMalformed)
				}
				if err := answer(m); err != nil {
					return err
				}
			case *Ping:
				if hello == nil {
					return fmt.Errorf("%w: Ping before Hello", ErrMalformed)
				}
				if err := out.send(&Pong{Seq: m.Seq, SentUnixNano: m.SentUnixNano,
					PeerUnixNano: n.opts.Now().UnixNano(), Epoch: n.opts.Epoch()}); err != nil {
					return err
				}
			default:
				return fmt.Errorf("%w: unexpected %T on the control stream", ErrMalformed, m)
			}
		}
	}
}

// decodeEarlyHello decodes a control channel's open data: exactly one
// Hello frame.
func decodeEarlyHello(b []byte) (*Hello, error) {
	r := NewFrameReader(bytes.NewReader(b), DefaultMaxFrame)
	typ, body, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: control stream's open data: %v", ErrMalformed, err)
	}
	if typ != typeHello {
		return nil, fmt.Errorf("%w: control stream's open data: message type %d, not a Hello", ErrMalformed, typ)
	}
	m, err := decodeControl(typ, body)
	if err != nil {
		return nil, fmt.Errorf("control stream's open data: %w", err)
	}
	if _, _, err := r.Read(); err != io.EOF {
		return nil, fmt.Errorf("%w: control stream's open data: more than a Hello", ErrMalformed)
	}
	return m.(*Hello), nil
}

// checkHello returns the version to speak, or why the dialer is refused.
func (n *Node) checkHello(m *Hello) (uint16, string) {
	if m.MaxVersion < MinProtocolVersion || m.MinVersion > ProtocolVersion || m.MinVersion > m.MaxVersion {
		return 0, fmt.Sprintf("%v: %s speaks protocol %d..%d, %s speaks %d..%d; upgrade the older node",
			ErrVersion, m.Node, m.MinVersion, m.MaxVersion, n.opts.Node, MinProtocolVersion, ProtocolVersion)
	}
	if m.Node != n.opts.Peer.Name {
		return 0, fmt.Sprintf("%v: %s's peer is %q, not %q; fix the [[peer]] name on one of them",
			ErrUnexpectedPeer, n.opts.Node, n.opts.Peer.Name, m.Node)
	}
	if m.Peer != n.opts.Node {
		return 0, fmt.Sprintf("%v: %s dialed %q but reached %q; fix [[peer]] on %s",
			ErrUnexpectedPeer, m.Node, m.Peer, n.opts.Node, m.Node)
	}
	return min(m.MaxVersion, ProtocolVersion), ""
}

// setInbound records the peer's handshaken inbound connection, closing an
// older one: a peer that redials after a partition replaces its stale link.
func (n *Node) setInbound(sconn *ssh.ServerConn, m *Hello) {
	n.mu.Lock()
	old := n.inbound
	n.inbound = sconn
	n.mu.Unlock()
	if old != nil && old != sconn {
		old.Close()
	}
	n.wakeDialer()
	n.update(func(s *PeerStatus) {
		s.Inbound = true
		s.PeerEpoch = m.Epoch
	})
	n.log.Info("peer connected to us", zap.String("peer", m.Node), zap.String("remote", sconn.RemoteAddr().String()))
}

func (n *Node) clearInbound(sconn *ssh.ServerConn) {
	n.mu.Lock()
	current := n.inbound == sconn
	if current {
		n.inbound = nil
	}
	n.mu.Unlock()
	if current {
		n.update(func(s *PeerStatus) { s.Inbound = false })
	}
}
