package pipe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
)

// healthyAfter is how long a session must last for the redial backoff to
// start again from its shortest wait.
const healthyAfter = 10 * time.Second

// dialLoop keeps an outbound session to the peer up until ctx ends,
// redialing with capped exponential backoff and jitter.
func (n *Node) dialLoop(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		start := n.opts.Now()
		err := n.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if n.opts.Now().Sub(start) > healthyAfter {
			attempt = 0
		}
		wait := n.backoff(attempt, n.opts.MaxBackoff)
		attempt++
		n.update(func(s *PeerStatus) {
			if s.Connected || s.Since.IsZero() {
				s.Since = n.opts.Now()
			}
			s.Connected = false
			s.LastError = err.Error()
		})
		n.limiter.warn(n.log, "peer link down", zap.String("peer", n.opts.Peer.Name),
			zap.String("address", n.opts.Peer.Address), zap.Error(err))
		n.log.Debug("redialing", zap.Duration("in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-n.wake:
			t.Stop()
			n.log.Debug("the peer dialed us: redialing now")
			// Dials stay minRedial apart, whoever connects to us.
			if gap := minRedial - n.opts.Now().Sub(start); gap > 0 {
				t := time.NewTimer(gap)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
	}
}

// session dials the peer, handshakes and runs heartbeats and the OnSession
// functions until the link fails or ctx ends. It always returns an error
// saying why the session ended.
func (n *Node) session(ctx context.Context) error {
	client, ctrl, w, err := n.dial(ctx, 0)
	if err != nil {
		return err
	}
	defer client.Close()
	addr := n.opts.Peer.Address

	connectedAt := n.opts.Now()
	n.update(func(s *PeerStatus) {
		s.Connected = true
		s.Since = connectedAt
		s.LastError = ""
		s.PeerEpoch = w.Epoch
		s.PeerVersion = w.Version
		s.Connects++
	})
	n.log.Info("connected to peer", zap.String("peer", w.Node), zap.String("address", addr), zap.Uint16("version", w.Version))
	select {
	case <-n.wake: // the peer's dial that came before this link: spent
	default:
	}

	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		client.Close()
		wg.Wait()
	}()
	sess := &Session{Peer: w.Node, Version: w.Version, PeerEpoch: w.Epoch, client: client}
	for _, f := range n.onSession {
		wg.Go(func() { f(sctx, sess) })
	}
	return n.heartbeats(sctx, ctrl, &wg)
}

// heartbeats pings every heartbeat interval and measures the round trip;
// a peer silent past the timeout ends the session.
func (n *Node) heartbeats(ctx context.Context, ctrl *Stream, wg *sync.WaitGroup) error {
	pongs := make(chan *Pong)
	errc := make(chan error, 1)
	wg.Go(func() {
		for {
			typ, body, err := ctrl.Recv()
			if err == nil {
				var m Message
				m, err = decodeControl(typ, body)
				if p, ok := m.(*Pong); ok {
					select {
					case pongs <- p:
						continue
					case <-ctx.Done():
						return
					}
				}
				if err == nil {
					err = fmt.Errorf("%w: unexpected %T on the control stream", ErrMalformed, m)
				}
			}
			errc <- err
			return
		}
	})

	// Pings go out from their own goroutine: on a dead path the SSH
	// connection's writes block once the TCP window is full (behind bulk
	// data of other streams), and the silence check below must still run.
	out := newSender(ctx, ctrl, wg)
	sent := make(map[uint64]time.Time) // outstanding pings by seq
	var seq uint64
	ping := func() error {
		seq++
		now := n.opts.Now()
		sent[seq] = now
		for s, t := range sent {
			if now.Sub(t) > n.timeout {
				delete(sent, s)
			}
		}
		return out.send(&Ping{Seq: seq, SentUnixNano: now.UnixNano()})
	}
	if err := ping(); err != nil {
		return err
	}
	tick := time.NewTicker(n.heartbeat)
	defer tick.Stop()
	lastHeard := n.opts.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return fmt.Errorf("control stream: %w", err)
		case p := <-pongs:
			now := n.opts.Now()
			lastHeard = now
			t0, ok := sent[p.Seq]
			if !ok {
				continue // answered after we gave up on it
			}
			delete(sent, p.Seq)
			rtt := now.Sub(t0)
			offset := time.Duration(p.PeerUnixNano - (t0.UnixNano() + int64(rtt/2)))
			n.update(func(s *PeerStatus) {
				s.RTT = rtt
				s.LastHeartbeat = now
				s.ClockOffset = offset
				s.PeerEpoch = p.Epoch
			})
		case <-tick.C:
			if silent := n.opts.Now().Sub(lastHeard); silent > n.timeout {
				return fmt.Errorf("peer silent for %s (timeout %s)", silent.Round(time.Millisecond), n.timeout)
			}
			if err := ping(); err != nil {
				return fmt.Errorf("send ping: %w", err)
			}
		}
	}
}

