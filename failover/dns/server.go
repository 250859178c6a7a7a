package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Addr is where to listen, on UDP and TCP, e.g. "0.0.0.0:53". Port 0
	// picks a port free for both (see Server.Addr).
	Addr string
	// Zone is the zone answered for, e.g. "example.test.".
	Zone string
	// Names are the names that answer with the addresses given to Point,
	// each inside Zone (the apex included).
	Names []string
	// TTL of the A/AAAA answers, and the negative-caching TTL (the SOA
	// minimum); default 30 s.
	TTL int
	// NS are the zone's name servers, as the parent delegates it; default
	// ["ns1.<zone>"]. SOA MNAME is the first.
	NS []string
	// Glue gives the addresses of NS names inside the zone (the nodes
	// themselves, typically), answered as A/AAAA for those names and
	// added to NS answers. An NS name also in Names answers Point's
	// addresses instead.
	Glue map[string][]string
	// Hostmaster is the SOA RNAME; default "hostmaster.<zone>".
	Hostmaster string
	// MaxUDPSize caps UDP answers, whatever size a client offers in EDNS0;
	// it is also the size advertised. Default 1232 (the 2020 DNS flag day
	// figure, which avoids IP fragmentation).
	MaxUDPSize int
	// Log receives start, stop and changes of the answer; default nothing.
	Log *zap.Logger
	// Now dates SOA serials; default time.Now.
	Now func() time.Time
}

// DefaultMaxUDPSize is the default of ServerOptions.MaxUDPSize.
const DefaultMaxUDPSize = 1232

// Server is an authoritative DNS server for one zone, answering the names
// with the addresses last given to Point.
//
// Queries are answered from an immutable answer set swapped atomically by
// Point, so answering takes no lock. A Server serves once: Serve returns
// when its context ends and the Server cannot serve again.
type Server struct {
	addr    string
	zone    string
	names   map[string]bool
	nsNames []string
	glue    map[string]ipSet
	mbox    string
	ttl     uint32
	maxUDP  int
	log     *zap.Logger
	now     func() time.Time
	known   []string // every name that exists in the zone, for empty non-terminals

	answer  atomic.Pointer[answerSet]
	rotate  atomic.Uint32 // advances per answer, so clients spread over the addresses
	pointMu sync.Mutex    // serialises Point's read-modify-write of answer

	lnMu   sync.Mutex // guards udp, tcp, bound and served
	udp    net.PacketConn
	tcp    net.Listener
	bound  string // the address Listen bound, kept after Serve
	served bool
}

// answerSet is what the zone answers; never modified once published.
type answerSet struct {
	serial uint32
	addrs  addrSet // as given, for comparing and logging
	ips    ipSet   // the same, parsed once for answering
}

// ipSet is an addrSet parsed.
type ipSet struct {
	v4, v6 []net.IP
}

func (a addrSet) ips() ipSet {
	var s ipSet
	for _, x := range a.v4 {
		s.v4 = append(s.v4, net.ParseIP(x).To4())
	}
	for _, x := range a.v6 {
		s.v6 = append(s.v6, net.ParseIP(x))
	}
	return s
}

