package failover

import (
	"fmt"
	"slices"
	"time"
)

// Witness mode: with a witness configured, a raft quorum of three voters
// (both nodes and the witness, failover/quorum) decides who leads, and the
// raft term is the epoch. The machine then
//
//   - promotes when this node wins the leadership (epoch = the term, or
//     the persisted epoch if that is higher, e.g. after two-node mode),
//   - demotes at once when it loses it (it reached neither the peer nor
//     the witness within the leader lease, or handed it over),
//   - hands the leadership to the peer (TransferLeadership) when its own
//     checks are down and the peer is healthy, and for `tandem demote`,
//   - asks for it (TransferLeadership to itself) for `tandem promote`.
//
// Heartbeats still tell the peer's health and role (for the hand-over and
// status) but no longer decide roles: no wait_for_all, no dead_after rule,
// no epoch comparison. The hourly cap does not apply either: raft already
// keeps a leader while it reaches a quorum; min_dwell still delays a
// hand-over on failing checks.

// Leadership is the raft quorum's view: who leads, in which term, and
// whether it is this node.
type Leadership struct {
	Now    time.Time
	Leader string // "" when none is known
	Term   uint64
	IsSelf bool
}

// TransferLeadership asks the quorum to make To the leader (and record it
// as the preferred primary). The role changes when the Leadership event
// saying so arrives.
type TransferLeadership struct{ To string }

func (m *Machine) decideWitness() []Action {
	leader := m.leader
	if leader == "" {
		leader = "none known"
	}
	if m.role == Primary {
		if !m.isLeader {
			acts := m.demote(max(m.epoch, m.leaderTerm), fmt.Sprintf("lost the raft leadership (leader: %s, term %d)", leader, m.leaderTerm))
			m.witnessWaiting()
			return acts
		}
		if m.health == HealthDown {
			switch {
			case !m.peerEligible():
				m.waiting = fmt.Sprintf("own checks failing (%s) but %s cannot take over; staying primary", m.healthDetail, m.p.Peer)
			case m.damped(true, false) != "":
				m.waiting = "would hand the leadership to " + m.p.Peer + " but " + m.damped(true, false)
			case !m.transferAt.IsZero() && m.now.Sub(m.transferAt) < m.p.DeadAfter:
				m.waiting = "handing the leadership to " + m.p.Peer
			default:
				m.transferAt = m.now
				m.waiting = "handing the leadership to " + m.p.Peer
				return []Action{TransferLeadership{To: m.p.Peer}}
			}
		}
		return m.decidePrimaryDNS()
	}
	if !m.isLeader {
		m.witnessWaiting()
		return nil
	}
	if m.health != HealthUp && m.peerEligible() {
		// Leading with checks not up: hand over rather than serve broken.
		if m.transferAt.IsZero() || m.now.Sub(m.transferAt) >= m.p.DeadAfter {
			m.transferAt = m.now
			m.waiting = fmt.Sprintf("leading the quorum but own checks are %s: handing the leadership to %s", m.health, m.p.Peer)
			return []Action{TransferLeadership{To: m.p.Peer}}
		}
		return nil
	}
	return m.promoteAt(max(m.epoch, m.leaderTerm), fmt.Sprintf("won the raft leadership in term %d", m.leaderTerm))
}

// decidePrimaryDNS re-points DNS when what the primary wants changed
// (roundrobin, as the peer's health changes).
func (m *Machine) decidePrimaryDNS() []Action {
	if want := m.wantDNS(); !slices.Equal(want, m.dns) {
		m.dns = want
		return []Action{PointDNS{Addrs: slices.Clone(want)}}
	}
	return nil
}

func (m *Machine) witnessOperator(e Operator) ([]Action, error) {
	switch e.Op {
	case OpPromote:
		if m.role == Primary {
			return nil, fmt.Errorf("%w: already primary at epoch %d", ErrRefused, m.epoch)
		}
		if !e.Force && m.health != HealthUp {
			return nil, fmt.Errorf("%w: this node's own checks are %s (%s); fix them, or use --force to promote anyway", ErrRefused, m.health, m.healthDetail)
		}
		m.hold = false
		return []Action{TransferLeadership{To: m.p.Node}}, nil
	case OpDemote:
		if m.role == Standby {
			return nil, fmt.Errorf("%w: already standby at epoch %d", ErrRefused, m.epoch)
		}
		if !m.peerEligible() {
			// raft cannot hand leadership to a node it does not reach,
			// and a leader cannot step down with no one to take over.
			return nil, fmt.Errorf("%w: with a witness, demote hands the raft leadership to %s, which is not alive and healthy; fix it first", ErrRefused, m.p.Peer)
		}
		m.hold = true
		m.transferAt = m.now
		return []Action{TransferLeadership{To: m.p.Peer}}, nil
	}
	return nil, fmt.Errorf("%w: unknown operator command %d", ErrRefused, e.Op)
}

// witnessWaiting says why a standby that does not lead waits.
func (m *Machine) witnessWaiting() {
	switch {
	case !m.leaderKnown || m.leader == "":
		m.waiting = "no raft leader known: this node reaches neither its peer nor the witness, or an election is under way"
	case m.leader != m.p.Peer:
		m.waiting = fmt.Sprintf("the raft leader is %s (term %d); it hands the leadership to a node", m.leader, m.leaderTerm)
	}
}
