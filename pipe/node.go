package pipe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
)

// Options configure a Node.
type Options struct {
	// Node is this node's name.
	Node string
	// Config is the [ssh] section.
	Config Config
	// Peer is the other node.
	Peer Peer
	// Signer is the node key: SSH host key and client identity at once.
	Signer ssh.Signer
	// Log receives the node's logs; nil means no logs.
	Log *zap.Logger
	// Epoch returns the node's current role epoch for handshakes and pongs;
	// nil means 0.
	Epoch func() uint64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxBackoff caps the wait between redials (default 1s: a dial is a
	// TCP connect, cheap to repeat, and a peer back from a restart then
	// gets its backlog half a second sooner on average).
	MaxBackoff time.Duration
	// Listener, when set, is used instead of listening on Config.Listen.
	Listener net.Listener
	// Muxed says a Mux serves this node's inbound connections on a
	// listener it shares with other nodes: Run only dials.
	Muxed bool
}

// PeerStatus is what a node knows about its link to the peer.
type PeerStatus struct {
	Name    string
	Address string
	// Connected: our outbound connection is up and handshaken.
	Connected bool
	// Since is when Connected last changed (zero before the first attempt
	// ends).
	Since time.Time
	// RTT is the last heartbeat round trip.
	RTT time.Duration
	// LastHeartbeat is when the last pong arrived.
	LastHeartbeat time.Time
	// LastError is why the link last failed, "" while it never has.
	LastError string
	// Inbound: the peer's own connection to us is up and handshaken.
	Inbound bool
	// PeerEpoch and PeerVersion are what the peer announced.
	PeerEpoch   uint64
	PeerVersion uint16
	// ClockOffset estimates the peer's clock minus ours.
	ClockOffset time.Duration
	// Connects counts successful outbound handshakes.
	Connects int
}

// Node is one end of the pair: it serves the peer's connection and keeps its
// own connection to the peer up.
type Node struct {
	opts      Options
	log       *zap.Logger
	heartbeat time.Duration
	timeout   time.Duration
	sconf     *ssh.ServerConfig
	limiter   *logLimiter

	// Set before Run, read-only after.
	handlers  map[string]handler
	onSession []func(ctx context.Context, s *Session)

	ln net.Listener

	mu      sync.Mutex // guards status, changed, inbound
	status  PeerStatus
	changed chan struct{}
	inbound *ssh.ServerConn

	// wake cuts a redial wait short: the peer just dialed us, so it is
	// up again and our own link to it can come back now, not after the
	// backoff (up to MaxBackoff, during which nothing flows our way). An
	// inbound connection wakes it the moment it is accepted, before its
	// handshake: our dial then runs beside the peer's instead of after
	// it, and the link the peer's changes need is up about one round trip
	// after the peer's own instead of a whole handshake (~8 round trips).
	wake chan struct{}
	// backoff is the redial wait (the backoff function; tests replace it).
	backoff func(attempt int, max time.Duration) time.Duration
}

// New checks opts and returns a Node ready to Listen and Run.
func New(opts Options) (*Node, error) {
	if opts.Node == "" || opts.Peer.Name == "" || opts.Peer.Address == "" {
		return nil, errors.New("pipe: node name, peer name and peer address are required")
	}
	if opts.Signer == nil {
		return nil, errors.New("pipe: node key is required")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Epoch == nil {
		opts.Epoch = func() uint64 { return 0 }
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Second
	}
	n := &Node{
		opts:      opts,
		log:       opts.Log.Named("pipe"),
		heartbeat: opts.Config.Heartbeat.Or(DefaultHeartbeat),
		timeout:   opts.Config.Timeout.Or(DefaultTimeout),
		handlers:  make(map[string]handler),
		changed:   make(chan struct{}),
		limiter:   newLogLimiter(opts.Now, time.Minute),
		ln:        opts.Listener,
		wake:      make(chan struct{}, 1),
		backoff:   backoff,
	}
	n.status = PeerStatus{Name: opts.Peer.Name, Address: opts.Peer.Address}
	n.sconf = &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-tandem",
		MaxAuthTries:  3,
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if err := authorize(opts.Config.AuthorizedKeys, key); err != nil {
				n.limiter.warn(n.log, "refused client key", zap.String("remote", meta.RemoteAddr().String()),
					zap.String("user", meta.User()), zap.Error(err))
				return nil, err
			}
			return &ssh.Permissions{}, nil
		},
	}
	n.sconf.AddHostKey(opts.Signer)
	return n, nil
}

