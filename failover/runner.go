package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/failover/quorum"
	"github.com/tandemhost/tandem/pipe"
)

// DNSPointer points the site's names at addresses. failover/dns
// implements it (RFC 2136 updates, or the embedded server's answers). (The
// name DNS is the [failover.dns] config section's.)
type DNSPointer interface {
	// Point makes the names answer with addrs. It is called again with the
	// same addrs after a failure, so it must be safe to repeat.
	Point(ctx context.Context, addrs []string) error
}

// Quorum is what the runner needs of a raft voter when a witness is
// configured; *quorum.Quorum satisfies it.
type Quorum interface {
	// Events delivers the leadership as it changes (latest state first).
	Events() <-chan quorum.Event
	// Transfer moves the leadership to the node named (and records it as
	// the preferred primary); it returns when done or failed.
	Transfer(to string) error
}

var _ Quorum = (*quorum.Quorum)(nil)

// ErrNotRunning: an operator command reached a runner that is not running.
var ErrNotRunning = errors.New("failover is not running")

// Timeouts of the runner's actions.
const (
	readOnlyTimeout = 5 * time.Second
	dnsTimeout      = 10 * time.Second
	hookTimeout     = time.Minute
	opTimeout       = 10 * time.Second
	// readOnlyReassert is how often read_only is set again.
	readOnlyReassert = 30 * time.Second
)

