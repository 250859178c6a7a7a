package dns

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// UpdaterOptions configure an Updater.
type UpdaterOptions struct {
	// Server is the host:port of the zone's primary name server, the one
	// that accepts updates; the port defaults to 53.
	Server string
	// Zone is the zone the names live in, e.g. "example.test.".
	Zone string
	// Names are the names to point, each inside Zone.
	Names []string
	// TTL of the records written; default 30 s.
	TTL int
	// TSIGKey is the key's name as the server knows it ("tandem-key.").
	// Empty together with TSIGSecret: updates go unsigned (only for a
	// server that allows updates by address).
	TSIGKey string
	// TSIGSecret is the key's base64 secret (see ReadSecretFile).
	TSIGSecret string
	// TSIGAlgorithm is e.g. "hmac-sha256" (the default) or "hmac-sha512".
	TSIGAlgorithm string
	// Timeout bounds the connect and each round trip with the server (a
	// batch of pipelined requests); default 5 s.
	Timeout time.Duration
	// Retries is how often a compare-and-swap lost to a concurrent change
	// is read again and retried before Point gives up; default 3.
	Retries int
	// Log receives one line per change; default: nothing.
	Log *zap.Logger
	// Now is the clock TSIG signatures are dated with; default time.Now.
	Now func() time.Time
}

// Defaults of UpdaterOptions.
const (
	DefaultTTL       = 30
	DefaultTimeout   = 5 * time.Second
	DefaultRetries   = 3
	DefaultAlgorithm = "hmac-sha256"
	tsigFudge        = 300
)

// ErrContended is returned (wrapped) by Point when the records kept changing
// between our read and our update: something else is updating the same
// names (another tandem, an operator, a second updater).
var ErrContended = errors.New("records changed by someone else between read and update on every attempt")

// Updater points names at addresses by RFC 2136 dynamic update, with a
// compare-and-swap guard. Its methods may be called concurrently, though the
// runner calls Point from one goroutine.
type Updater struct {
	server  string
	zone    string
	names   []string
	ttl     uint32
	key     string // fqdn; "" when unsigned
	alg     string // fqdn
	retries int
	timeout time.Duration
	secret  string // base64; "" when unsigned
	log     *zap.Logger
	now     func() time.Time

	// beforeUpdate, when set (by tests), runs between the read of the
	// names and the update sent for those that need changing.
	beforeUpdate func(names []string)
}

// NewUpdater checks the options and returns an Updater. It does not
// contact the server; Probe does.
func NewUpdater(o UpdaterOptions) (*Updater, error) {
	u := &Updater{log: o.Log, now: o.Now, retries: o.Retries}
	if u.log == nil {
		u.log = zap.NewNop()
	}
	if u.now == nil {
		u.now = time.Now
	}
	if u.retries <= 0 {
		u.retries = DefaultRetries
	}
	server, err := hostPort(o.Server)
	if err != nil {
		return nil, fmt.Errorf("dns update server: %w", err)
	}
	u.server = server
	zone, names, err := zoneNames(o.Zone, o.Names)
	if err != nil {
		return nil, err
	}
	u.zone, u.names = zone, names
	switch {
	case o.TTL < 0:
		return nil, fmt.Errorf("dns ttl %d: must not be negative", o.TTL)
	case o.TTL == 0:
		u.ttl = DefaultTTL
	default:
		u.ttl = uint32(o.TTL)
	}
	if (o.TSIGKey == "") != (o.TSIGSecret == "") {
		return nil, errors.New("dns tsig: set both tsig_key and tsig_secret_file, or neither")
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	u.timeout = timeout
	if o.TSIGKey != "" {
		if _, err := base64.StdEncoding.DecodeString(o.TSIGSecret); err != nil {
			return nil, fmt.Errorf("dns tsig secret for %s is not base64: %w", o.TSIGKey, err)
		}
		u.key = dns.CanonicalName(o.TSIGKey)
		alg := o.TSIGAlgorithm
		if alg == "" {
			alg = DefaultAlgorithm
		}
		u.alg = dns.CanonicalName(alg)
		switch u.alg {
		case dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512:
		default:
			return nil, fmt.Errorf("dns tsig algorithm %q: use hmac-sha256 (or hmac-sha1/224/384/512)", alg)
		}
		u.secret = o.TSIGSecret
	}
	return u, nil
}

// hostPort checks a host:port, adding port 53 when it is missing.
func hostPort(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty: set update = \"host:port\" of the zone's primary name server")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && strings.Contains(ae.Err, "missing port") {
			return net.JoinHostPort(strings.Trim(s, "[]"), "53"), nil
		}
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if host == "" || port == "" {
		return "", fmt.Errorf("%q: want host:port", s)
	}
	return s, nil
}

