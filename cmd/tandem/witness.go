package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/failover/quorum"
	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/pipe"
)

// The witness: a third host, with no data, whose only job is to be the
// third raft voter, so that the two nodes never both believe they are
// primary. Its config names it "witness" and has both nodes as [[peer]]s.
// Each node reaches the witness over an SSH link of its own (its [failover]
// witness address), served on the same SSH port as the peer link: a
// pipe.Mux routes each inbound connection by the dialer's name.

// witnessName is the witness's node name, on every host.
const witnessName = quorum.DefaultWitness

// raftKind is the pipe stream kind raft's connections ride on.
const raftKind = "raft"

// raftLinks carries raft's connections over the pipe links of one host:
// to dial a voter it opens a raw stream on the current session to it, and
// raw streams a voter opens are delivered to the raft transport.
type raftLinks struct {
	self  string
	layer *quorum.StreamLayer

	mu       sync.Mutex
	sessions map[string]*pipe.Session
}

func newRaftLinks(self string) *raftLinks {
	l := &raftLinks{self: self, sessions: make(map[string]*pipe.Session)}
	l.layer = quorum.NewStreamLayer(self, l.dial)
	return l
}

// attach makes n, the link to peer, carry raft streams both ways.
func (l *raftLinks) attach(n *pipe.Node, peer string) {
	n.HandleRaw(raftKind, func(ctx context.Context, ch io.ReadWriteCloser) {
		l.layer.Deliver(quorum.ChannelConn(ch, l.self, peer))
	})
	n.OnSession(func(ctx context.Context, s *pipe.Session) {
		l.mu.Lock()
		l.sessions[peer] = s
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		if l.sessions[peer] == s {
			delete(l.sessions, peer)
		}
		l.mu.Unlock()
	})
}

func (l *raftLinks) dial(ctx context.Context, peer string) (net.Conn, error) {
	l.mu.Lock()
	s := l.sessions[peer]
	l.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("no link to %s", peer)
	}
	ch, err := s.OpenRaw(raftKind)
	if err != nil {
		return nil, err
	}
	return quorum.ChannelConn(ch, l.self, peer), nil
}

// newQuorum builds the node's raft voter when [failover] witness is set:
// a second pipe link (to the witness) next to the peer's, both served by
// one mux on the SSH port, and raft over both.
func (d *daemon) newQuorum() (*quorum.Quorum, error) {
	cfg := d.cfg
	wl, err := pipe.New(pipe.Options{
		Node: cfg.Node, Config: cfg.SSH, Peer: pipe.Peer{Name: witnessName, Address: cfg.Failover.Witness},
		Signer: d.signer, Log: d.log.Named("witness-link"), Muxed: true,
	})
	if err != nil {
		return nil, err
	}
	links := newRaftLinks(cfg.Node)
	links.attach(d.node, cfg.Peers[0].Name)
	links.attach(wl, witnessName)
	q, err := quorum.New(quorum.Options{
		Node: cfg.Node, Voters: []string{cfg.Node, cfg.Peers[0].Name, witnessName}, Witness: witnessName,
		Dir: filepath.Join(cfg.StateDir, "raft"), Transport: links.layer,
		Priority:  map[string]int{cfg.Node: cfg.Failover.Priority},
		DeadAfter: cfg.Failover.DeadAfter.Std(), Log: d.log, Bootstrap: true,
	})
	if err != nil {
		return nil, err
	}
	d.witnessLink = wl
	return q, nil
}

// listenMux binds the SSH port for a node whose links share it.
func (d *daemon) listenMux() error {
	ln, err := net.Listen("tcp", d.cfg.SSH.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w; fix [ssh].listen or stop what uses the port", d.cfg.SSH.Listen, err)
	}
	nodes := []*pipe.Node{d.node}
	if d.witnessLink != nil {
		nodes = append(nodes, d.witnessLink)
	}
	d.mux, err = pipe.NewMux(ln, d.log, nodes...)
	if err != nil {
		ln.Close()
		return err
	}
	return nil
}

func cmdWitness(e *env, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem witness: unexpected argument %q\n", args[0])
		return exitUsage
	}
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	if cfg.Node != witnessName {
		fmt.Fprintf(e.stderr, "tandem witness: %s names node %q; a witness's config has node = %q and both nodes as [[peer]]\n", e.configPath, cfg.Node, witnessName)
		return exitUsage
	}
	log, err := newLogger(e.stderr, firstNonEmpty(e.logLevel, cfg.LogLevel), e.logFormat)
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		return exitUsage
	}
	defer log.Sync()
	if err := runWitness(e.ctx, cfg, log); err != nil {
		log.Error("witness stopped", zap.Error(err))
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// witnessStatus is what the witness's control socket answers.
type witnessStatus struct {
	Node   string       `json:"node"`
	Leader string       `json:"leader"`
	Term   uint64       `json:"term"`
	Peers  []PeerStatus `json:"peers"`
}

func runWitness(ctx context.Context, cfg *Config, log *zap.Logger) error {
	if err := deploy.EnsureStateDir(cfg.StateDir); err != nil {
		return err
	}
	signer, err := deploy.LoadKey(deploy.KeyPath(cfg.StateDir))
	if err != nil {
		return err
	}
	links := newRaftLinks(witnessName)
	var nodes []*pipe.Node
	for _, p := range cfg.Peers {
		n, err := pipe.New(pipe.Options{Node: witnessName, Config: cfg.SSH, Peer: p, Signer: signer,
			Log: log.Named(p.Name), Muxed: true})
		if err != nil {
			return err
		}
		links.attach(n, p.Name)
		nodes = append(nodes, n)
	}
	ln, err := net.Listen("tcp", cfg.SSH.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.SSH.Listen, err)
	}
	mux, err := pipe.NewMux(ln, log, nodes...)
	if err != nil {
		ln.Close()
		return err
	}
	q, err := quorum.New(quorum.Options{
		Node: witnessName, Voters: []string{cfg.Peers[0].Name, cfg.Peers[1].Name, witnessName}, Witness: witnessName,
		Dir: filepath.Join(cfg.StateDir, "raft"), Transport: links.layer, Log: log, Bootstrap: true,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer q.Close()
	cln, err := control.Listen(control.SocketPath(cfg.StateDir))
	if err != nil {
		ln.Close()
		return err
	}
	log.Info("witness started", zap.String("ssh", ln.Addr().String()),
		zap.Strings("nodes", []string{cfg.Peers[0].Name, cfg.Peers[1].Name}))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Go(func() { errc <- mux.Run(ctx); cancel() })
	for _, n := range nodes {
		wg.Go(func() { errc <- n.Run(ctx); cancel() })
	}
	wg.Go(func() {
		errc <- control.Serve(ctx, cln, witnessHandler(q, nodes))
		cancel()
	})
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func witnessHandler(q *quorum.Quorum, nodes []*pipe.Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		leader, term := q.Leader()
		st := witnessStatus{Node: witnessName, Leader: leader, Term: term}
		for _, n := range nodes {
			p := n.Status()
			st.Peers = append(st.Peers, PeerStatus{Name: p.Name, Address: p.Address, Connected: p.Connected,
				RTTms: ms(p.RTT), Since: rfc3339(p.Since), LastError: p.LastError, Inbound: p.Inbound})
		}
		control.WriteJSON(w, http.StatusOK, st)
	})
	return mux
}
