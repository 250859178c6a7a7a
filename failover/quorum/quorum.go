package quorum

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// DefaultWitness is the witness's node name when Options.Witness is empty.
const DefaultWitness = "witness"

// DefaultDeadAfter is used when Options.DeadAfter is zero.
const DefaultDeadAfter = 10 * time.Second

// MinDeadAfter is the smallest DeadAfter New accepts: raft wants timeouts
// of at least a few milliseconds.
const MinDeadAfter = 100 * time.Millisecond

var (
	// ErrNoWitness is returned by New for two voters: raft among two
	// nodes cannot tell a dead peer from a cut link any better than a
	// timer, and would stall when either is down.
	ErrNoWitness = errors.New("quorum: no witness configured: raft needs three voters; " +
		"decide by the peer-silence rule (dead_after, peer_check) instead, or configure a witness")
	// ErrNoLeader is returned by Transfer when no leader is known (no
	// quorum, or an election is under way).
	ErrNoLeader = errors.New("quorum: no leader known")
)

// Timeouts are the raft timings derived from the failover threshold.
type Timeouts struct {
	// Heartbeat is raft's HeartbeatTimeout: a follower that has not heard
	// from the leader for this long (checked at random intervals in
	// [Heartbeat, 2×Heartbeat)) starts an election. The leader sends
	// heartbeats every Heartbeat/10 or so.
	Heartbeat time.Duration
	// Election is raft's ElectionTimeout: how long a candidate waits
	// before it retries a failed election.
	Election time.Duration
	// LeaderLease is raft's LeaderLeaseTimeout: a leader that has heard
	// from no other voter for this long steps down.
	LeaderLease time.Duration
	// IO is the transport's I/O deadline for one RPC.
	IO time.Duration
}

// TimeoutsFor maps dead_after onto raft: Heartbeat = Election =
// deadAfter/5, LeaderLease = 2/5 of Heartbeat, IO = Heartbeat. See the
// package documentation for the bounds this gives.
func TimeoutsFor(deadAfter time.Duration) Timeouts {
	hb := deadAfter / 5
	return Timeouts{Heartbeat: hb, Election: hb, LeaderLease: hb * 2 / 5, IO: hb}
}

// Options configure New.
type Options struct {
	// Node is this voter's name, one of Voters.
	Node string
	// Voters are the names of the three voters: both nodes and the
	// witness. Two names (no witness) make New fail with ErrNoWitness.
	Voters []string
	// Witness is the name of the witness among Voters. Default:
	// DefaultWitness.
	Witness string
	// Dir holds the raft log and term (raft.db) and snapshots; a
	// directory of its own under the state dir. Created if missing.
	Dir string
	// Transport carries raft's conns; its name must be Node. The Quorum
	// owns it from New on: Close closes it, and so does a New that fails
	// after checking the options.
	Transport *StreamLayer
	// Priority of each node (not the witness): higher is preferred, ties
	// by name. It only orders the nodes the witness hands leadership to.
	Priority map[string]int
	// DeadAfter is the failover threshold; the raft timeouts are derived
	// from it by TimeoutsFor. Default: DefaultDeadAfter.
	DeadAfter time.Duration
	// Log receives tandem's and raft's messages. Default: none.
	Log *zap.Logger
	// Bootstrap writes the initial configuration (the three voters) when
	// Dir holds no raft state yet; with state, it does nothing. It is safe
	// on every start as long as every voter is given the same Voters.
	Bootstrap bool
}

// Event reports who leads, in which term. IsSelf means this voter is the
// leader: for a node, that it may be primary with epoch Term.
type Event struct {
	Leader string // node name, "" when none is known
	Term   uint64
	IsSelf bool
}