// NewServer checks the options and returns a Server that answers NODATA
// for the names until the first Point.
func NewServer(o ServerOptions) (*Server, error) {
	s := &Server{log: o.Log, now: o.Now, maxUDP: o.MaxUDPSize}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxUDP == 0 {
		s.maxUDP = DefaultMaxUDPSize
	}
	if s.maxUDP < dns.MinMsgSize || s.maxUDP > dns.MaxMsgSize {
		return nil, fmt.Errorf("dns server max udp size %d: want %d..%d", s.maxUDP, dns.MinMsgSize, dns.MaxMsgSize)
	}
	if o.Addr == "" {
		return nil, errors.New("dns serve: empty: set serve = \"host:port\", e.g. \"0.0.0.0:53\"")
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return nil, fmt.Errorf("dns serve %q: %w", o.Addr, err)
	}
	s.addr = o.Addr
	zone, names, err := zoneNames(o.Zone, o.Names)
	if err != nil {
		return nil, err
	}
	s.zone = zone
	s.names = make(map[string]bool, len(names))
	for _, n := range names {
		s.names[n] = true
	}
	switch {
	case o.TTL < 0:
		return nil, fmt.Errorf("dns ttl %d: must not be negative", o.TTL)
	case o.TTL == 0:
		s.ttl = DefaultTTL
	default:
		s.ttl = uint32(o.TTL)
	}
	nsNames := o.NS
	if len(nsNames) == 0 {
		nsNames = []string{"ns1." + zone}
	}
	for _, n := range nsNames {
		if _, ok := dns.IsDomainName(n); !ok || n == "" {
			return nil, fmt.Errorf("dns ns %q: not a domain name", n)
		}
		s.nsNames = append(s.nsNames, dns.CanonicalName(n))
	}
	s.glue = make(map[string]ipSet)
	for n, addrs := range o.Glue {
		c := dns.CanonicalName(n)
		if !dns.IsSubDomain(zone, c) || !slices.Contains(s.nsNames, c) {
			return nil, fmt.Errorf("dns glue for %s: only NS names inside zone %s need glue", c, zone)
		}
		set, err := parseAddrs(addrs)
		if err != nil {
			return nil, fmt.Errorf("dns glue for %s: %w", c, err)
		}
		s.glue[c] = set.ips()
	}
	s.mbox = o.Hostmaster
	if s.mbox == "" {
		s.mbox = "hostmaster." + zone
	}
	if _, ok := dns.IsDomainName(s.mbox); !ok {
		return nil, fmt.Errorf("dns hostmaster %q: not a domain name (write the mailbox hostmaster@example.com as hostmaster.example.com.)", s.mbox)
	}
	s.mbox = dns.CanonicalName(s.mbox)
	s.known = append(s.known, zone)
	s.known = append(s.known, names...)
	for n := range s.glue {
		s.known = append(s.known, n)
	}
	s.answer.Store(&answerSet{serial: uint32(s.now().Unix())})
	return s, nil
}

// Point makes the names answer exactly addrs (IPv4 as A, IPv6 as AAAA) from
// the next query on, and raises the SOA serial when the set changes. In
// roundrobin mode addrs are all healthy nodes, in failover mode the
// primary. It never blocks on the network; ctx is for the interface the
// Updater shares.
func (s *Server) Point(ctx context.Context, addrs []string) error {
	want, err := parseAddrs(addrs)
	if err != nil {
		return fmt.Errorf("dns point: %w", err)
	}
	s.pointMu.Lock()
	defer s.pointMu.Unlock()
	old := s.answer.Load()
	if slices.Equal(old.addrs.v4, want.v4) && slices.Equal(old.addrs.v6, want.v6) {
		return nil
	}
	serial := uint32(s.now().Unix())
	if int32(serial-old.serial) <= 0 { // RFC 1982 serial arithmetic
		serial = old.serial + 1
	}
	s.answer.Store(&answerSet{serial: serial, addrs: want, ips: want.ips()})
	s.log.Info("dns answer changed", zap.Strings("from", old.addrs.all()), zap.Strings("to", want.all()), zap.Uint32("serial", serial))
	return nil
}

// Answer returns the addresses the names answer now (IPv4 first, each
// family sorted), for status displays.
func (s *Server) Answer() []string { return s.answer.Load().addrs.all() }

// Serial is the SOA serial answered now.
func (s *Server) Serial() uint32 { return s.answer.Load().serial }

