// Package quorum decides, with a witness, which node may be primary: it runs
// hashicorp/raft among three voters (the two nodes and the witness) and
// reports who leads and in which term.
//
// It owns: the raft instance, its log and stable store (raft.db, bbolt) and
// snapshot store in a directory under the state dir, the raft timeouts
// derived from dead_after, a tiny replicated state (the operator's
// preferred primary), leadership transfer, the witness's rule of never
// keeping leadership, and the raft transport's stream layer with an
// adapter that turns an SSH channel into a net.Conn. It does not own the SSH link (pipe opens the channels and hands
// them over), roles, read_only or DNS (package failover consumes Events), nor
// the two-node case: with no witness configured there is no quorum of
// independent voters, so New refuses (ErrNoWitness) and the caller uses the
// peer-silence rule of package failover instead.
//
// # Data flow
//
//	pipe (SSH channel)                         quorum
//	  outbound: dial(ctx, "beta") ─ChannelConn─> StreamLayer.Dial  ─┐
//	  inbound:  handler ─ChannelConn─> StreamLayer.Deliver ─Accept─>├─ raft.NetworkTransport ─ raft.Raft
//	                                                                 │        (log, term, vote: raft.db;
//	                                                                 │         snapshots: snapshots/;
//	                                                                 │         FSM: preferred primary)
//	                                                                 └─ control conns: Transfer forwarded
//	                                                                    from a follower to the leader
//	Quorum's loop (one goroutine) watches raft's leader observations and
//	polls its term, and publishes Event{Leader, Term, IsSelf} on Events()
//	(coalesced: a slow reader sees the latest state, never a backlog).
//
// Raft server IDs and addresses are node names ("alpha", "beta",
// "witness"); the dial function maps a name to a new SSH channel to that
// node. Every conn starts with a two-byte header (version, purpose) written
// by Dial and read by Deliver, so raft traffic and forwarded Transfer
// requests share the one channel kind.
//
// # Terms, leaders and roles
//
// The raft term is the failover epoch: a node that leads in term T is the
// only node that can lead in T, and terms only grow, across restarts too
// (raft keeps the current term in raft.db). A node whose Event says IsSelf
// may act as primary with epoch Term; when IsSelf goes false (leadership
// lost because it reached neither its peer nor the witness within the
// leader lease, or transferred) it must demote. An Event naming the witness
// as leader means "no node is primary yet": the witness hands leadership
// over at once.
//
// # Timeouts
//
// TimeoutsFor(dead_after) maps the failover threshold onto raft:
// heartbeat timeout (HT) = election timeout = dead_after/5, leader lease =
// 2/5 HT, transport I/O deadline = HT; the leader sends heartbeats every
// HT/10 to HT/5.
//
// A leader that has heard from no other voter for its lease steps down
// within 2 leases (0.8 HT) of its last contact, before any follower can
// start an election (at least one HT after its own last contact), so an
// old leader has given up before a new one exists as long as the one-way
// delay stays under 0.2 HT (400 ms at the default dead_after of 10s).
//
// A crashed leader is replaced once the survivors' heartbeat timers fire:
// raft re-arms a random timer in [HT, 2HT), so each notices between 1 and 3
// HT after the last contact, and a vote needs both survivors to have
// noticed. Worst case about 3 HT (3/5 dead_after), plus 2 election
// timeouts after a split vote (dead_after in all), plus, when the witness
// wins, HT/5 before it hands over (and an election timeout more if its
// first choice does not take it). Measured on loopback with dead_after
// 10s: a new node leader 4.1-5.2 s after a crash, a cut-off leader down
// after 0.78-0.80 s and the other side leading after 3.3-5.6 s.
//
// # Priority and failback
//
// Priority orders the nodes (higher first, then name). There is no
// automatic failback: a leader keeps leadership while it reaches a quorum,
// whatever its priority. Leadership moves by hand with Transfer, which any
// voter may call (a follower forwards it to the leader); the chosen node is
// recorded in the replicated state as the preferred primary, which
// survives restarts. The witness never keeps leadership: when it wins an
// election it transfers leadership at once to the preferred primary, or
// else to the nodes in priority order, trying the next on failure.
//
// # The witness
//
// `tandem witness` is RunWitness: New with Node set to the witness's name,
// until its context ends. It stores only the raft log (no data, no state
// beyond the preference), votes, and gives leadership away whenever it gets
// it: it waits a fifth of a heartbeat timeout for raft's heartbeats to tell
// which nodes answer, then transfers to the first answering node in the
// order above, and on failure tries the next.
//
// # Plugging in the SSH link
//
// Give NewStreamLayer a DialFunc that opens a new SSH channel (one per
// call; raft pools and reuses them) to the named voter and returns it
// wrapped by ChannelConn(ch, self, peer). On the receiving side, serve that
// channel kind by calling Deliver(ChannelConn(ch, self, peer)) in the
// channel's goroutine; Deliver returns when the conn is done. The witness
// dials the nodes too (it sends votes and, briefly, heartbeats), so each
// link must carry channels both ways, e.g. the witness opening channels
// back over the SSH connection a node made to it.
package quorum