// RunnerOptions configure a Runner.
type RunnerOptions struct {
	// Config is the [failover] section (defaults applied).
	Config Config
	// Node and Peer are this node's and the peer's names.
	Node, Peer string
	// StateDir holds the persisted epoch (StateFile).
	StateDir string
	// Pipe, when set, gets the heartbeat stream registered (see Register).
	Pipe *pipe.Node
	// DNS points the names at the primary (RFC 2136 updates): only the
	// primary calls it. nil means no updates.
	DNS DNSPointer
	// Serve is this node's own authoritative server (the serve setting):
	// every node points it at the primary it knows of, the standby too.
	// It must answer at once, without I/O (dns.Server.Point does). nil
	// means no server.
	Serve DNSPointer
	// MySQLDSN is the [mysql] DSN: read_only is switched there and mysql
	// checks ping it. "" means no MySQL.
	MySQLDSN string
	// Force skips wait_for_all (tandem run --force).
	Force bool
	// Quorum, when set, decides the roles (witness mode, see witness.go).
	// It must be set exactly when Config.Witness is.
	Quorum Quorum
	// Log receives the runner's logs; nil means none.
	Log *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Runner drives the Machine: it feeds it heartbeats, check results, ticks
// and operator commands, and carries out its actions. One goroutine (Run's)
// owns the machine.
type Runner struct {
	opts    RunnerOptions
	cfg     Config
	log     *zap.Logger
	now     func() time.Time
	m       *Machine
	checker *Checker
	peerWeb *http.Client
	hb      time.Duration

	events  chan Event
	ops     chan opRequest
	outbox  chan *Heartbeat // the latest heartbeat to send; size 1
	hooks   chan RunHook
	moves   chan string   // leadership transfers to ask the quorum for
	kick    chan struct{} // wakes the applier; size 1
	stopped chan struct{} // closed when Run returns
	ran     atomic.Bool
	epoch   atomic.Uint64

	db *sql.DB // for read_only; nil without MySQLDSN

	mu      sync.Mutex // guards the fields below
	changed chan struct{}
	status  Status
	want    wanted

	warnMu   sync.Mutex // guards lastWarn
	lastWarn map[string]time.Time
}

// wanted is what the applier is to bring about. An apply that raced with
// a change of what is wanted does not count as done.
type wanted struct {
	dns     []string
	dnsSet  bool
	dnsDone bool
	ro      bool
	roSet   bool
	roDone  bool
}

type opRequest struct {
	ev    Operator
	reply chan error
}

// Status is what the runner knows, for `tandem status --json` (under
// "failover"). Field names are a contract: add, never rename.
type Status struct {
	Node string `json:"node"`
	Peer string `json:"peer"`
	MachineStatus
	// DNSUpdate: this node updates DNS (RFC 2136) when primary.
	DNSUpdate bool `json:"dns_update"`
	// DNSTarget is what DNS was last pointed at successfully by this node.
	DNSTarget []string `json:"dns_target"`
	// DNSError is the last DNS update's error, "" after a success.
	DNSError string `json:"dns_error"`
	// ReadOnlyApplied is "on" or "off" once MySQL's read_only was set, ""
	// before or without MySQL.
	ReadOnlyApplied string `json:"read_only_applied"`
	ReadOnlyError   string `json:"read_only_error"`
	// ServeError is the last error of this node's DNS server taking a new
	// answer, "" after a success.
	ServeError string `json:"serve_error"`
	// HookError is the last failed hook's error, "" after a success.
	HookError string `json:"hook_error"`
	// TransferError is the last failed leadership transfer's error (witness
	// mode), "" after a success.
	TransferError string `json:"transfer_error"`
	// transfers counts finished transfers, for operate to wait on.
	transfers uint64
}

// NewRunner checks opts, loads the persisted epoch and, when opts.Pipe is
// set, registers the heartbeat stream on it (so call it before the pipe
// node runs).
func NewRunner(opts RunnerOptions) (*Runner, error) {
	if opts.Node == "" || opts.Peer == "" {
		return nil, errors.New("failover: node and peer names are required")
	}
	if opts.StateDir == "" {
		return nil, errors.New("failover: state dir is required")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg := opts.Config
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("failover config: %s", ps[0].Error())
	}
	st, err := LoadState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	if (cfg.Witness != "") != (opts.Quorum != nil) {
		return nil, fmt.Errorf("failover: witness = %q but quorum given: %t; with a witness the runner needs its raft voter, without one none", cfg.Witness, opts.Quorum != nil)
	}
	checker, err := NewChecker(cfg.Checks, opts.MySQLDSN)
	if err != nil {
		return nil, err
	}
	params := cfg.Params(opts.Node, opts.Peer, opts.Force)
	params.Witness = opts.Quorum != nil
	params.Serve = opts.Serve != nil
	r := &Runner{
		opts:     opts,
		cfg:      cfg,
		log:      opts.Log.Named("failover"),
		now:      opts.Now,
		m:        NewMachine(params, st),
		checker:  checker,
		peerWeb:  &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
		hb:       cfg.Heartbeat.Or(DefaultHeartbeat),
		events:   make(chan Event),
		ops:      make(chan opRequest),
		outbox:   make(chan *Heartbeat, 1),
		hooks:    make(chan RunHook, 16),
		moves:    make(chan string, 4),
		kick:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		changed:  make(chan struct{}),
		lastWarn: make(map[string]time.Time),
	}
	r.epoch.Store(st.Epoch)
	r.status = Status{Node: opts.Node, Peer: opts.Peer, MachineStatus: r.m.Status(), DNSUpdate: opts.DNS != nil}
	if opts.MySQLDSN != "" {
		if r.db, err = sql.Open("mysql", opts.MySQLDSN); err != nil {
			checker.Close()
			return nil, fmt.Errorf("failover: mysql dsn: %w", err)
		}
		r.db.SetMaxOpenConns(1)
	}
	if opts.Pipe != nil {
		r.Register(opts.Pipe)
	}
	return r, nil
}

// Register adds the heartbeat stream to n: a handler for the peer's
// heartbeats and a sender on every outbound session. Call it before n runs.
func (r *Runner) Register(n *pipe.Node) {
	n.Handle(StreamKind, heartbeatMaxFrame, r.serveHeartbeats)
	n.OnSession(r.session)
}

// Epoch returns the current epoch; safe from any goroutine (for the pipe's
// handshake).
func (r *Runner) Epoch() uint64 { return r.epoch.Load() }

// Status returns what the runner knows.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.DNS = slices.Clone(s.DNS)
	s.DNSTarget = slices.Clone(s.DNSTarget)
	return s
}