// Listen binds the UDP and TCP sockets, the same port for both, so that
// Addr is known before Serve. Serve calls it when it has not been called.
func (s *Server) Listen() error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.bound != "" && !s.served {
		return nil
	}
	if s.served {
		return errors.New("dns serve: this server has already served; make a new one")
	}
	host, port, _ := net.SplitHostPort(s.addr)
	for attempt := 0; ; attempt++ {
		tcp, err := net.Listen("tcp", s.addr)
		if err != nil {
			return listenError("tcp", s.addr, err)
		}
		uaddr := net.JoinHostPort(host, fmt.Sprint(tcp.Addr().(*net.TCPAddr).Port))
		udp, err := net.ListenPacket("udp", uaddr)
		if err == nil {
			s.tcp, s.udp, s.bound = tcp, udp, tcp.Addr().String()
			return nil
		}
		tcp.Close()
		if port != "0" || attempt >= 20 {
			return listenError("udp", uaddr, err)
		}
		// The port the kernel picked for TCP is taken for UDP: pick again.
	}
}

func listenError(network, addr string, err error) error {
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("dns serve: listen %s %s: %w (ports below 1024 need root or CAP_NET_BIND_SERVICE)", network, addr, err)
	}
	return fmt.Errorf("dns serve: listen %s %s: %w", network, addr, err)
}

// Addr is the address bound (host:port, the same port for UDP and TCP),
// or "" before Listen.
func (s *Server) Addr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.bound
}

// Serve answers queries on UDP and TCP until ctx ends, then shuts both down
// and returns nil; or returns the error that stopped a listener.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.lnMu.Lock()
	udp, tcp := s.udp, s.tcp
	s.udp, s.tcp, s.served = nil, nil, true
	s.lnMu.Unlock()
	if udp == nil {
		return errors.New("dns serve: already serving")
	}
	servers := []*dns.Server{
		{PacketConn: udp, Handler: s, UDPSize: dns.MaxMsgSize},
		{Listener: tcp, Handler: s, MaxTCPQueries: 1000},
	}
	started := make([]chan struct{}, len(servers))
	done := make([]chan struct{}, len(servers))
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		started[i], done[i] = make(chan struct{}), make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started[i]) }
		go func() {
			defer close(done[i])
			if err := srv.ActivateAndServe(); err != nil {
				errc <- fmt.Errorf("dns serve %s: %w", []string{"udp", "tcp"}[i], err)
			}
		}()
	}
	s.log.Info("dns server listening", zap.String("addr", tcp.Addr().String()), zap.String("zone", s.zone))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for i, srv := range servers {
		select {
		case <-started[i]:
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			srv.ShutdownContext(sctx)
			cancel()
		case <-done[i]:
		}
		<-done[i]
	}
	udp.Close()
	tcp.Close()
	s.log.Info("dns server stopped", zap.String("addr", tcp.Addr().String()), zap.Error(err))
	return err
}

// ServeDNS answers one query; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	udp := w.LocalAddr() != nil && strings.HasPrefix(w.LocalAddr().Network(), "udp")
	if resp := s.respond(req, udp); resp != nil {
		w.WriteMsg(resp)
	}
}

// respond builds the answer to req, truncated to fit when it goes over
// UDP; nil means no answer at all.
func (s *Server) respond(req *dns.Msg, udp bool) *dns.Msg {
	if req.Response {
		return nil // never answer an answer: no loops, no reflection
	}
	m := new(dns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	if len(req.Question) == 1 {
		m.Question = []dns.Question{req.Question[0]}
	}
	size := dns.MinMsgSize
	var opts int
	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			opts++
			opt = o
		}
	}
	if opt != nil {
		m.SetEdns0(uint16(s.maxUDP), opt.Do())
		if opt.Version() != 0 { // RFC 6891 §6.1.3
			m.Rcode = dns.RcodeBadVers
			return m
		}
		size = max(dns.MinMsgSize, min(int(opt.UDPSize()), s.maxUDP))
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(req.Question) != 1, opts > 1, len(req.Answer) > 0, len(req.Ns) > 0:
		m.Rcode = dns.RcodeFormatError
		return m
	}
	s.answerQuestion(m, req.Question[0])
	if udp {
		m.Truncate(size)
	}
	return m
}