// Quorum is one raft voter. Create it with New, stop it with Close.
type Quorum struct {
	opts     Options
	log      *zap.Logger
	timeouts Timeouts
	nodes    []string // the voters other than the witness, best first

	r        *raft.Raft
	store    *store
	fsm      *fsm
	layer    *StreamLayer
	sink     *zapSink // raft's log output, muted by Close
	observer *raft.Observer
	obs      chan raft.Observation

	events    chan Event
	handedOff chan handOverResult // result of a witness hand-over
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New opens the raft state in opts.Dir, bootstraps it when asked, and
// starts the voter. The caller must Close it.
func New(opts Options) (*Quorum, error) {
	if opts.Witness == "" {
		opts.Witness = DefaultWitness
	}
	if opts.DeadAfter == 0 {
		opts.DeadAfter = DefaultDeadAfter
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Log.Named("quorum")
	t := TimeoutsFor(opts.DeadAfter)

	nodes := slices.DeleteFunc(slices.Clone(opts.Voters), func(v string) bool { return v == opts.Witness })
	slices.SortFunc(nodes, func(a, b string) int {
		if c := cmp.Compare(opts.Priority[b], opts.Priority[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})

	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		_ = opts.Transport.Close()
		return nil, fmt.Errorf("quorum: %w", err)
	}
	hlog, sink := raftLogger(opts.Log.Named("raft"))
	store, err := openStore(filepath.Join(opts.Dir, "raft.db"))
	if err != nil {
		_ = opts.Transport.Close()
		return nil, fmt.Errorf("quorum: raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(opts.Dir, 2, hlog)
	if err != nil {
		_ = store.Close()
		_ = opts.Transport.Close()
		return nil, fmt.Errorf("quorum: open snapshots in %s: %w", opts.Dir, err)
	}

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(opts.Node)
	conf.HeartbeatTimeout = t.Heartbeat
	conf.ElectionTimeout = t.Election
	conf.LeaderLeaseTimeout = t.LeaderLease
	conf.Logger = hlog
	conf.NoLegacyTelemetry = true
	if err := raft.ValidateConfig(conf); err != nil {
		_ = store.Close()
		_ = opts.Transport.Close()
		return nil, fmt.Errorf("quorum: dead_after %v: %w", opts.DeadAfter, err)
	}

	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  opts.Transport,
		MaxPool: 3,
		Timeout: t.IO,
		Logger:  hlog,
	})
	fail := func(err error) (*Quorum, error) {
		_ = trans.Close()
		_ = store.Close()
		sink.mute()
		return nil, err
	}

	if opts.Bootstrap {
		var servers []raft.Server
		for _, v := range opts.Voters {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v), Address: raft.ServerAddress(v)})
		}
		err := raft.BootstrapCluster(conf, store, store, snaps, trans, raft.Configuration{Servers: servers})
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fail(fmt.Errorf("quorum: bootstrap %v: %w", opts.Voters, err))
		}
	}

	q := &Quorum{
		opts:      opts,
		log:       log,
		timeouts:  t,
		nodes:     nodes,
		store:     store,
		fsm:       &fsm{},
		layer:     opts.Transport,
		sink:      sink,
		obs:       make(chan raft.Observation, 64),
		events:    make(chan Event),
		handedOff: make(chan handOverResult, 1),
		done:      make(chan struct{}),
	}
	r, err := raft.NewRaft(conf, q.fsm, store, store, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("quorum: start raft: %w", err))
	}
	q.r = r
	q.layer.setControl(q.serveControl)
	q.observer = raft.NewObserver(q.obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState,
			raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(q.observer)
	log.Info("voter started", zap.String("node", opts.Node), zap.Strings("voters", opts.Voters),
		zap.Uint64("term", r.CurrentTerm()), zap.Duration("heartbeat_timeout", t.Heartbeat),
		zap.Duration("leader_lease", t.LeaderLease))
	q.wg.Add(1)
	go q.run()
	return q, nil
}

