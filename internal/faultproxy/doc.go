// Package faultproxy puts network faults between two processes on loopback.
//
// A Proxy listens on 127.0.0.1 and forwards every connection it accepts to one
// target address, adding one-way latency, a bandwidth cap, partitions
// (Blackhole), resets and refused connections on demand. Tests and the
// benchmark command put one in front of each tandem daemon's SSH port because
// this kernel has no netem.
//
// It owns its listener, the connections it accepts and the connections it
// dials to the target. It does not look at the bytes it carries, and it reads
// the wall clock: faults are real delays on real sockets, so tests that use it
// measure lower bounds, not exact times.
//
// The model of the link, per connection and per direction: bytes read from one
// side are paced by the bandwidth cap, stamped with the time they may arrive
// (read time plus the one-way latency) and queued; a writer delivers them in
// order, none before its stamp. The queue holds at most queueBytes, so memory
// stays bounded and a full queue pushes back on the sender through TCP, as a
// full link would. Connection setup is not delayed: a dial through the proxy
// completes at once and only the data that follows pays the latency.
package faultproxy
