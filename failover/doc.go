// Package failover decides which node is primary and makes DNS follow.
//
// It owns heartbeats as a health signal, health checks, the witness, the
// role/epoch state machine (pure: events in, actions out, injected clock),
// DNS updaters (RFC 2136 client and an embedded authoritative server), MySQL
// read_only switching and operator promote/demote.
//
// Not built yet: this package holds no code until the failover issue lands.
package failover
