// Package dns makes the site's names point at the live node, in one of two
// ways, both driven by the failover runner through the same call:
//
//	Point(ctx, addrs []string) error // the names answer exactly these A/AAAA addresses
//
// Updater speaks RFC 2136 dynamic update, signed with TSIG (RFC 8945), to
// the operator's primary name server (BIND, Knot, PowerDNS...). Each name
// is changed by compare-and-swap:
//
//	query A and AAAA over TCP (signed) --> the values V the server has now
//	UPDATE: prerequisite "A/AAAA rrsets are exactly V" (RFC 2136 §2.4.2;
//	        "rrset does not exist" when V is empty, §2.4.3)
//	        + delete the A/AAAA rrsets + add addrs
//	NOERROR --> read back once to confirm; NXRRSET/YXRRSET --> someone changed
//	the name in between: read again and retry, a few times, then ErrContended
//
// A name that already points at addrs is left alone, so Point is idempotent
// and cheap to repeat. Refusals are decoded into a *ServerError whose
// message says what to fix (unknown key, wrong secret, clock skew, missing
// update-policy...). Probe sends a signed update whose prerequisite is
// true and whose only change is a no-op, so `tandem check` can test the
// key, the secret, the clock and the update policy without changing the
// zone. ReadSecretFile reads the secret as tsig-keygen prints it.
//
// Server is tandem's own authoritative server for the zone (the `serve`
// setting): UDP and TCP on the same port, SOA and NS (with optional glue)
// at the apex, A/AAAA for the names from an answer set that Point swaps
// atomically (queries take no lock), NODATA and NXDOMAIN with the SOA for
// negative caching, REFUSED outside the zone, no zone transfers, EDNS0,
// truncation over UDP with the full answer over TCP, minimal ANY (RFC
// 8482). Every Point that changes the set raises the SOA serial (the Unix
// time, or one more when the clock has not moved). In roundrobin mode the
// runner passes every healthy node's address, and answers rotate through
// them; in failover mode it passes only the primary's.
//
//	runner --Point(ctx, addrs)--> Server.answer (atomic) <--read-- ServeDNS (UDP, TCP)
//	runner --Point(ctx, addrs)--> Updater --TCP, TSIG--> primary name server
//
// Both Point methods validate addrs (IP addresses, at least one) and return
// an error for bad input; Server.Point never touches the network.
//
// Not here: deciding who is primary (package failover's state machine),
// health checks, and the zone's other records (the embedded server answers
// only for the apex SOA/NS, the names and optional NS glue). Subpackage
// bindtest starts a real BIND9 for tests.
package dns
