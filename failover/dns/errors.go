package dns

import (
	"fmt"

	"github.com/miekg/dns"
)

// ServerError is a name server's refusal of a query or an update, decoded.
// Its message says what to fix.
type ServerError struct {
	Op     string // "query", "update" or "probe"
	Server string // host:port asked
	Zone   string
	Name   string // the name queried or changed; "" for a probe
	Key    string // the TSIG key name used; "" when unsigned
	// Rcode is the response code (dns.RcodeRefused, dns.RcodeNotAuth...).
	Rcode int
	// TSIGError is the TSIG error the server reported (dns.RcodeBadSig,
	// dns.RcodeBadKey, dns.RcodeBadTime), or 0.
	TSIGError uint16
}

// Contended reports whether the error is a failed compare-and-swap
// prerequisite: the records changed since they were read.
func (e *ServerError) Contended() bool {
	return e.TSIGError == 0 && (e.Rcode == dns.RcodeNXRrset || e.Rcode == dns.RcodeYXRrset)
}

func (e *ServerError) Error() string {
	what := "dns " + e.Op
	if e.Name != "" {
		what += " " + e.Name
	}
	return fmt.Sprintf("%s at %s: %s: %s", what, e.Server, e.Code(), e.Hint())
}

// Code is the error's mnemonic, the TSIG error when there is one
// ("BADSIG"), else the rcode ("REFUSED").
func (e *ServerError) Code() string {
	switch e.TSIGError {
	case 0:
	case dns.RcodeBadSig:
		return "BADSIG"
	case dns.RcodeBadKey:
		return "BADKEY"
	case dns.RcodeBadTime:
		return "BADTIME"
	case dns.RcodeBadTrunc:
		return "BADTRUNC"
	default:
		return fmt.Sprintf("TSIG error %d", e.TSIGError)
	}
	if s, ok := dns.RcodeToString[e.Rcode]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", e.Rcode)
}

// Hint says what the operator should do about the error.
func (e *ServerError) Hint() string {
	key := e.Key
	if key == "" {
		key = "tandem-key."
	}
	grant := fmt.Sprintf("update-policy { grant %s zonesub ANY; };", key)
	switch e.TSIGError {
	case 0:
	case dns.RcodeBadSig:
		return fmt.Sprintf("the secret in tsig_secret_file does not match the server's key %s: copy the secret from the server's key block", key)
	case dns.RcodeBadKey:
		return fmt.Sprintf("the server does not know key %s (or knows it with another algorithm): add `key \"%s\" { algorithm hmac-sha256; secret \"...\"; };` to named.conf and `%s` to zone %s, or fix tsig_key", key, key, grant, e.Zone)
	case dns.RcodeBadTime:
		return fmt.Sprintf("the clocks of this host and %s differ by more than %d s: run NTP (chrony or systemd-timesyncd) on both", e.Server, tsigFudge)
	default:
		return "the server rejected the TSIG signature"
	}
	switch e.Rcode {
	case dns.RcodeNotAuth:
		if e.Key == "" {
			return fmt.Sprintf("the server is not authoritative for zone %s, or wants signed updates: point update at the zone's primary and set tsig_key", e.Zone)
		}
		return fmt.Sprintf("the server is not authoritative for zone %s or does not accept key %s: point update at the zone's primary, and add `%s` to the zone", e.Zone, key, grant)
	case dns.RcodeRefused:
		if e.Op == "query" {
			return fmt.Sprintf("the server refuses to answer for zone %s: is it the zone's primary, and does allow-query admit this host?", e.Zone)
		}
		return fmt.Sprintf("the server refuses updates to these names with key %s: add `%s` to zone %s (or allow-update { key %s; };), and make sure the zone is a primary zone there", key, grant, e.Zone, key)
	case dns.RcodeNotZone:
		return fmt.Sprintf("a name is not inside zone %s on that server: check zone and names", e.Zone)
	case dns.RcodeServerFailure:
		return "the server failed to process it: see its log (is the zone loaded? can it write the zone's journal file?)"
	case dns.RcodeNotImplemented:
		return "the server does not implement dynamic update: use a primary that does (BIND, Knot, PowerDNS)"
	case dns.RcodeFormatError:
		return "the server could not parse the request"
	case dns.RcodeNXRrset, dns.RcodeYXRrset:
		return "the records changed since they were read (compare-and-swap prerequisite failed)"
	case dns.RcodeNameError:
		return "the name does not exist"
	}
	return "unexpected answer"
}