// Handle registers the handler for streams of kind the peer opens, with
// frames of at most maxFrame bytes (0 means DefaultMaxFrame). Call it before
// Run.
func (n *Node) Handle(kind string, maxFrame int, h Handler) {
	n.handlers[kind] = handler{fn: h, maxFrame: maxFrame}
}

// HandleRaw registers the handler for unframed streams of kind the peer
// opens with Session.OpenRaw. Call it before Run.
func (n *Node) HandleRaw(kind string, h RawHandler) {
	n.handlers[kind] = handler{raw: h}
}

// OnSession registers f to run, in its own goroutine, for every outbound
// session once it is handshaken. ctx ends when the session does; the node
// waits for f to return before it redials. Call it before Run.
func (n *Node) OnSession(f func(ctx context.Context, s *Session)) {
	n.onSession = append(n.onSession, f)
}

// Listen binds the SSH server's address. Run calls it if it was not called.
func (n *Node) Listen() error {
	if n.ln != nil || n.opts.Muxed {
		return nil
	}
	ln, err := net.Listen("tcp", n.opts.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w; fix [ssh].listen or stop what uses the port", n.opts.Config.Listen, err)
	}
	n.ln = ln
	return nil
}

// Addr returns the address the server listens on, nil before Listen.
func (n *Node) Addr() net.Addr {
	if n.ln == nil {
		return nil
	}
	return n.ln.Addr()
}

// Status returns a copy of the peer link's status.
func (n *Node) Status() PeerStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// Changed returns a channel that is closed at the next status change.
func (n *Node) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

func (n *Node) update(f func(s *PeerStatus)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(&n.status)
	close(n.changed)
	n.changed = make(chan struct{})
}

// Run serves and dials until ctx ends, then closes every connection and
// returns after all its goroutines have.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Listen(); err != nil {
		return err
	}
	if n.opts.Muxed {
		n.log.Info("dialing", zap.String("node", n.opts.Node), zap.String("peer", n.opts.Peer.Name),
			zap.String("peer_address", n.opts.Peer.Address))
		n.dialLoop(ctx)
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { n.dialLoop(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		n.ln.Close()
	})
	n.log.Info("listening", zap.String("addr", n.ln.Addr().String()), zap.String("node", n.opts.Node),
		zap.String("peer", n.opts.Peer.Name), zap.String("peer_address", n.opts.Peer.Address))
	var err error
	for {
		var nc net.Conn
		nc, err = n.ln.Accept()
		if err != nil {
			break
		}
		n.wakeDialer()
		wg.Go(func() { n.serveConn(ctx, nc) })
	}
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("accept: %w", err)
}

// logLimiter logs a repeated message at most once per interval.
type logLimiter struct {
	now      func() time.Time
	interval time.Duration
	mu       sync.Mutex // guards last
	last     map[string]time.Time
}

func newLogLimiter(now func() time.Time, interval time.Duration) *logLimiter {
	return &logLimiter{now: now, interval: interval, last: make(map[string]time.Time)}
}

func (l *logLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	if last, ok := l.last[key]; ok && t.Sub(last) < l.interval {
		return false
	}
	if len(l.last) > 1000 {
		clear(l.last)
	}
	l.last[key] = t
	return true
}

func (l *logLimiter) warn(log *zap.Logger, msg string, fields ...zap.Field) {
	key := msg
	for _, f := range fields {
		if f.Key == "error" || f.Key == "user" {
			key += "|" + fmt.Sprint(f.Interface, f.String)
		}
	}
	if l.allow(key) {
		log.Warn(msg, fields...)
	}
}

// wakeDialer cuts the dialer's redial wait short (see Node.wake).
func (n *Node) wakeDialer() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// minRedial is the least time between the starts of two dials, however
// often the dialer is woken: anyone can connect to the listener, and each
// connection wakes the dialer before it has authenticated.
const minRedial = 100 * time.Millisecond

// handshakeTimeout bounds dialing plus the SSH and tandem handshakes. It is
// longer than the silence timeout: a handshake costs several round trips and
// some CPU, and a loaded machine must not fail it forever.
func (n *Node) handshakeTimeout() time.Duration { return max(2*n.timeout, 10*time.Second) }

// backoff returns the wait before redial attempt a (0-based): exponential
// from 100ms, capped, with jitter in [d/2, d).
func backoff(a int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < a && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2)
}