// zoneNames canonicalises the zone and the names and checks each name lies
// inside the zone.
func zoneNames(zone string, names []string) (string, []string, error) {
	if zone == "" {
		return "", nil, errors.New("dns zone: empty")
	}
	if _, ok := dns.IsDomainName(zone); !ok {
		return "", nil, fmt.Errorf("dns zone %q: not a domain name", zone)
	}
	zone = dns.CanonicalName(zone)
	if len(names) == 0 {
		return "", nil, errors.New("dns names: empty: list the names to point, e.g. [\"www." + zone + "\"]")
	}
	var out []string
	for _, n := range names {
		if _, ok := dns.IsDomainName(n); !ok || n == "" {
			return "", nil, fmt.Errorf("dns name %q: not a domain name", n)
		}
		c := dns.CanonicalName(n)
		if !dns.IsSubDomain(zone, c) {
			return "", nil, fmt.Errorf("dns name %s is outside zone %s", c, zone)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return zone, out, nil
}

// addrSet is a name's addresses split by family, each sorted and unique.
type addrSet struct {
	v4, v6 []string
}

// parseAddrs checks addrs are IP addresses and splits them by family.
func parseAddrs(addrs []string) (addrSet, error) {
	var s addrSet
	if len(addrs) == 0 {
		return s, errors.New("no addresses to point at")
	}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil || ip.Zone() != "" {
			return s, fmt.Errorf("address %q: not an IP address", a)
		}
		ip = ip.Unmap()
		if ip.Is4() {
			s.v4 = append(s.v4, ip.String())
		} else {
			s.v6 = append(s.v6, ip.String())
		}
	}
	s.v4 = sortUnique(s.v4)
	s.v6 = sortUnique(s.v6)
	return s, nil
}

func sortUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func (s addrSet) all() []string { return append(slices.Clone(s.v4), s.v6...) }

// current is what the server holds for one name.
type current struct {
	rrs  []dns.RR // the A and AAAA records, as read
	addr addrSet
	ttls []uint32
}

func (c current) has(typ uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range c.rrs {
		if rr.Header().Rrtype == typ {
			out = append(out, rr)
		}
	}
	return out
}

// Point makes every name answer exactly addrs (IPv4 as A, IPv6 as AAAA)
// with the configured TTL, all names in one atomic update: either every
// name is changed or none is. Names that already answer addrs are left out,
// and when none is left no update is sent. The update is guarded by the
// values just read; a lost race is read again and retried.
//
// On one TCP connection it costs a handshake plus three round trips: the
// pipelined reads, the update, and the pipelined read-back that confirms.
func (u *Updater) Point(ctx context.Context, addrs []string) error {
	want, err := parseAddrs(addrs)
	if err != nil {
		return fmt.Errorf("dns point: %w", err)
	}
	for attempt := 1; ; attempt++ {
		done, err := u.pointOnce(ctx, want, attempt)
		if done || err != nil {
			return err
		}
		if attempt > u.retries {
			return fmt.Errorf("dns update at %s after %d attempts: %w", u.server, attempt, ErrContended)
		}
		if err := sleepCtx(ctx, time.Duration(attempt)*20*time.Millisecond); err != nil {
			return fmt.Errorf("dns update at %s: %w", u.server, err)
		}
	}
}

// pointOnce is one compare-and-swap; done false with a nil error means the
// race was lost and the caller should try again.
func (u *Updater) pointOnce(ctx context.Context, want addrSet, attempt int) (done bool, err error) {
	s, err := u.dial(ctx)
	if err != nil {
		return false, err
	}
	defer s.Close()
	cur, err := s.read(ctx, u.names)
	if err != nil {
		return false, err
	}
	var change []string
	for _, name := range u.names {
		if !u.matches(cur[name], want) {
			change = append(change, name)
		}
	}
	if len(change) == 0 {
		u.log.Debug("dns names already point there", zap.Strings("names", u.names), zap.Strings("addrs", want.all()))
		return true, nil
	}
	if u.beforeUpdate != nil {
		u.beforeUpdate(change)
	}
	err = s.swap(ctx, change, cur, want)
	var se *ServerError
	if errors.As(err, &se) && se.Contended() {
		u.log.Info("dns names changed by someone else between read and update; reading again",
			zap.Strings("names", change), zap.Int("attempt", attempt))
		return false, nil
	}
	if err != nil {
		return false, err
	}
	after, err := s.read(ctx, change)
	if err != nil {
		return false, fmt.Errorf("dns update at %s: reading back: %w", u.server, err)
	}
	for _, name := range change {
		got := after[name].addr
		if !slices.Equal(got.v4, want.v4) || !slices.Equal(got.v6, want.v6) {
			return false, fmt.Errorf("dns update %s at %s: accepted, but the name now answers %v instead of %v: does the server rewrite updates?",
				name, u.server, got.all(), want.all())
		}
		u.log.Info("dns name pointed", zap.String("name", name),
			zap.Strings("from", cur[name].addr.all()), zap.Strings("to", want.all()), zap.Int("attempt", attempt))
	}
	return true, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *Updater) matches(cur current, want addrSet) bool {
	if !slices.Equal(cur.addr.v4, want.v4) || !slices.Equal(cur.addr.v6, want.v6) {
		return false
	}
	for _, t := range cur.ttls {
		if t != u.ttl {
			return false
		}
	}
	return len(cur.rrs) == len(want.v4)+len(want.v6) // no duplicates hiding
}

// swap sends one update for names, each guarded by what was read.
func (s *session) swap(ctx context.Context, names []string, cur map[string]current, want addrSet) error {
	m := new(dns.Msg)
	m.SetUpdate(s.u.zone)
	for _, name := range names {
		for _, typ := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if have := cur[name].has(typ); len(have) > 0 {
				prereq := make([]dns.RR, len(have))
				for i, rr := range have {
					prereq[i] = dns.Copy(rr)
				}
				m.Used(prereq) // RFC 2136 §2.4.2: the rrset is exactly these values
			} else {
				m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: typ}}}) // §2.4.3
			}
		}
		m.RemoveRRset([]dns.RR{
			&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA}},
			&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA}},
		})
		m.Insert(s.u.records(name, want))
	}
	what := names[0]
	if len(names) > 1 {
		what = strings.Join(names, ", ")
	}
	_, err := s.exchange(ctx, "update", []string{what}, []*dns.Msg{m}, false)
	return err
}