// Primary returns the node that is primary as far as this node knows, ""
// when none is known (for the "primary" row conflict rule).
func (r *Runner) Primary() string { return r.Status().Primary }

// Changed returns a channel closed at the next status change.
func (r *Runner) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *Runner) update(f func(s *Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.status)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Promote makes this node primary (tandem promote). Without force it
// refuses when this node's checks fail or the peer is unreachable.
func (r *Runner) Promote(force bool) error { return r.operate(OpPromote, force) }

// Demote makes this node standby (tandem demote). Without force it refuses
// when no healthy peer would take over.
func (r *Runner) Demote(force bool) error { return r.operate(OpDemote, force) }

func (r *Runner) operate(op Op, force bool) error {
	if !r.ran.Load() {
		return ErrNotRunning
	}
	// Transfers finished so far: in witness mode, the one this command asks
	// for is a later one.
	before := r.Status().transfers
	req := opRequest{ev: Operator{Op: op, Force: force}, reply: make(chan error, 1)}
	t := time.NewTimer(opTimeout)
	defer t.Stop()
	select {
	case r.ops <- req:
	case <-r.stopped:
		return ErrNotRunning
	case <-t.C:
		return fmt.Errorf("%s: the failover runner did not answer within %v", op, opTimeout)
	}
	select {
	case err := <-req.reply:
		if err != nil || r.opts.Quorum == nil {
			return err
		}
	case <-r.stopped:
		return ErrNotRunning
	}
	return r.awaitTransfer(op, before)
}

// awaitTransfer waits, in witness mode, until the transfer an operator
// command asked for is done and the role has followed.
func (r *Runner) awaitTransfer(op Op, before uint64) error {
	want := Primary
	if op == OpDemote {
		want = Standby
	}
	t := time.NewTimer(2*r.cfg.DeadAfter.Std() + opTimeout)
	defer t.Stop()
	for {
		changed := r.Changed()
		s := r.Status()
		if s.transfers > before && s.TransferError != "" {
			return fmt.Errorf("%s: %s", op, s.TransferError)
		}
		if s.transfers > before && s.Role == want {
			return nil
		}
		select {
		case <-changed:
		case <-r.stopped:
			return ErrNotRunning
		case <-t.C:
			return fmt.Errorf("%s: raft moved the leadership but this node is still %s; see tandem status", op, s.Role)
		}
	}
}

// leadershipLoop hands the quorum's leadership events to the Run loop.
func (r *Runner) leadershipLoop(ctx context.Context) {
	events := r.opts.Quorum.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if !r.send(ctx, Leadership{Now: r.now(), Leader: ev.Leader, Term: ev.Term, IsSelf: ev.IsSelf}) {
				return
			}
		}
	}
}

// transferLoop asks the quorum for leadership transfers, one at a time.
func (r *Runner) transferLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case to := <-r.moves:
			err := r.opts.Quorum.Transfer(to)
			if err != nil {
				r.warn("leadership transfer failed", zap.String("to", to), zap.Error(err))
			} else {
				r.log.Info("leadership transferred", zap.String("to", to))
			}
			r.update(func(s *Status) {
				s.transfers++
				s.TransferError = ""
				if err != nil {
					s.TransferError = err.Error()
				}
			})
		}
	}
}