// answerQuestion fills m's rcode and sections for q.
func (s *Server) answerQuestion(m *dns.Msg, q dns.Question) {
	name := dns.CanonicalName(q.Name)
	if (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) || !dns.IsSubDomain(s.zone, name) {
		m.Rcode = dns.RcodeRefused // not our zone: no referral, no recursion
		return
	}
	m.Authoritative = true
	set := s.answer.Load()
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused // no zone transfers: each node answers for itself
		return
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		m.Rcode = dns.RcodeFormatError
		return
	}
	apex := name == s.zone
	_, isGlue := s.glue[name]
	hasAddrs := s.names[name] || isGlue
	if !apex && !hasAddrs && !s.emptyNonTerminal(name) {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.soa(s.zone, set.serial)}
		return
	}
	owner := q.Name
	switch q.Qtype {
	case dns.TypeSOA:
		if apex {
			m.Answer = []dns.RR{s.soa(owner, set.serial)}
		}
	case dns.TypeNS:
		if apex {
			for _, ns := range s.nsNames {
				m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(owner, dns.TypeNS, nsTTL), Ns: ns})
			}
			for _, ns := range s.nsNames {
				m.Extra = append(m.Extra, s.addressRRs(ns, ns, dns.TypeANY, set)...)
			}
		}
	case dns.TypeA, dns.TypeAAAA:
		if hasAddrs {
			m.Answer = s.addressRRs(owner, name, q.Qtype, set)
		}
	case dns.TypeANY:
		// RFC 8482: a minimal answer, the addresses where there are any,
		// else the SOA at the apex, else a synthesised HINFO.
		if hasAddrs {
			m.Answer = s.addressRRs(owner, name, dns.TypeANY, set)
		}
		if len(m.Answer) == 0 && apex {
			m.Answer = []dns.RR{s.soa(owner, set.serial)}
		}
		if len(m.Answer) == 0 {
			m.Answer = []dns.RR{&dns.HINFO{Hdr: hdr(owner, dns.TypeHINFO, s.ttl), Cpu: "RFC8482"}}
		}
	}
	if len(m.Answer) == 0 { // NODATA: the name exists, not this type
		m.Ns = []dns.RR{s.soa(s.zone, set.serial)}
	}
}

const nsTTL = 3600

func hdr(name string, typ uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
}

// soa is the zone's SOA with owner name owner. Its TTL and minimum are the
// TTL, so negative answers are cached as long as positive ones.
func (s *Server) soa(owner string, serial uint32) dns.RR {
	return &dns.SOA{
		Hdr:     hdr(owner, dns.TypeSOA, s.ttl),
		Ns:      s.nsNames[0],
		Mbox:    s.mbox,
		Serial:  serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  1209600,
		Minttl:  s.ttl,
	}
}

// addressRRs returns name's A and/or AAAA records (typ A, AAAA or ANY for
// both) with owner as the owner name: Point's addresses for the names,
// glue for in-zone name servers.
func (s *Server) addressRRs(owner, name string, typ uint16, set *answerSet) []dns.RR {
	ips, ttl := set.ips, s.ttl
	if !s.names[name] {
		g, ok := s.glue[name]
		if !ok {
			return nil
		}
		ips, ttl = g, nsTTL
	}
	// Like BIND's rrset-order cyclic: each answer starts one address
	// further, so clients that take the first address spread over all.
	r := int(s.rotate.Add(1))
	var rrs []dns.RR
	if typ == dns.TypeA || typ == dns.TypeANY {
		for i := range ips.v4 {
			ip := ips.v4[(i+r)%len(ips.v4)]
			rrs = append(rrs, &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: ip})
		}
	}
	if typ == dns.TypeAAAA || typ == dns.TypeANY {
		for i := range ips.v6 {
			ip := ips.v6[(i+r)%len(ips.v6)]
			rrs = append(rrs, &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: ip})
		}
	}
	return rrs
}

// emptyNonTerminal reports whether name has no records but names below it
// do (b.example.test when a.b.example.test exists): RFC 8020 says such a
// name exists, so it gets NODATA, not NXDOMAIN.
func (s *Server) emptyNonTerminal(name string) bool {
	for _, k := range s.known {
		if k != name && dns.IsSubDomain(name, k) {
			return true
		}
	}
	return false
}