func (u *Updater) records(name string, want addrSet) []dns.RR {
	var rrs []dns.RR
	for _, a := range want.v4 {
		rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: u.ttl}, A: net.ParseIP(a).To4()})
	}
	for _, a := range want.v6 {
		rrs = append(rrs, &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: u.ttl}, AAAA: net.ParseIP(a)})
	}
	return rrs
}

// read asks the server for the A and AAAA rrsets of names, all queries
// pipelined.
func (s *session) read(ctx context.Context, names []string) (map[string]current, error) {
	var msgs []*dns.Msg
	var qnames []string
	for _, name := range names {
		for _, typ := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m := new(dns.Msg)
			m.SetQuestion(name, typ)
			m.RecursionDesired = false
			msgs = append(msgs, m)
			qnames = append(qnames, name)
		}
	}
	answers, err := s.exchange(ctx, "query", qnames, msgs, true)
	if err != nil {
		return nil, err
	}
	out := make(map[string]current, len(names))
	for i, r := range answers {
		name := qnames[i]
		cur := out[name]
		if err := s.collect(&cur, name, r); err != nil {
			return nil, err
		}
		out[name] = cur
	}
	for name, cur := range out {
		cur.addr.v4 = sortUnique(cur.addr.v4)
		cur.addr.v6 = sortUnique(cur.addr.v6)
		out[name] = cur
	}
	return out, nil
}