// Run runs the machine until ctx ends. It returns an error only when the
// epoch cannot be persisted: a node that cannot keep its epoch must not
// keep a role.
func (r *Runner) Run(ctx context.Context) error {
	if r.ran.Swap(true) {
		return errors.New("failover: Run called twice")
	}
	defer close(r.stopped)
	defer r.checker.Close()
	if r.db != nil {
		defer r.db.Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { r.healthLoop(ctx) })
	if r.cfg.PeerCheck != "" {
		wg.Go(func() { r.peerCheckLoop(ctx) })
	}
	wg.Go(func() { r.applier(ctx) })
	wg.Go(func() { r.hookLoop(ctx) })
	if r.opts.Quorum != nil {
		wg.Go(func() { r.leadershipLoop(ctx) })
		wg.Go(func() { r.transferLoop(ctx) })
	}

	r.log.Info("failover started", zap.String("node", r.opts.Node), zap.Uint64("epoch", r.Epoch()),
		zap.Bool("force", r.opts.Force), zap.Duration("heartbeat", r.hb), zap.Duration("dead_after", r.cfg.DeadAfter.Std()))
	if _, err := r.step(ctx, Start{Now: r.now()}); err != nil {
		return err
	}
	tick := time.NewTicker(r.hb)
	defer tick.Stop()
	// deadline fires when the peer's silence reaches dead_after, so that the
	// failover does not wait for the next regular tick.
	deadline := time.NewTimer(time.Hour)
	defer deadline.Stop()
	var armed time.Time
	for {
		if d := r.m.PeerDeadline(); !d.Equal(armed) {
			armed = d
			deadline.Stop()
			if !d.IsZero() {
				deadline.Reset(max(d.Sub(r.now()), 0) + time.Millisecond)
			}
		}
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			armed = time.Time{}
			_, err = r.step(ctx, Tick{Now: r.now()})
		case <-tick.C:
			if _, err = r.step(ctx, Tick{Now: r.now()}); err == nil {
				r.queueHeartbeat()
			}
		case ev := <-r.events:
			_, err = r.step(ctx, ev)
			if _, ok := ev.(PeerSeen); ok {
				r.queueHeartbeat()
			}
		case op := <-r.ops:
			op.ev.Now = r.now()
			var opErr error
			opErr, err = r.step(ctx, op.ev)
			if err != nil {
				opErr = err
			}
			op.reply <- opErr
		}
		if err != nil {
			return err
		}
	}
}

// step feeds ev to the machine and carries out its actions. refused is the
// machine's refusal of the event; fatal ends Run.
func (r *Runner) step(ctx context.Context, ev Event) (refused, fatal error) {
	acts, err := r.m.Step(ev)
	if err != nil {
		if _, ok := ev.(Operator); !ok {
			r.warn("peer message refused", zap.Error(err))
		}
		return err, nil
	}
	for _, a := range acts {
		if err := r.exec(a); err != nil {
			return nil, err
		}
	}
	ms := r.m.Status()
	r.update(func(s *Status) { s.MachineStatus = ms })
	return nil, nil
}

func (r *Runner) exec(a Action) error {
	switch a := a.(type) {
	case Persist:
		if err := SaveState(r.opts.StateDir, Persisted(a)); err != nil {
			return fmt.Errorf("%w; this node stops rather than act on an epoch it cannot keep", err)
		}
		r.epoch.Store(a.Epoch)
	case BecomePrimary:
		r.log.Warn("became primary", zap.Uint64("epoch", a.Epoch), zap.String("reason", a.Reason))
	case BecomeStandby:
		r.log.Warn("became standby", zap.Uint64("epoch", a.Epoch), zap.String("reason", a.Reason))
		r.setWant(func(w *wanted) { w.dnsSet = false })
	case SetReadOnly:
		r.setWant(func(w *wanted) { w.ro, w.roSet, w.roDone = a.On, true, false })
	case PointDNS:
		r.setWant(func(w *wanted) { w.dns, w.dnsSet, w.dnsDone = slices.Clone(a.Addrs), true, false })
	case RunHook:
		select {
		case r.hooks <- a:
		default:
			r.log.Error("hook dropped: too many queued", zap.String("cmd", a.Cmd))
		}
	case ServeDNS:
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := r.opts.Serve.Point(ctx, a.Addrs)
		cancel()
		if err != nil {
			r.warn("cannot set the DNS server's answer", zap.Strings("addrs", a.Addrs), zap.Error(err))
		}
		r.update(func(s *Status) {
			s.ServeError = ""
			if err != nil {
				s.ServeError = err.Error()
			}
		})
	case SendHeartbeat:
		r.queueHeartbeat()
	case TransferLeadership:
		select {
		case r.moves <- a.To:
		default:
			r.log.Error("leadership transfer dropped: too many queued", zap.String("to", a.To))
		}
	default:
		return fmt.Errorf("failover: unknown action %T", a)
	}
	return nil
}

