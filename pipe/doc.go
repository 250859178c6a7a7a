// Package pipe is the SSH transport between the two tandem peers.
//
// It owns: the embedded SSH server and the persistent client connection to the
// peer, keys (the node's ed25519 key, authorized_keys and known_hosts in
// OpenSSH format), the handshake (protocol version, node names, epoch),
// heartbeats with RTT measurement, reconnect with capped exponential backoff
// and jitter, SSH channels per kind of stream, and the versioned framing and
// message codec spoken on every channel.
//
// It does not own what flows over the streams: file records (watcher),
// row transactions (binlog) and roles (failover) define their own messages
// and register handlers for their stream kinds.
//
// Shape of a link between alpha and beta:
//
//	alpha Node                                beta Node
//	  dialer --- TCP+SSH (alpha is client) ---> server
//	    "tandem-control": Hello/Welcome, Ping/Pong every heartbeat
//	    "tandem-<kind>":  streams opened by alpha, served by beta's Handler
//	  server <--- TCP+SSH (beta is client) ---- dialer
//
// Each node dials its peer and keeps that outbound connection up; what a node
// sends (its changes) travels on its outbound connection, and what it receives
// arrives on the inbound one. The two directions fail and recover
// independently, and a node reports its outbound link in status.
//
// Frames: every message on a channel is one frame,
//
//	uint32 big-endian length of (type + body) | uint8 type | body
//
// Length is bounded by the channel's limit (never allocated before the check).
// Bodies are encoded with Encoder/Decoder: uvarints, length-prefixed bytes and
// strings with explicit limits. The protocol version is exchanged in the
// handshake; a peer whose version range does not overlap ours is refused.
package pipe