func (o *Options) validate() error {
	switch {
	case o.Node == "":
		return errors.New("quorum: no node name")
	case len(o.Voters) == 2:
		return ErrNoWitness
	case len(o.Voters) != 3:
		return fmt.Errorf("quorum: %d voters %v, want 3 (both nodes and the witness)", len(o.Voters), o.Voters)
	case o.Dir == "":
		return errors.New("quorum: no directory for the raft state")
	case o.Transport == nil:
		return errors.New("quorum: no transport")
	case o.Transport.self != o.Node:
		return fmt.Errorf("quorum: transport is named %q, node %q", o.Transport.self, o.Node)
	case o.DeadAfter < MinDeadAfter:
		return fmt.Errorf("quorum: dead_after %v is below %v", o.DeadAfter, MinDeadAfter)
	}
	seen := map[string]bool{}
	for _, v := range o.Voters {
		if v == "" || seen[v] {
			return fmt.Errorf("quorum: voters %q: names must be distinct and not empty", o.Voters)
		}
		seen[v] = true
	}
	if !seen[o.Node] {
		return fmt.Errorf("quorum: node %q is not among the voters %v", o.Node, o.Voters)
	}
	if !seen[o.Witness] {
		return fmt.Errorf("quorum: witness %q is not among the voters %v", o.Witness, o.Voters)
	}
	return nil
}

// Timeouts returns the raft timings in use.
func (q *Quorum) Timeouts() Timeouts { return q.timeouts }

// Leader returns the current leader's name ("" when none is known) and
// the term this voter is in. On the leader both are exact; a follower may
// briefly report the old leader with the new term during a hand-over.
func (q *Quorum) Leader() (name string, term uint64) {
	ev := q.state()
	return ev.Leader, ev.Term
}

// Events delivers an Event whenever the leader or the term changes, the
// first one at start. Changes coalesce: a reader that falls behind gets the
// latest state, not the history. It is closed by Close.
func (q *Quorum) Events() <-chan Event { return q.events }

// Preferred returns the operator's preferred primary recorded by the last
// Transfer, or "" if none was ever made (as far as this voter has applied).
func (q *Quorum) Preferred() string { return q.fsm.get() }

// Transfer makes the node named to the leader and records it as the
// preferred primary. Any voter may call it: a follower forwards the request
// to the leader. It returns when the transfer is done or has failed (to is
// unreachable or behind): then leadership stays where it was or goes to
// whoever wins the next election.
func (q *Quorum) Transfer(to string) error {
	if !slices.Contains(q.nodes, to) {
		return fmt.Errorf("transfer to %q: not a node (nodes: %v)", to, q.nodes)
	}
	if q.r.State() == raft.Leader {
		return q.transferLocal(to)
	}
	leader, _ := q.Leader()
	if leader == "" {
		return fmt.Errorf("transfer to %s: %w (does this node reach its peer or the witness?)", to, ErrNoLeader)
	}
	return q.forwardTransfer(leader, to)
}

func (q *Quorum) transferLocal(to string) error {
	if err := q.r.Apply(encodePrefer(to), q.timeouts.Election).Error(); err != nil {
		return fmt.Errorf("transfer to %s: record preference: %w", to, err)
	}
	if to == q.opts.Node {
		return nil
	}
	if err := q.r.LeadershipTransferToServer(raft.ServerID(to), raft.ServerAddress(to)).Error(); err != nil {
		return fmt.Errorf("transfer to %s: %w", to, err)
	}
	q.log.Info("leadership transferred", zap.String("to", to))
	return nil
}

// Close stops the voter, closes its transport and its store, and closes
// Events. Nothing is logged after it returns. It does not leave the
// cluster: the others see a dead voter.
func (q *Quorum) Close() error {
	q.closeOnce.Do(func() {
		q.r.DeregisterObserver(q.observer)
		errRaft := q.r.Shutdown().Error()
		close(q.done)
		q.wg.Wait()
		close(q.events)
		errStore := q.store.Close()
		q.sink.mute()
		if err := errors.Join(errRaft, errStore); err != nil {
			q.closeErr = fmt.Errorf("quorum: close: %w", err)
		}
	})
	return q.closeErr
}

// state reads leader and term from raft consistently: the term before and
// after reading the leader agree.
func (q *Quorum) state() Event {
	for {
		t1 := q.r.CurrentTerm()
		_, id := q.r.LeaderWithID()
		isSelf := string(id) == q.opts.Node && q.r.State() == raft.Leader
		if q.r.CurrentTerm() != t1 {
			continue
		}
		leader := string(id)
		if leader == q.opts.Node && !isSelf {
			leader = "" // stepping down: raft clears its leader a moment later
		}
		return Event{Leader: leader, Term: t1, IsSelf: isSelf}
	}
}