// warn logs a repeated warning at most once per 10 seconds.
func (r *Runner) warn(msg string, fields ...zap.Field) {
	key := msg
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && f.Key == "error" {
			key += "|" + err.Error()
		}
	}
	r.warnMu.Lock()
	last, seen := r.lastWarn[key]
	now := r.now()
	if !seen || now.Sub(last) >= 10*time.Second {
		if len(r.lastWarn) > 100 {
			clear(r.lastWarn)
		}
		r.lastWarn[key] = now
		seen = false
	}
	r.warnMu.Unlock()
	if !seen {
		r.log.Warn(msg, fields...)
	}
}

// heartbeat is what this node tells its peer now.
func (r *Runner) heartbeat() *Heartbeat {
	role, epoch := r.m.Role()
	return &Heartbeat{
		Node: r.opts.Node, Epoch: epoch, Role: role, Health: r.m.Health(), Hold: r.m.Hold(),
		Priority: r.cfg.Priority, Address: r.cfg.Address, TimeUnixNano: r.now().UnixNano(),
	}
}

// queueHeartbeat replaces the heartbeat waiting to be sent with a fresh one.
func (r *Runner) queueHeartbeat() {
	hb := r.heartbeat()
	select {
	case <-r.outbox:
	default:
	}
	select {
	case r.outbox <- hb:
	default:
	}
}

// send hands an event to the Run loop.
func (r *Runner) send(ctx context.Context, ev Event) bool {
	select {
	case r.events <- ev:
		return true
	case <-ctx.Done():
	case <-r.stopped:
	}
	return false
}

// serveHeartbeats is the handler of the peer's heartbeat stream.
func (r *Runner) serveHeartbeats(ctx context.Context, s *pipe.Stream) error {
	for {
		typ, body, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("failover stream: %w", err)
		}
		hb, err := DecodeHeartbeat(typ, body)
		if err != nil {
			return fmt.Errorf("failover stream: %w", err)
		}
		if !r.send(ctx, hb.event(r.now())) {
			return nil
		}
	}
}

// session runs on every outbound session: it opens the heartbeat stream
// and sends the heartbeats the Run loop queues until the session ends.
func (r *Runner) session(ctx context.Context, s *pipe.Session) {
	st, err := s.Open(StreamKind, heartbeatMaxFrame)
	if err != nil {
		r.warn("cannot open the failover stream; is the peer's failover on?", zap.Error(err))
		return
	}
	defer st.Close()
	if !r.send(ctx, PeerSeen{Now: r.now()}) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.stopped:
			return
		case hb := <-r.outbox:
			if err := st.Send(hb); err != nil {
				r.log.Debug("heartbeat send failed", zap.Error(err))
				return
			}
		}
	}
}

