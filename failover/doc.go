// Package failover decides which node is primary and makes DNS follow.
//
// It owns heartbeats as a health signal, health checks of this node's own
// service, the role/epoch state machine, MySQL read_only switching, operator
// promote/demote, and the runner that drives them. The DNS updaters (RFC 2136
// client, embedded authoritative server) live in failover/dns and the raft
// voter for the witness in failover/quorum; this package only needs their
// small interfaces (DNSPointer, Quorum). It does not own the SSH link (pipe)
// nor the control socket (cmd/tandem).
//
// # Data flow
//
// The decisions are a pure state machine, Machine: events in, actions out,
// no I/O, no goroutines, no clock (every event carries its time).
//
//	events                                  Machine                  actions
//	Start, Tick(now)                  ─┐                         ┌─ Persist{epoch, role}
//	PeerSeen (first contact)           │                         ├─ BecomePrimary / BecomeStandby{epoch, reason}
//	PeerHeartbeat{from, epoch, role,   ├─> Step(ev) ([]Action) ─>├─ SetReadOnly{on}
//	  health, priority, ...}           │                         ├─ PointDNS{addrs}
//	HealthResult{ok} PeerCheckResult   │                         ├─ RunHook{cmd}
//	Operator{promote|demote, force}    │                         ├─ SendHeartbeat
//	Leadership{leader, term} (witness)─┘                         └─ TransferLeadership{to} (witness)
//
// Runner is the thin executor around it. One goroutine owns the machine and
// serves, from one select loop: a ticker, heartbeats received over the pipe
// (stream kind "failover"), results of the health check loop and of the
// peer_check loop, the quorum's leadership events, and operator commands
// from the control socket. It executes the actions in order: the epoch is
// written to state_dir/failover.json (atomically: temp, fsync, rename,
// fsync dir) before anything acts on it; read_only and DNS are handed to an
// applier goroutine that sets read_only first, then DNS, retrying each
// until it succeeds, so a slow name server never delays heartbeats; hooks
// run one at a time in their own goroutine (sh -c with TANDEM_ROLE,
// TANDEM_EPOCH, TANDEM_NODE, TANDEM_PEER); a fresh heartbeat goes out at
// once. A failure to persist the epoch ends Run with an error: a node that
// cannot keep its epoch must not keep a role.
//
// Each node sends heartbeats on a stream it opens over its own outbound
// session; the peer's handler receives them. A heartbeat carries the
// node's name, epoch, role, the damped verdict of its checks (starting, up,
// down), its priority, its address and whether an operator demoted it.
//
// # Roles and epochs
//
// A role carries an epoch, a counter persisted in the state dir. Every
// promotion bumps it past any epoch this node has heard of; a node adopts a
// higher epoch it hears in a heartbeat. A claim of the primary role made
// with an epoch lower than ours is refused (ErrStaleEpoch), and a primary
// that hears any higher epoch steps down: someone promoted after it. When
// both claim primary with the same epoch, the higher priority wins, then
// the smaller node name ("alpha" before "beta"); the loser demotes at once.
//
// # When a node promotes by itself
//
//   - Start: a node always starts as standby and stays so until it has seen
//     its peer (like corosync's wait_for_all), unless started with force.
//   - Peer death: the standby promotes when the peer has been silent for
//     dead_after, its own checks are up, and peer_check (when set) fails
//     too.
//   - Both standby and in touch (both just started, or the primary yielded
//     or was demoted): the preferred eligible node promotes; a node is
//     eligible when its checks are up and an operator did not demote it.
//     While the preferred peer's checks have no verdict yet (it just
//     started), the other waits for it, so that two nodes started at once
//     end with exactly one primary.
//   - Failback only with failback = true: a healthy standby that the
//     preference favours takes the role back from a live primary. By
//     default a recovered node stays standby until `tandem promote`.
//
// A primary whose own checks fail yields the role (demotes) when the peer
// is alive and healthy, which then promotes as above; with no healthy peer
// to take over it stays primary and says so in its status.
//
// # Flap damping
//
// Checks count as up after rise consecutive successes and as down after
// fall consecutive failures (rise > fall: slow to trust, quick to doubt);
// before either, a node's health is "starting". A promotion on the peer's
// silence, a failback and a yield on failing checks wait until the node has
// held its role for min_dwell, and at most max_failovers_per_hour automatic
// promotions happen in any hour. An election (both nodes in touch, neither
// primary) waits for no min_dwell, since nobody serves meanwhile; it
// counts toward the cap unless it is the first since start or follows an
// operator's demote of the peer. Safety demotions (a higher epoch, losing a
// dual-primary tie) and operator commands are never delayed.
//
// # Partitions without a witness
//
// Without a witness the standby cannot tell a dead primary from a cut
// link. peer_check narrows the gap: it fetches the peer's site over the
// public network, and while that answers a silent link only means the link
// is down, so the standby stays standby. When both the link and the
// peer_check path fail while the primary still serves some clients, both
// nodes serve for a while (split brain). No data is lost: writes on both
// sides are journaled and replicate, with conflicts resolved, once the link
// heals; the node with the lower epoch then demotes as soon as it hears the
// other. DNS updates carry a prerequisite (replace only if the name still
// points at the old primary), which keeps the records from flapping.
//
// A witness closes the gap: see witness.go. With a witness configured, the
// raft quorum of failover/quorum decides who leads (the raft term is the
// epoch), and the machine follows its Leadership events instead of the
// silence rule; a primary cut off from both its peer and the witness loses
// the leadership and demotes itself.
package failover