// run owns the published state: it watches raft (observations, and a poll
// for term changes raft does not announce), publishes Events, and on the
// witness hands leadership over.
func (q *Quorum) run() {
	defer q.wg.Done()
	poll := time.NewTicker(q.timeouts.Heartbeat / 4)
	defer poll.Stop()
	isWitness := q.opts.Node == q.opts.Witness

	cur, pending := q.state(), true
	var h handOver
	for {
		var out chan<- Event
		if pending {
			out = q.events
		}
		select {
		case out <- cur:
			pending = false
			continue
		case o := <-q.obs:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				if h.failing != nil { // the witness, while it leads
					h.failing[string(d.PeerID)] = true
				}
			case raft.ResumedHeartbeatObservation:
				delete(h.failing, string(d.PeerID))
			}
		case <-poll.C:
		case <-h.next:
			h.next = nil
			if cur.IsSelf && !h.running {
				h.running = true
				to := h.pick(q.handOverOrder())
				q.wg.Add(1)
				go func() {
					defer q.wg.Done()
					q.handedOff <- handOverResult{to, q.handOff(to)}
				}()
			}
		case res := <-q.handedOff:
			h.running = false
			if res.err != nil && cur.IsSelf {
				q.log.Warn("witness could not hand leadership over; trying again",
					zap.String("to", res.to), zap.Error(res.err))
				if !errors.Is(res.err, raft.ErrLeadershipTransferInProgress) {
					h.tried[res.to] = true
				}
				h.next = time.After(q.timeouts.Heartbeat / 10)
			}
		case <-q.done:
			return
		}
		if ev := q.state(); ev != cur {
			q.log.Info("leader changed", zap.String("leader", ev.Leader), zap.Uint64("term", ev.Term),
				zap.Bool("self", ev.IsSelf))
			cur, pending = ev, true
		}
		if isWitness && cur.IsSelf && h.term != cur.Term {
			// A new reign of the witness: give raft a few heartbeats to
			// find out which nodes answer before choosing one.
			h = handOver{
				term:    cur.Term,
				failing: map[string]bool{},
				tried:   map[string]bool{},
				running: h.running,
				next:    time.After(q.timeouts.Heartbeat / 5),
			}
		}
	}
}

// handOver is the witness's state while it gives leadership away.
type handOver struct {
	term    uint64          // the witness's term as leader
	failing map[string]bool // nodes raft's heartbeats do not reach
	tried   map[string]bool // nodes a transfer to failed
	running bool            // a transfer is under way
	next    <-chan time.Time
}

type handOverResult struct {
	to  string
	err error
}

// pick chooses the first node in order that answers heartbeats and was not
// tried yet; failing that, the first not tried; failing that, it starts
// over.
func (h *handOver) pick(order []string) string {
	for _, n := range order {
		if !h.failing[n] && !h.tried[n] {
			return n
		}
	}
	for _, n := range order {
		if !h.tried[n] {
			return n
		}
	}
	clear(h.tried)
	return order[0]
}

// handOverOrder is the preferred primary, then the nodes by priority.
func (q *Quorum) handOverOrder() []string {
	order := q.nodes
	if p := q.fsm.get(); p != "" && slices.Contains(order, p) {
		order = append([]string{p}, slices.DeleteFunc(slices.Clone(order), func(n string) bool { return n == p })...)
	}
	return order
}

// handOff transfers the witness's leadership to the node named to.
func (q *Quorum) handOff(to string) error {
	err := q.r.LeadershipTransferToServer(raft.ServerID(to), raft.ServerAddress(to)).Error()
	switch {
	case err == nil:
		q.log.Info("witness handed leadership over", zap.String("to", to))
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrRaftShutdown):
		return nil // nothing left to hand over
	}
	return fmt.Errorf("hand leadership over to %s: %w", to, err)
}