// healthLoop runs the checks every heartbeat interval.
func (r *Runner) healthLoop(ctx context.Context) {
	t := time.NewTicker(r.hb)
	defer t.Stop()
	for {
		ok, detail := r.checker.Run(ctx)
		if ctx.Err() != nil || !r.send(ctx, HealthResult{Now: r.now(), OK: ok, Detail: detail}) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// peerCheckLoop fetches peer_check every heartbeat interval.
func (r *Runner) peerCheckLoop(ctx context.Context) {
	t := time.NewTicker(r.hb)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, DefaultCheckTimeout)
		err := checkPeerSite(cctx, r.peerWeb, r.cfg.PeerCheck)
		cancel()
		ev := PeerCheckResult{Now: r.now(), OK: err == nil}
		if err != nil {
			ev.Detail = err.Error()
		}
		if ctx.Err() != nil || !r.send(ctx, ev) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runner) setWant(f func(w *wanted)) {
	r.mu.Lock()
	f(&r.want)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// applier brings MySQL's read_only and DNS to what the machine wants, in
// that order (writes are allowed before clients are sent here), retrying
// every heartbeat interval until each succeeds. It runs apart from the Run
// loop so that a slow name server cannot delay heartbeats. read_only is
// also set again every readOnlyReassert, in case MySQL restarted with its
// configured default; DNS is not, since during a partition two primaries
// would then take the names from each other in turn.
func (r *Runner) applier(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	reassert := time.NewTicker(readOnlyReassert)
	defer reassert.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-retry.C:
		case <-reassert.C:
			if r.db == nil {
				continue
			}
			r.setWant(func(w *wanted) { w.roDone = false })
		}
		r.mu.Lock()
		w := r.want
		w.dns = slices.Clone(w.dns)
		r.mu.Unlock()
		failed := false
		if w.roSet && !w.roDone {
			err := r.setReadOnly(ctx, w.ro)
			failed = failed || err != nil
			r.applied(func(cur *wanted, s *Status) {
				if err != nil {
					s.ReadOnlyError = err.Error()
					return
				}
				s.ReadOnlyError = ""
				if r.db != nil {
					s.ReadOnlyApplied = onOffWord(w.ro)
				}
				if cur.ro == w.ro {
					cur.roDone = true
				}
			})
			if err != nil {
				r.warn("cannot set read_only", zap.Bool("on", w.ro), zap.Error(err))
			}
		}
		if w.dnsSet && !w.dnsDone {
			err := r.pointDNS(ctx, w.dns)
			failed = failed || err != nil
			r.applied(func(cur *wanted, s *Status) {
				if err != nil {
					s.DNSError = err.Error()
					return
				}
				s.DNSError = ""
				s.DNSTarget = slices.Clone(w.dns)
				if cur.dnsSet && slices.Equal(cur.dns, w.dns) {
					cur.dnsDone = true
				}
			})
			if err != nil {
				r.warn("cannot point DNS", zap.Strings("addrs", w.dns), zap.Error(err))
			} else {
				r.log.Info("DNS pointed", zap.Strings("addrs", w.dns))
			}
		}
		if failed && ctx.Err() == nil {
			retry.Reset(r.hb)
		}
	}
}

// applied records an apply's result under the lock.
func (r *Runner) applied(f func(cur *wanted, s *Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.want, &r.status)
	close(r.changed)
	r.changed = make(chan struct{})
}

func onOffWord(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func (r *Runner) setReadOnly(ctx context.Context, on bool) error {
	if r.db == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readOnlyTimeout)
	defer cancel()
	q := "SET GLOBAL read_only = " + strings.ToUpper(onOffWord(on))
	if _, err := r.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

func (r *Runner) pointDNS(ctx context.Context, addrs []string) error {
	if r.opts.DNS == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	return r.opts.DNS.Point(ctx, addrs)
}

// hookLoop runs the hooks one at a time, in order.
func (r *Runner) hookLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-r.hooks:
			err := r.runHook(ctx, h)
			r.update(func(s *Status) {
				s.HookError = ""
				if err != nil {
					s.HookError = err.Error()
				}
			})
		}
	}
}

// runHook runs h.Cmd with sh -c, with TANDEM_ROLE, TANDEM_EPOCH,
// TANDEM_NODE and TANDEM_PEER in its environment.
func (r *Runner) runHook(ctx context.Context, h RunHook) error {
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", h.Cmd)
	cmd.Env = append(os.Environ(),
		"TANDEM_ROLE="+h.Role.String(),
		"TANDEM_EPOCH="+strconv.FormatUint(h.Epoch, 10),
		"TANDEM_NODE="+r.opts.Node,
		"TANDEM_PEER="+r.opts.Peer,
	)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("hook %q: %w: %s", h.Cmd, err, strings.TrimSpace(lastBytes(out, 500)))
		r.log.Error("hook failed", zap.String("role", h.Role.String()), zap.Error(err))
		return err
	}
	r.log.Info("hook ran", zap.String("cmd", h.Cmd), zap.String("role", h.Role.String()), zap.ByteString("output", out))
	return nil
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