// collect adds the A/AAAA records of one answer to cur.
func (s *session) collect(cur *current, name string, r *dns.Msg) error {
	u := s.u
	if !r.Authoritative {
		return fmt.Errorf("dns query %s at %s: the answer is not authoritative: point update at the primary name server of %s", name, u.server, u.zone)
	}
	for _, rr := range r.Answer {
		h := rr.Header()
		if !strings.EqualFold(h.Name, name) {
			continue
		}
		switch v := rr.(type) {
		case *dns.A:
			cur.rrs = append(cur.rrs, rr)
			cur.addr.v4 = append(cur.addr.v4, v.A.String())
			cur.ttls = append(cur.ttls, h.Ttl)
		case *dns.AAAA:
			cur.rrs = append(cur.rrs, rr)
			cur.addr.v6 = append(cur.addr.v6, v.AAAA.String())
			cur.ttls = append(cur.ttls, h.Ttl)
		case *dns.CNAME:
			return fmt.Errorf("dns name %s is a CNAME to %s at %s: remove the CNAME so tandem can keep A/AAAA records there", name, v.Target, u.server)
		}
	}
	return nil
}

// Current returns the addresses each name answers now at the server.
func (u *Updater) Current(ctx context.Context) (map[string][]string, error) {
	s, err := u.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	cur, err := s.read(ctx, u.names)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(cur))
	for name, c := range cur {
		out[name] = c.addr.all()
	}
	return out, nil
}

// Probe tests that the server would accept our updates, without changing
// the zone: it sends one signed update whose prerequisite is true (the
// zone's SOA exists) and whose only changes delete the records "A 0.0.0.0"
// and "AAAA ::" at each name, which no site has, so they are no-ops that
// still pass the server's update policy for A/AAAA at those names. Errors
// are *ServerError saying what to fix.
func (u *Updater) Probe(ctx context.Context) error {
	m := new(dns.Msg)
	m.SetUpdate(u.zone)
	m.RRsetUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: u.zone, Rrtype: dns.TypeSOA}}})
	for _, name := range u.names {
		m.Remove([]dns.RR{
			&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA}, A: net.IPv4zero.To4()},
			&dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA}, AAAA: net.IPv6zero},
		})
	}
	s, err := u.dial(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.exchange(ctx, "probe", []string{""}, []*dns.Msg{m}, false)
	return err
}

func (u *Updater) transportError(op, name string, err error) error {
	what := "dns " + op
	if name != "" {
		what += " " + name
	}
	var ne net.Error
	switch {
	case errors.Is(err, dns.ErrSig):
		return fmt.Errorf("%s at %s: the answer's TSIG signature does not verify: the secret in tsig_secret_file does not match the server's key %s: %w", what, u.server, u.key, err)
	case errors.Is(err, dns.ErrTime):
		return fmt.Errorf("%s at %s: the answer's TSIG time is off: clocks differ by more than %d s; run NTP (chrony or systemd-timesyncd) on both hosts: %w", what, u.server, tsigFudge, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%s at %s: %w", what, u.server, err)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s at %s: no answer within %s: check update = host:port and that the name server accepts TCP from this host: %w", what, u.server, u.timeout, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s at %s: connection refused: is the name server running and listening on TCP there?: %w", what, u.server, err)
	}
	return fmt.Errorf("%s at %s: %w", what, u.server, err)
}
