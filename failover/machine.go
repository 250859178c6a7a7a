package failover

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Role is what a node is in the pair.
type Role uint8

const (
	// Standby serves read-only (MySQL read_only=ON) and does not own DNS.
	Standby Role = iota
	// Primary owns the site's DNS names and takes writes.
	Primary
)

// String returns "standby" or "primary".
func (r Role) String() string {
	switch r {
	case Standby:
		return "standby"
	case Primary:
		return "primary"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Health is the damped verdict of a node's own checks.
type Health uint8

const (
	// HealthStarting: not yet rise passing nor fall failing rounds since
	// start. An election waits for a starting peer's verdict.
	HealthStarting Health = iota
	// HealthUp: rise passing rounds in a row, and not fall failing ones
	// since.
	HealthUp
	// HealthDown: fall failing rounds in a row, and not rise passing ones
	// since.
	HealthDown
)

// String returns "starting", "up" or "down".
func (h Health) String() string {
	switch h {
	case HealthStarting:
		return "starting"
	case HealthUp:
		return "up"
	case HealthDown:
		return "down"
	}
	return fmt.Sprintf("health(%d)", uint8(h))
}

// ParseHealth parses "starting", "up" or "down".
func ParseHealth(s string) (Health, error) {
	for h := HealthStarting; h <= HealthDown; h++ {
		if h.String() == s {
			return h, nil
		}
	}
	return 0, fmt.Errorf("health %q is not starting, up or down", s)
}

// MarshalText writes the health's name (for JSON status).
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads a health's name.
func (h *Health) UnmarshalText(b []byte) error {
	v, err := ParseHealth(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseRole parses "primary" or "standby".
func ParseRole(s string) (Role, error) {
	switch s {
	case "primary":
		return Primary, nil
	case "standby":
		return Standby, nil
	}
	return 0, fmt.Errorf("role %q is not primary or standby", s)
}

// MarshalText writes the role's name (for JSON status).
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a role's name.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Errors of Step.
var (
	// ErrStaleEpoch: a peer claimed the primary role with an epoch lower
	// than ours; the claim is ignored.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrUnknownPeer: a heartbeat came from a node that is not our peer.
	ErrUnknownPeer = errors.New("heartbeat from an unknown node")
	// ErrRefused wraps an operator command the machine will not carry out
	// as asked; the message says why and what to do.
	ErrRefused = errors.New("refused")
)

// Params are the machine's fixed settings, from the config.
type Params struct {
	Node, Peer string
	// Address is what DNS answers for this node.
	Address  string
	Priority int
	// DeadAfter is how long the peer may be silent before it counts as dead.
	DeadAfter time.Duration
	// Rise and Fall are how many consecutive check results change the
	// health state up and down.
	Rise, Fall int
	// MinDwell is how long a node holds a role before an automatic change.
	MinDwell time.Duration
	// MaxPerHour caps automatic promotions in any hour.
	MaxPerHour int
	// Failback lets a preferred standby take the role back from a live
	// primary.
	Failback bool
	// PeerCheck: a peer_check is configured, and a silent peer promotes
	// this node only while it fails.
	PeerCheck bool
	// RoundRobin: DNS answers with every healthy node, not only the primary.
	RoundRobin bool
	// Force skips wait_for_all: the peer counts as seen from the start.
	Force bool
	// Serve: this node runs its own authoritative server for the names,
	// which must answer with the primary whatever this node's role
	// (ServeDNS actions).
	Serve bool
	// Witness: a raft quorum (both nodes and a witness) decides who is
	// primary; the machine follows Leadership events (see witness.go).
	Witness bool
	// OnPromote and OnDemote are the hook commands.
	OnPromote, OnDemote string
}

// Persisted is what the machine keeps across restarts.
type Persisted struct {
	Epoch uint64
	Role  Role
}

// Event is an input of the machine. Every event carries its own time; the
// machine reads no clock.
type Event interface{ at() time.Time }

// Start is the first event: the node just started.
type Start struct{ Now time.Time }

// Tick is the passing of time.
type Tick struct{ Now time.Time }

// PeerSeen says the link to the peer is up (handshaken), before any
// heartbeat arrived.
type PeerSeen struct{ Now time.Time }

// PeerHeartbeat is the peer's heartbeat as received.
type PeerHeartbeat struct {
	Now      time.Time // when it arrived
	From     string
	Epoch    uint64
	Role     Role
	Health   Health
	Hold     bool // an operator demoted the peer: do not elect it
	Priority int
	Address  string
	Time     time.Time // the peer's clock when it sent it
}

// HealthResult is one round of this node's own checks.
type HealthResult struct {
	Now    time.Time
	OK     bool
	Detail string // what failed, "" when OK
}

// PeerCheckResult is one round of peer_check (the peer's site over the
// public network).
type PeerCheckResult struct {
	Now    time.Time
	OK     bool
	Detail string
}

// Op is an operator command.
type Op uint8

const (
	// OpPromote is `tandem promote`.
	OpPromote Op = iota + 1
	// OpDemote is `tandem demote`.
	OpDemote
)

func (o Op) String() string {
	if o == OpPromote {
		return "promote"
	}
	return "demote"
}

// Operator is `tandem promote [--force]` or `tandem demote [--force]`.
type Operator struct {
	Now   time.Time
	Op    Op
	Force bool
}

func (e Start) at() time.Time           { return e.Now }
func (e Tick) at() time.Time            { return e.Now }
func (e PeerSeen) at() time.Time        { return e.Now }
func (e PeerHeartbeat) at() time.Time   { return e.Now }
func (e HealthResult) at() time.Time    { return e.Now }
func (e PeerCheckResult) at() time.Time { return e.Now }
func (e Operator) at() time.Time        { return e.Now }
func (e Leadership) at() time.Time      { return e.Now }

// Action is an output of the machine, for the runner to carry out in order.
type Action interface{ action() }

// Persist writes the epoch and role to the state dir. It comes before any
// action that depends on the new epoch.
type Persist struct {
	Epoch uint64
	Role  Role
}

// BecomePrimary announces that this node is now primary.
type BecomePrimary struct {
	Epoch  uint64
	Reason string
}

// BecomeStandby announces that this node is now standby.
type BecomeStandby struct {
	Epoch  uint64
	Reason string
}

// SetReadOnly switches MySQL's read_only.
type SetReadOnly struct{ On bool }

// PointDNS points the site's names at addrs.
type PointDNS struct{ Addrs []string }

// ServeDNS sets what this node's own authoritative server answers for the
// names: the primary as this node knows it, or every healthy node in
// roundrobin mode. While no primary is known the last answer stays.
type ServeDNS struct{ Addrs []string }

// RunHook runs an on_promote or on_demote command.
type RunHook struct {
	Cmd   string
	Role  Role
	Epoch uint64
}

// SendHeartbeat asks for a heartbeat now, so the peer hears of a change
// without waiting for the next one.
type SendHeartbeat struct{}

func (Persist) action()            {}
func (BecomePrimary) action()      {}
func (BecomeStandby) action()      {}
func (SetReadOnly) action()        {}
func (PointDNS) action()           {}
func (ServeDNS) action()           {}
func (RunHook) action()            {}
func (SendHeartbeat) action()      {}
func (TransferLeadership) action() {}

// Transition is one role change.
type Transition struct {
	At     time.Time `json:"at"`
	From   Role      `json:"from"`
	To     Role      `json:"to"`
	Epoch  uint64    `json:"epoch"`
	Reason string    `json:"reason"`
}

// Machine is the role/epoch state machine. It is not safe for concurrent
// use: one goroutine (the Runner's) owns it.
type Machine struct {
	p Params

	running bool
	started time.Time // when Start came
	now     time.Time

	role     Role
	epoch    uint64
	since    time.Time // when the role last changed (or start)
	changed  bool      // a role change happened since start (for dwell)
	last     Transition
	hold     bool // an operator demoted this node
	waiting  string
	autoProm []time.Time // automatic promotions within the last hour

	// Own health, damped.
	health       Health
	okRun, bdRun int
	healthDetail string

	// The peer.
	peerSeen     bool
	lastHeard    time.Time // last heartbeat or PeerSeen; zero: never
	peerHB       bool      // a heartbeat was received
	peerRole     Role
	peerEpoch    uint64
	peerHealth   Health
	peerHold     bool
	peerPriority int
	// peerWasPrimary: the peer was primary at some time since start.
	peerWasPrimary bool
	peerAddress    string

	// The raft leadership (witness mode).
	leaderKnown bool
	leader      string
	leaderTerm  uint64
	isLeader    bool
	transferAt  time.Time // when this node last asked to hand leadership over

	peerCheckKnown bool
	peerCheckOK    bool
	peerCheckWhy   string

	dns      []string // what this node last pointed DNS at
	served   []string // what this node's own DNS server answers
	readOnly bool
}

// NewMachine returns a machine for p that resumes from the persisted epoch.
// It starts as standby whatever role it had (see the package doc) and does
// nothing until Start.
func NewMachine(p Params, st Persisted) *Machine {
	return &Machine{p: p, epoch: st.Epoch, role: Standby}
}

// Role returns the current role and epoch.
func (m *Machine) Role() (Role, uint64) { return m.role, m.epoch }

// Hold reports whether an operator demoted this node (the peer must not
// elect it).
func (m *Machine) Hold() bool { return m.hold }

// Health returns the damped verdict of this node's own checks.
func (m *Machine) Health() Health { return m.health }

// MachineStatus is what the machine knows, for `tandem status`.
type MachineStatus struct {
	// Primary is the node primary as far as this node knows: itself, or
	// the peer while it is alive and says so; "" when none is known.
	Primary string    `json:"primary"`
	Role    Role      `json:"role"`
	Epoch   uint64    `json:"epoch"`
	Since   time.Time `json:"since"`
	// LastTransition is the last role change ("" reason before any).
	LastTransition Transition `json:"last_transition"`
	// Waiting says why a standby does not promote, "" when nothing holds
	// it back (or it is primary).
	Waiting string `json:"waiting"`
	// Hold: an operator demoted this node; it is not elected while the
	// peer lives.
	Hold         bool     `json:"hold"`
	Healthy      bool     `json:"healthy"`
	Health       Health   `json:"health"`
	HealthDetail string   `json:"health_detail"`
	DNS          []string `json:"dns"`
	// Serving is what this node's own DNS server answers (serve mode).
	Serving   []string `json:"serving"`
	ReadOnly  bool     `json:"read_only"`
	PeerSeen  bool     `json:"peer_seen"`
	PeerAlive bool     `json:"peer_alive"`
	// LastHeard is when the peer was last heard from.
	LastHeard   time.Time `json:"last_heard"`
	PeerRole    string    `json:"peer_role"` // "" until a heartbeat arrived
	PeerEpoch   uint64    `json:"peer_epoch"`
	PeerHealthy bool      `json:"peer_healthy"`
	PeerHealth  string    `json:"peer_health"` // "" until a heartbeat arrived
	// PeerCheck is "ok", "fail: why" or "" (not configured or no result).
	PeerCheck string `json:"peer_check"`
	// AutoFailovers counts automatic promotions in the last hour.
	AutoFailovers int `json:"auto_failovers_last_hour"`
	// Witness mode: the raft leader ("" when none is known) and its term.
	Witness    bool   `json:"witness"`
	Leader     string `json:"leader"`
	LeaderTerm uint64 `json:"leader_term"`
}

// Status returns what the machine knows.
func (m *Machine) Status() MachineStatus {
	s := MachineStatus{
		Role: m.role, Epoch: m.epoch, Since: m.since, LastTransition: m.last, Waiting: m.waiting,
		Hold: m.hold, Healthy: m.health == HealthUp, Health: m.health, HealthDetail: m.healthDetail, DNS: slices.Clone(m.dns),
		Serving:  slices.Clone(m.served),
		ReadOnly: m.readOnly, PeerSeen: m.peerSeen, PeerAlive: m.peerAlive(), LastHeard: m.lastHeard,
		PeerEpoch: m.peerEpoch, PeerHealthy: m.peerHB && m.peerHealth == HealthUp, AutoFailovers: m.recentAuto(),
		Witness: m.p.Witness, Leader: m.leader, LeaderTerm: m.leaderTerm,
	}
	if m.peerHB {
		s.PeerRole = m.peerRole.String()
		s.PeerHealth = m.peerHealth.String()
	}
	switch {
	case m.role == Primary:
		s.Primary = m.p.Node
	case m.peerAlive() && m.peerHB && m.peerRole == Primary:
		s.Primary = m.p.Peer
	}
	if m.p.PeerCheck && m.peerCheckKnown {
		s.PeerCheck = "ok"
		if !m.peerCheckOK {
			s.PeerCheck = "fail: " + m.peerCheckWhy
		}
	}
	return s
}

// Step feeds one event to the machine and returns the actions to carry
// out, in order. The error is non-nil for an event the machine refuses: a
// stale or foreign heartbeat, or an operator command it will not carry out
// (wrapping ErrRefused); the actions are then empty.
func (m *Machine) Step(ev Event) ([]Action, error) {
	if t := ev.at(); t.After(m.now) {
		m.now = t
	}
	if _, ok := ev.(Start); !ok && !m.running {
		return nil, errors.New("failover: event before Start")
	}
	var acts []Action
	switch e := ev.(type) {
	case Start:
		if m.running {
			return nil, errors.New("failover: Start twice")
		}
		m.running = true
		m.since = m.now
		m.started = m.now
		if m.p.Force {
			// Skip wait_for_all (decide still gives the peer dead_after
			// to show up before counting it as dead).
			m.peerSeen = true
		}
		m.readOnly = true
		acts = append(acts, SetReadOnly{On: true})
	case Tick:
	case PeerSeen:
		m.peerSeen = true
		m.lastHeard = m.now
	case PeerHeartbeat:
		a, err := m.heartbeat(e)
		if err != nil {
			return nil, err
		}
		acts = append(acts, a...)
	case HealthResult:
		m.checked(e)
	case PeerCheckResult:
		m.peerCheckKnown, m.peerCheckOK, m.peerCheckWhy = true, e.OK, e.Detail
	case Leadership:
		m.leaderKnown, m.leader, m.leaderTerm, m.isLeader = true, e.Leader, e.Term, e.IsSelf
		if e.Leader == m.p.Peer {
			m.hold = false // the peer took over: an operator's demote is done
		}
	case Operator:
		op := m.operator
		if m.p.Witness {
			op = m.witnessOperator
		}
		a, err := op(e)
		if err != nil {
			return nil, err
		}
		return append(a, m.serveActions()...), nil
	default:
		return nil, fmt.Errorf("failover: unknown event %T", ev)
	}
	acts = append(acts, m.decide()...)
	return append(acts, m.serveActions()...), nil
}

// serveActions updates what this node's own DNS server answers.
func (m *Machine) serveActions() []Action {
	if !m.p.Serve {
		return nil
	}
	var want []string
	switch {
	case m.p.RoundRobin:
		want = m.wantDNS()
	case m.role == Primary:
		want = []string{m.p.Address}
	case m.peerAlive() && m.peerHB && m.peerRole == Primary && m.peerAddress != "":
		want = []string{m.peerAddress}
	}
	if len(want) == 0 || slices.Equal(want, m.served) {
		return nil
	}
	m.served = want
	return []Action{ServeDNS{Addrs: slices.Clone(want)}}
}

func (m *Machine) heartbeat(e PeerHeartbeat) ([]Action, error) {
	if e.From != m.p.Peer {
		return nil, fmt.Errorf("%w %q (the peer is %q)", ErrUnknownPeer, e.From, m.p.Peer)
	}
	// Any heartbeat, even a refused one, shows the peer is alive.
	m.peerSeen = true
	m.lastHeard = m.now
	if m.p.Witness {
		// raft decides the roles; the heartbeat only tells how the peer is.
		m.peerHB = true
		m.peerRole, m.peerEpoch, m.peerHealth, m.peerHold = e.Role, e.Epoch, e.Health, e.Hold
		m.peerPriority, m.peerAddress = e.Priority, e.Address
		return nil, nil
	}
	if e.Role == Primary && e.Epoch < m.epoch {
		m.peerHB, m.peerRole, m.peerEpoch = true, Standby, e.Epoch
		m.peerHealth, m.peerHold, m.peerPriority, m.peerAddress = e.Health, e.Hold, e.Priority, e.Address
		return nil, fmt.Errorf("%w: %s claims primary at epoch %d, ours is %d", ErrStaleEpoch, e.From, e.Epoch, m.epoch)
	}
	m.peerHB = true
	m.peerRole, m.peerEpoch, m.peerHealth, m.peerHold = e.Role, e.Epoch, e.Health, e.Hold
	m.peerPriority, m.peerAddress = e.Priority, e.Address
	m.peerWasPrimary = m.peerWasPrimary || e.Role == Primary
	var acts []Action
	switch {
	case e.Epoch > m.epoch && m.role == Primary:
		acts = m.demote(e.Epoch, fmt.Sprintf("%s is %s at the higher epoch %d", e.From, e.Role, e.Epoch))
	case e.Epoch > m.epoch:
		m.epoch = e.Epoch
		acts = append(acts, Persist{Epoch: m.epoch, Role: m.role})
	case e.Role == Primary && m.role == Primary && !m.winsTie(e.Priority):
		// Same epoch, both primary: the preferred node keeps the role.
		acts = m.demote(m.epoch, fmt.Sprintf("both primary at epoch %d; %s is preferred (priority %d vs our %d, then name)",
			m.epoch, e.From, e.Priority, m.p.Priority))
	}
	if e.Role == Primary && m.role == Standby {
		m.hold = false // the peer took over: an operator's demote is done
	}
	return acts, nil
}

// winsTie reports whether this node is preferred over a peer of priority p.
func (m *Machine) winsTie(p int) bool {
	if m.p.Priority != p {
		return m.p.Priority > p
	}
	return m.p.Node < m.p.Peer
}

func (m *Machine) checked(e HealthResult) {
	if e.OK {
		m.okRun++
		m.bdRun = 0
		if m.health != HealthUp && m.okRun >= m.p.Rise {
			m.health = HealthUp
			m.healthDetail = ""
		}
		return
	}
	m.bdRun++
	m.okRun = 0
	if m.health != HealthDown && m.bdRun >= m.p.Fall {
		m.health = HealthDown
	}
	if m.health != HealthUp || m.healthDetail == "" {
		m.healthDetail = e.Detail
	}
}

// PeerDeadline returns when the peer will count as dead if nothing more is
// heard from it, or the zero time while it does not count as alive. A
// driver that ticks at that moment acts on the silence without waiting for
// its next regular tick.
func (m *Machine) PeerDeadline() time.Time {
	if !m.peerAlive() {
		return time.Time{}
	}
	return m.lastHeard.Add(m.p.DeadAfter)
}

func (m *Machine) peerAlive() bool {
	return !m.lastHeard.IsZero() && m.now.Sub(m.lastHeard) < m.p.DeadAfter
}

// peerEligible: the peer is alive, healthy and not held by an operator.
func (m *Machine) peerEligible() bool {
	return m.peerAlive() && m.peerHB && m.peerHealth == HealthUp && !m.peerHold
}

// recentAuto counts automatic promotions within the last hour.
func (m *Machine) recentAuto() int {
	n := 0
	for _, t := range m.autoProm {
		if m.now.Sub(t) < time.Hour {
			n++
		}
	}
	return n
}

// damped returns why an automatic change must wait, "" when it may go:
// dwell checks min_dwell, capped the hourly cap on promotions.
func (m *Machine) damped(dwell, capped bool) string {
	if dwell && m.changed && m.now.Sub(m.since) < m.p.MinDwell {
		return fmt.Sprintf("in this role only %v of min_dwell %v", m.now.Sub(m.since).Round(time.Millisecond), m.p.MinDwell)
	}
	if capped && m.p.MaxPerHour > 0 && m.recentAuto() >= m.p.MaxPerHour {
		return fmt.Sprintf("%d automatic failovers in the last hour (max_failovers_per_hour); promote by hand", m.recentAuto())
	}
	return ""
}

// decide applies the automatic rules after an event.
func (m *Machine) decide() []Action {
	m.waiting = ""
	if m.p.Witness {
		return m.decideWitness()
	}
	if m.role == Primary {
		return m.decidePrimary()
	}
	switch {
	case !m.peerSeen:
		m.waiting = fmt.Sprintf("waiting to see %s before taking any role (wait_for_all); `tandem promote --force` if it is gone", m.p.Peer)
		return nil
	case m.health != HealthUp:
		m.waiting = "own checks " + m.health.String()
		if m.healthDetail != "" {
			m.waiting += ": " + m.healthDetail
		}
		return nil
	}
	alive := m.peerAlive()
	var reason string
	switch {
	case !alive:
		silent := "never heard"
		if !m.lastHeard.IsZero() {
			silent = "silent for " + m.now.Sub(m.lastHeard).Round(time.Millisecond).String()
		} else if waited := m.now.Sub(m.started); waited < m.p.DeadAfter {
			// Started with force: give the peer dead_after to show up.
			m.waiting = fmt.Sprintf("started with force; giving %s dead_after (%v) to show up", m.p.Peer, m.p.DeadAfter)
			return nil
		} else {
			silent = "never heard in " + waited.Round(time.Millisecond).String()
		}
		if m.p.PeerCheck && (!m.peerCheckKnown || m.peerCheckOK) {
			m.waiting = fmt.Sprintf("%s is %s on the link but its site still answers (peer_check): only the link is down", m.p.Peer, silent)
			if !m.peerCheckKnown {
				m.waiting = fmt.Sprintf("%s is %s; waiting for a peer_check result", m.p.Peer, silent)
			}
			return nil
		}
		reason = fmt.Sprintf("%s %s (dead_after %v)", m.p.Peer, silent, m.p.DeadAfter)
		if m.p.PeerCheck {
			reason += " and its site fails too (" + m.peerCheckWhy + ")"
		}
	case !m.peerHB:
		m.waiting = "waiting for the first heartbeat of " + m.p.Peer
		return nil
	case m.peerRole == Primary:
		if !m.p.Failback || m.hold || !m.winsTie(m.peerPriority) {
			return nil // the normal standby
		}
		reason = fmt.Sprintf("failback: this node is preferred over %s", m.p.Peer)
	case m.hold:
		m.waiting = "demoted by an operator; `tandem promote` to take the role back"
		return nil
	case m.peerEligible() && !m.winsTie(m.peerPriority):
		m.waiting = fmt.Sprintf("no primary; %s is preferred and takes the role", m.p.Peer)
		return nil
	case m.peerHealth == HealthStarting && !m.peerHold && !m.winsTie(m.peerPriority):
		m.waiting = fmt.Sprintf("no primary; waiting for the verdict of %s's checks (it is preferred)", m.p.Peer)
		return nil
	case m.winsTie(m.peerPriority):
		reason = fmt.Sprintf("no primary and this node is preferred (%s is standby)", m.p.Peer)
	case m.peerHold:
		reason = fmt.Sprintf("no primary and an operator demoted %s", m.p.Peer)
	default:
		reason = fmt.Sprintf("no primary and %s cannot take the role (its checks are %s)", m.p.Peer, m.peerHealth)
	}
	// An election (both in touch, neither primary) does not wait for
	// min_dwell: nobody serves meanwhile, and what made both standby was
	// damped already (a yield waits for min_dwell). A handover after an
	// operator's demote of the peer does not count toward the cap either.
	// Nor does the first election after start, which is no failover.
	election := alive && m.peerRole != Primary
	counted := !election || (!m.peerHold && m.peerWasPrimary)
	if why := m.damped(!election, counted); why != "" {
		m.waiting = "would promote (" + reason + ") but " + why
		return nil
	}
	if counted {
		m.autoProm = slices.DeleteFunc(m.autoProm, func(t time.Time) bool { return m.now.Sub(t) >= time.Hour })
		m.autoProm = append(m.autoProm, m.now)
	}
	return m.promote(reason)
}

func (m *Machine) decidePrimary() []Action {
	var acts []Action
	if m.health == HealthDown {
		if !m.peerEligible() {
			m.waiting = fmt.Sprintf("own checks failing (%s) but %s cannot take over; staying primary", m.healthDetail, m.p.Peer)
		} else if why := m.damped(true, false); why != "" {
			m.waiting = "would yield to " + m.p.Peer + " but " + why
		} else {
			return m.demote(m.epoch, fmt.Sprintf("own checks failing (%s): yielding to %s", m.healthDetail, m.p.Peer))
		}
	}
	return append(acts, m.decidePrimaryDNS()...)
}

// wantDNS is what the primary points the names at.
func (m *Machine) wantDNS() []string {
	if !m.p.RoundRobin {
		return []string{m.p.Address}
	}
	var addrs []string
	if m.health == HealthUp || !m.peerEligible() {
		addrs = append(addrs, m.p.Address)
	}
	if m.peerEligible() && m.peerAddress != "" && m.peerAddress != m.p.Address {
		addrs = append(addrs, m.peerAddress)
	}
	slices.Sort(addrs)
	return addrs
}

func (m *Machine) promote(reason string) []Action {
	return m.promoteAt(max(m.epoch, m.peerEpoch)+1, reason)
}

func (m *Machine) promoteAt(epoch uint64, reason string) []Action {
	m.epoch = epoch
	m.transition(Primary, reason)
	m.hold = false
	m.dns = m.wantDNS()
	m.readOnly = false
	acts := []Action{
		Persist{Epoch: m.epoch, Role: Primary},
		BecomePrimary{Epoch: m.epoch, Reason: reason},
		SetReadOnly{On: false},
		PointDNS{Addrs: slices.Clone(m.dns)},
		SendHeartbeat{},
	}
	if m.p.OnPromote != "" {
		acts = append(acts, RunHook{Cmd: m.p.OnPromote, Role: Primary, Epoch: m.epoch})
	}
	return acts
}

func (m *Machine) demote(epoch uint64, reason string) []Action {
	m.epoch = max(m.epoch, epoch)
	m.transition(Standby, reason)
	m.dns = nil
	m.readOnly = true
	acts := []Action{
		Persist{Epoch: m.epoch, Role: Standby},
		BecomeStandby{Epoch: m.epoch, Reason: reason},
		SetReadOnly{On: true},
		SendHeartbeat{},
	}
	if m.p.OnDemote != "" {
		acts = append(acts, RunHook{Cmd: m.p.OnDemote, Role: Standby, Epoch: m.epoch})
	}
	return acts
}

func (m *Machine) transition(to Role, reason string) {
	m.last = Transition{At: m.now, From: m.role, To: to, Epoch: m.epoch, Reason: reason}
	m.role = to
	m.since = m.now
	m.changed = true
	m.waiting = ""
}

func (m *Machine) operator(e Operator) ([]Action, error) {
	switch e.Op {
	case OpPromote:
		if m.role == Primary {
			return nil, fmt.Errorf("%w: already primary at epoch %d", ErrRefused, m.epoch)
		}
		if !e.Force {
			if m.health != HealthUp {
				detail := m.healthDetail
				if detail == "" {
					detail = "not up yet"
				}
				return nil, fmt.Errorf("%w: this node's own checks fail (%s); fix them, or use --force to promote anyway", ErrRefused, detail)
			}
			if !m.peerAlive() {
				return nil, fmt.Errorf("%w: %s is not reachable and may still be primary; if you are sure it is down or cut off from clients, use --force", ErrRefused, m.p.Peer)
			}
		}
		m.peerSeen = true // an operator's word ends wait_for_all
		why := "operator: tandem promote"
		if e.Force {
			why += " --force"
		}
		return m.promote(why), nil
	case OpDemote:
		if m.role == Standby {
			return nil, fmt.Errorf("%w: already standby at epoch %d", ErrRefused, m.epoch)
		}
		if !e.Force && !m.peerEligible() {
			return nil, fmt.Errorf("%w: %s is not alive and healthy, so no node would be primary; fix it first, or use --force to leave the site without a primary", ErrRefused, m.p.Peer)
		}
		why := "operator: tandem demote"
		if e.Force {
			why += " --force"
		}
		acts := m.demote(m.epoch, why)
		m.hold = true
		return acts, nil
	}
	return nil, fmt.Errorf("%w: unknown operator command %d", ErrRefused, e.Op)
}
