package pipe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
)

// Mux serves several Nodes on one listener: a node with a peer and a
// witness, or a witness with its two nodes, needs one SSH port, not one per
// link. Each inbound connection goes to the Node whose peer it comes from,
// by the SSH user name the dialer sends (its node name); the key it
// authenticates with must be in that Node's authorized_keys.
//
// Nodes served by a Mux are created with Options.Muxed, share the same
// node key, and run their own dialing with Run.
type Mux struct {
	ln    net.Listener
	nodes map[string]*Node // by peer name
	sconf *ssh.ServerConfig
	log   *zap.Logger
}

// NewMux returns a Mux serving nodes on ln.
func NewMux(ln net.Listener, log *zap.Logger, nodes ...*Node) (*Mux, error) {
	if len(nodes) == 0 {
		return nil, errors.New("pipe: a mux needs at least one node")
	}
	if log == nil {
		log = zap.NewNop()
	}
	m := &Mux{ln: ln, nodes: make(map[string]*Node), log: log.Named("pipe")}
	key := string(nodes[0].opts.Signer.PublicKey().Marshal())
	for _, n := range nodes {
		if !n.opts.Muxed {
			return nil, fmt.Errorf("pipe: node for peer %s is not Muxed", n.opts.Peer.Name)
		}
		if string(n.opts.Signer.PublicKey().Marshal()) != key {
			return nil, errors.New("pipe: nodes on one mux must share the node key")
		}
		if m.nodes[n.opts.Peer.Name] != nil {
			return nil, fmt.Errorf("pipe: two nodes on one mux for peer %s", n.opts.Peer.Name)
		}
		m.nodes[n.opts.Peer.Name] = n
	}
	m.sconf = &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-tandem",
		MaxAuthTries:  3,
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			n := m.nodes[meta.User()]
			if n == nil {
				err := fmt.Errorf("%w: %q is not a peer of this node", ErrUnexpectedPeer, meta.User())
				nodes[0].limiter.warn(m.log, "refused client", zap.String("remote", meta.RemoteAddr().String()), zap.Error(err))
				return nil, err
			}
			if err := authorize(n.opts.Config.AuthorizedKeys, key); err != nil {
				n.limiter.warn(n.log, "refused client key", zap.String("remote", meta.RemoteAddr().String()),
					zap.String("user", meta.User()), zap.Error(err))
				return nil, err
			}
			// A shared listener does not know which peer is dialing
			// until it names itself with an authorized key; wake that
			// node's dialer then (see Node.wake).
			n.wakeDialer()
			return &ssh.Permissions{}, nil
		},
	}
	m.sconf.AddHostKey(nodes[0].opts.Signer)
	return m, nil
}

// Addr is the address the mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Run accepts connections until ctx ends, then closes them all and returns
// after its goroutines have.
func (m *Mux) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		m.ln.Close()
	})
	var err error
	for {
		var nc net.Conn
		nc, err = m.ln.Accept()
		if err != nil {
			break
		}
		wg.Go(func() { m.serve(ctx, nc) })
	}
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("accept: %w", err)
}

func (m *Mux) serve(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	// Every node has the same handshake timeout rules; the longest wins.
	var timeout time.Duration
	for _, n := range m.nodes {
		timeout = max(timeout, n.handshakeTimeout())
	}
	nc.SetDeadline(time.Now().Add(timeout))
	sconn, chans, reqs, err := ssh.NewServerConn(nc, m.sconf)
	if err != nil {
		m.log.Debug("inbound handshake failed", zap.String("remote", nc.RemoteAddr().String()), zap.Error(err))
		return
	}
	nc.SetDeadline(time.Time{})
	m.nodes[sconn.User()].serveSSH(ctx, sconn, chans, reqs)
}