// sender writes control messages from its own goroutine, so that the loop
// that watches for silence never blocks on a write. Messages are
// heartbeats: when one is still waiting to go out, a newer one is dropped.
type sender struct {
	queue chan Message
	errc  chan error
}

func newSender(ctx context.Context, s *Stream, wg *sync.WaitGroup) *sender {
	o := &sender{queue: make(chan Message, 1), errc: make(chan error, 1)}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-o.queue:
				if err := s.Send(m); err != nil {
					o.errc <- err
					return
				}
			}
		}
	})
	return o
}

// send queues m unless a message is still waiting; it returns the error
// that stopped an earlier write, if any.
func (o *sender) send(m Message) error {
	select {
	case err := <-o.errc:
		o.errc <- err
		return err
	default:
	}
	select {
	case o.queue <- m:
	default:
	}
	return nil
}

// authHint adds advice to an SSH handshake error that means our key was
// not accepted.
func authHint(err error) string {
	if strings.Contains(err.Error(), "unable to authenticate") {
		return "; the peer does not accept this node's key: add the line `tandem init` prints here to the peer's authorized_keys"
	}
	return ""
}

// dial connects to the peer and handshakes on a new control stream. The
// caller closes the client.
func (n *Node) dial(ctx context.Context, flags uint64) (*ssh.Client, *Stream, *Welcome, error) {
	addr := n.opts.Peer.Address
	d := net.Dialer{Timeout: n.handshakeTimeout(), KeepAlive: n.heartbeat}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	// The whole handshake must finish within the timeout.
	nc.SetDeadline(n.opts.Now().Add(n.handshakeTimeout()))
	cc, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User:              n.opts.Node,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(n.opts.Signer)},
		HostKeyCallback:   hostKeyCallback(n.opts.Config.KnownHosts),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		ClientVersion:     "SSH-2.0-tandem",
		Timeout:           n.handshakeTimeout(),
	})
	if err != nil {
		nc.Close()
		if errors.Is(err, ErrUnknownHost) || errors.Is(err, ErrHostKeyMismatch) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, fmt.Errorf("ssh handshake with %s: %w%s", addr, err, authHint(err))
	}
	client := ssh.NewClient(cc, chans, reqs)
	ctrl, w, err := n.hello(client, flags)
	if err != nil {
		client.Close()
		return nil, nil, nil, err
	}
	nc.SetDeadline(time.Time{})
	return client, ctrl, w, nil
}

func (n *Node) hello(client *ssh.Client, flags uint64) (*Stream, *Welcome, error) {
	addr := n.opts.Peer.Address
	hello := &Hello{MinVersion: MinProtocolVersion, MaxVersion: ProtocolVersion, Node: n.opts.Node,
		Peer: n.opts.Peer.Name, Epoch: n.opts.Epoch(), TimeUnixNano: n.opts.Now().UnixNano(), Flags: flags}
	// The Hello rides in the channel open too (see serveControl): a
	// server that reads it there answers with the confirmation, one
	// round trip sooner. It goes on the stream as well, for one that
	// does not.
	var e Encoder
	hello.Encode(&e)
	ch, creqs, err := client.OpenChannel(channelPrefix+controlKind, AppendFrame(nil, typeHello, e.Buf()))
	if err != nil {
		return nil, nil, fmt.Errorf("open control stream: %w", err)
	}
	go ssh.DiscardRequests(creqs)
	ctrl := newStream(ch, DefaultMaxFrame)
	// A server that refused the early Hello may have closed the stream
	// already: its answer says why, better than this write's error.
	sendErr := ctrl.Send(hello)
	typ, body, err := ctrl.Recv()
	if err != nil {
		if sendErr != nil {
			return nil, nil, fmt.Errorf("send hello: %w", sendErr)
		}
		return nil, nil, fmt.Errorf("read handshake answer: %w", err)
	}
	m, err := decodeControl(typ, body)
	if err != nil {
		return nil, nil, err
	}
	switch m := m.(type) {
	case *Refuse:
		return nil, nil, m
	case *Welcome:
		if m.Node != n.opts.Peer.Name {
			return nil, nil, fmt.Errorf("%w: %s answers as %q, configured [[peer]] name is %q; fix one of them",
				ErrUnexpectedPeer, addr, m.Node, n.opts.Peer.Name)
		}
		if m.Version < MinProtocolVersion || m.Version > ProtocolVersion {
			return nil, nil, fmt.Errorf("%w: peer chose version %d, we speak %d..%d", ErrVersion, m.Version, MinProtocolVersion, ProtocolVersion)
		}
		return ctrl, m, nil
	default:
		return nil, nil, fmt.Errorf("%w: %T instead of Welcome", ErrMalformed, m)
	}
}
