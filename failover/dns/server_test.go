package dns

// These tests start the embedded server on a loopback port and ask it with
// the miekg/dns client and with dig(1).

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// startServer serves o (Addr defaulting to 127.0.0.1:0) until the test
// ends, and checks Serve then returns nil.
func startServer(t testing.TB, o ServerOptions) *Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Zone == "" {
		o.Zone = "example.test."
	}
	if o.Names == nil {
		o.Names = []string{"www.example.test.", "example.test.", "a.deep.example.test."}
	}
	if o.Log == nil {
		o.Log = zaptest.NewLogger(t)
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after its context ended, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10s after its context ended")
		}
	})
	return s
}

func point(t testing.TB, s *Server, addrs ...string) {
	t.Helper()
	if err := s.Point(context.Background(), addrs); err != nil {
		t.Fatalf("Point(%v): %v", addrs, err)
	}
}

// ask sends m over net ("udp" or "tcp") and returns the reply.
func ask(t testing.TB, s *Server, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s query %v: %v", network, m.Question, err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r
}

func question(name string, typ uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, typ)
	m.RecursionDesired = false
	return m
}

// rrText is an RR without its TTL and class, e.g. "www.example.test. A 192.0.2.1".
func rrText(rr dns.RR) string {
	h := rr.Header()
	data := strings.TrimPrefix(rr.String(), h.String())
	return fmt.Sprintf("%s %s %s", h.Name, dns.TypeToString[h.Rrtype], data)
}

func rrTexts(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rrText(rr))
	}
	slices.Sort(out)
	return out
}

func TestServerAnswers(t *testing.T) {
	s := startServer(t, ServerOptions{
		NS:   []string{"ns1.example.test.", "ns.other.net."},
		Glue: map[string][]string{"ns1.example.test.": {"192.0.2.53"}},
	})
	point(t, s, "192.0.2.1", "2001:db8::1")
	serial := s.Serial()
	soa := fmt.Sprintf("example.test. SOA ns1.example.test. hostmaster.example.test. %d 3600 600 1209600 30", serial)
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		qclass    uint16
		rcode     int
		aa        bool
		answer    []string
		authority []string
		extra     []string
	}{
		{"A", "www.example.test.", dns.TypeA, 0, dns.RcodeSuccess, true, []string{"www.example.test. A 192.0.2.1"}, nil, nil},
		{"AAAA", "www.example.test.", dns.TypeAAAA, 0, dns.RcodeSuccess, true, []string{"www.example.test. AAAA 2001:db8::1"}, nil, nil},
		{"case kept", "WwW.ExAmPlE.TeSt.", dns.TypeA, 0, dns.RcodeSuccess, true, []string{"WwW.ExAmPlE.TeSt. A 192.0.2.1"}, nil, nil},
		{"apex A", "example.test.", dns.TypeA, 0, dns.RcodeSuccess, true, []string{"example.test. A 192.0.2.1"}, nil, nil},
		{"SOA", "example.test.", dns.TypeSOA, 0, dns.RcodeSuccess, true, []string{soa}, nil, nil},
		{"NS with glue", "example.test.", dns.TypeNS, 0, dns.RcodeSuccess, true,
			[]string{"example.test. NS ns.other.net.", "example.test. NS ns1.example.test."}, nil,
			[]string{"ns1.example.test. A 192.0.2.53"}},
		{"glue name", "ns1.example.test.", dns.TypeA, 0, dns.RcodeSuccess, true, []string{"ns1.example.test. A 192.0.2.53"}, nil, nil},
		{"NODATA other type", "www.example.test.", dns.TypeMX, 0, dns.RcodeSuccess, true, nil, []string{soa}, nil},
		{"NODATA SOA below apex", "www.example.test.", dns.TypeSOA, 0, dns.RcodeSuccess, true, nil, []string{soa}, nil},
		{"NODATA empty non-terminal", "deep.example.test.", dns.TypeA, 0, dns.RcodeSuccess, true, nil, []string{soa}, nil},
		{"NXDOMAIN", "nope.example.test.", dns.TypeA, 0, dns.RcodeNameError, true, nil, []string{soa}, nil},
		{"NXDOMAIN below a name", "x.www.example.test.", dns.TypeA, 0, dns.RcodeNameError, true, nil, []string{soa}, nil},
		{"outside the zone", "www.example.com.", dns.TypeA, 0, dns.RcodeRefused, false, nil, nil, nil},
		{"parent of the zone", "test.", dns.TypeSOA, 0, dns.RcodeRefused, false, nil, nil, nil},
		{"root", ".", dns.TypeNS, 0, dns.RcodeRefused, false, nil, nil, nil},
		{"ANY minimal", "www.example.test.", dns.TypeANY, 0, dns.RcodeSuccess, true,
			[]string{"www.example.test. A 192.0.2.1", "www.example.test. AAAA 2001:db8::1"}, nil, nil},
		{"ANY at an empty name", "deep.example.test.", dns.TypeANY, 0, dns.RcodeSuccess, true,
			[]string{`deep.example.test. HINFO "RFC8482" ""`}, nil, nil},
		{"CHAOS class", "example.test.", dns.TypeTXT, dns.ClassCHAOS, dns.RcodeRefused, false, nil, nil, nil},
		{"AXFR", "example.test.", dns.TypeAXFR, 0, dns.RcodeRefused, true, nil, nil, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			if tt.qtype == dns.TypeAXFR && network == "udp" {
				continue
			}
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				m := question(tt.qname, tt.qtype)
				if tt.qclass != 0 {
					m.Question[0].Qclass = tt.qclass
				}
				r := ask(t, s, network, m)
				if r.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if r.Authoritative != tt.aa {
					t.Errorf("AA %v, want %v", r.Authoritative, tt.aa)
				}
				if r.RecursionAvailable || r.Truncated {
					t.Errorf("RA %v TC %v, want neither", r.RecursionAvailable, r.Truncated)
				}
				if len(r.Question) != 1 || r.Question[0] != m.Question[0] {
					t.Errorf("question %v, want %v echoed", r.Question, m.Question)
				}
				if got := rrTexts(r.Answer); !slices.Equal(got, tt.answer) {
					t.Errorf("answer %q, want %q", got, tt.answer)
				}
				if got := rrTexts(r.Ns); !slices.Equal(got, tt.authority) {
					t.Errorf("authority %q, want %q", got, tt.authority)
				}
				if got := rrTexts(r.Extra); !slices.Equal(got, tt.extra) {
					t.Errorf("additional %q, want %q", got, tt.extra)
				}
				for _, rr := range r.Answer {
					if ttl := rr.Header().Ttl; (rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeAAAA) && !strings.HasPrefix(rr.Header().Name, "ns1") && ttl != 30 {
						t.Errorf("%s TTL %d, want 30", rr, ttl)
					}
				}
				for _, rr := range r.Ns { // RFC 2308: negative TTL = min(SOA TTL, MINIMUM)
					if soa, ok := rr.(*dns.SOA); ok && (soa.Hdr.Ttl != 30 || soa.Minttl != 30) {
						t.Errorf("negative answer SOA TTL %d minimum %d, want 30 and 30", soa.Hdr.Ttl, soa.Minttl)
					}
				}
			})
		}
	}
}

func TestServerBeforeFirstPoint(t *testing.T) {
	s := startServer(t, ServerOptions{})
	r := ask(t, s, "udp", question("www.example.test.", dns.TypeA))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Fatalf("before any Point: %v, want NODATA with the SOA", r)
	}
}

func TestServerPointChangesAnswerAndSerial(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	s := startServer(t, ServerOptions{Now: func() time.Time { return clock }})
	serials := []uint32{s.Serial()}
	for _, addrs := range [][]string{{"192.0.2.1"}, {"192.0.2.2"}, {"192.0.2.2", "192.0.2.3"}, {"2001:db8::9"}} {
		point(t, s, addrs...)
		r := ask(t, s, "udp", question("www.example.test.", dns.TypeANY))
		var got []string
		for _, rr := range r.Answer {
			got = append(got, strings.Fields(rr.String())[4])
		}
		slices.Sort(got)
		if !slices.Equal(got, addrs) {
			t.Errorf("after Point(%v): answer %v", addrs, got)
		}
		r = ask(t, s, "tcp", question("example.test.", dns.TypeSOA))
		serial := r.Answer[0].(*dns.SOA).Serial
		if prev := serials[len(serials)-1]; serial <= prev {
			t.Errorf("after Point(%v): serial %d, want above %d", addrs, serial, prev)
		}
		serials = append(serials, serial)
	}
	// The clock stood still: every change still raised the serial. Once
	// time moves on, the serial follows it.
	clock = clock.Add(time.Hour)
	point(t, s, "192.0.2.1")
	if got, want := s.Serial(), uint32(clock.Unix()); got != want {
		t.Errorf("serial %d after the clock moved, want %d", got, want)
	}
	// The same set again is no change.
	before := s.Serial()
	point(t, s, "192.0.2.1")
	if s.Serial() != before {
		t.Errorf("Point with the same addresses moved the serial %d -> %d", before, s.Serial())
	}
}

func TestServerEDNS(t *testing.T) {
	s := startServer(t, ServerOptions{})
	point(t, s, "192.0.2.1")

	m := question("www.example.test.", dns.TypeA)
	r := ask(t, s, "udp", m)
	if r.IsEdns0() != nil {
		t.Errorf("reply to a query without EDNS has an OPT: %v", r.IsEdns0())
	}

	m = question("www.example.test.", dns.TypeA)
	m.SetEdns0(4096, true)
	r = ask(t, s, "udp", m)
	opt := r.IsEdns0()
	if opt == nil {
		t.Fatal("no OPT in the reply to an EDNS0 query")
	}
	if opt.UDPSize() != DefaultMaxUDPSize || !opt.Do() || opt.Version() != 0 {
		t.Errorf("OPT size %d DO %v version %d, want %d true 0", opt.UDPSize(), opt.Do(), opt.Version(), DefaultMaxUDPSize)
	}

	m = question("www.example.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	r = ask(t, s, "udp", m)
	if r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil {
		t.Errorf("EDNS version 1: rcode %d with OPT %v, want BADVERS (16) with an OPT", r.Rcode, r.IsEdns0())
	}
}

func TestServerRejects(t *testing.T) {
	s := startServer(t, ServerOptions{})
	point(t, s, "192.0.2.1")
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetUpdate("example.test.")
		if r := ask(t, s, network, m); r.Rcode != dns.RcodeNotImplemented {
			t.Errorf("%s UPDATE: rcode %s, want NOTIMP", network, dns.RcodeToString[r.Rcode])
		}
		m = new(dns.Msg)
		m.SetNotify("example.test.")
		if r := ask(t, s, network, m); r.Rcode != dns.RcodeNotImplemented {
			t.Errorf("%s NOTIFY: rcode %s, want NOTIMP", network, dns.RcodeToString[r.Rcode])
		}
		m = question("www.example.test.", dns.TypeA)
		m.Question = append(m.Question, m.Question[0])
		if r := ask(t, s, network, m); r.Rcode != dns.RcodeFormatError {
			t.Errorf("%s two questions: rcode %s, want FORMERR", network, dns.RcodeToString[r.Rcode])
		}
	}
}

// manyAddrs returns n IPv4 addresses, more than 512 bytes of answer.
func manyAddrs(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("10.0.%d.%d", i/250, 1+i%250))
	}
	return out
}

func TestServerTruncation(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addrs := manyAddrs(100) // 100 A records: about 1.6 kB
	point(t, s, addrs...)
	tests := []struct {
		name    string
		network string
		edns    uint16
		limit   int
		tc      bool
	}{
		{"udp without EDNS", "udp", 0, 512, true},
		{"udp EDNS 1000", "udp", 1000, 1000, true},
		{"udp EDNS 4096 capped at 1232", "udp", 4096, 1232, true},
		{"tcp", "tcp", 0, 65535, false},
		{"tcp with EDNS 512", "tcp", 512, 65535, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := question("www.example.test.", dns.TypeA)
			if tt.edns != 0 {
				m.SetEdns0(tt.edns, false)
			}
			c := &dns.Client{Net: tt.network, Timeout: 5 * time.Second, UDPSize: 65535}
			conn, err := c.Dial(s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.WriteMsg(m); err != nil {
				t.Fatal(err)
			}
			raw, err := conn.ReadMsgHeader(nil)
			if err != nil {
				t.Fatal(err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(raw); err != nil {
				t.Fatal(err)
			}
			if len(raw) > tt.limit {
				t.Errorf("reply %d bytes, limit %d", len(raw), tt.limit)
			}
			if r.Truncated != tt.tc {
				t.Errorf("TC %v, want %v", r.Truncated, tt.tc)
			}
			if !tt.tc && len(r.Answer) != len(addrs) {
				t.Errorf("%d answers, want all %d", len(r.Answer), len(addrs))
			}
			if tt.tc && len(r.Answer) >= len(addrs) {
				t.Errorf("%d answers in a truncated reply", len(r.Answer))
			}
			if tt.edns != 0 && r.IsEdns0() == nil {
				t.Errorf("truncated reply lost its OPT")
			}
		})
	}
}

// dig runs dig(1) against s and returns its output.
func dig(t *testing.T, s *Server, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		requireTool(t, "dig (apt-get install bind9-dnsutils)", err)
	}
	host, port := splitAddr(t, s.Addr())
	args = append([]string{"@" + host, "-p", port, "+norec", "+time=5", "+tries=1"}, args...)
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var (
	digStatus = regexp.MustCompile(`status: (\w+)`)
	digFlags  = regexp.MustCompile(`;; flags: ([a-z ]*);`)
)

// digSection returns the record lines of one section ("ANSWER",
// "AUTHORITY") of dig's output, each as "name type data" without TTL and
// class.
func digSection(out, section string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, ";; "+section+" SECTION:"):
			in = true
		case in && strings.TrimSpace(l) == "":
			in = false
		case in:
			f := strings.Fields(l)
			if len(f) >= 5 {
				lines = append(lines, f[0]+" "+f[3]+" "+strings.Join(f[4:], " "))
			}
		}
	}
	slices.Sort(lines)
	return lines
}

func TestServerWithDig(t *testing.T) {
	s := startServer(t, ServerOptions{})
	point(t, s, "192.0.2.1", "2001:db8::1")
	soa := fmt.Sprintf("example.test. SOA ns1.example.test. hostmaster.example.test. %d 3600 600 1209600 30", s.Serial())
	tests := []struct {
		args      []string
		status    string
		aa        bool
		answer    []string
		authority []string
	}{
		{[]string{"www.example.test", "A"}, "NOERROR", true, []string{"www.example.test. A 192.0.2.1"}, nil},
		{[]string{"www.example.test", "AAAA", "+tcp"}, "NOERROR", true, []string{"www.example.test. AAAA 2001:db8::1"}, nil},
		{[]string{"example.test", "SOA"}, "NOERROR", true, []string{soa}, nil},
		{[]string{"example.test", "NS"}, "NOERROR", true, []string{"example.test. NS ns1.example.test."}, nil},
		{[]string{"www.example.test", "TXT"}, "NOERROR", true, nil, []string{soa}},
		{[]string{"nope.example.test", "A"}, "NXDOMAIN", true, nil, []string{soa}},
		{[]string{"www.example.org", "A"}, "REFUSED", false, nil, nil},
		{[]string{"www.example.test", "A", "+noedns"}, "NOERROR", true, []string{"www.example.test. A 192.0.2.1"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out := dig(t, s, tt.args...)
			st := digStatus.FindStringSubmatch(out)
			if st == nil || st[1] != tt.status {
				t.Errorf("status %v, want %s\n%s", st, tt.status, out)
			}
			fl := digFlags.FindStringSubmatch(out)
			if fl == nil || slices.Contains(strings.Fields(fl[1]), "aa") != tt.aa {
				t.Errorf("flags %v, want aa=%v\n%s", fl, tt.aa, out)
			}
			if got := digSection(out, "ANSWER"); !slices.Equal(got, tt.answer) {
				t.Errorf("answer %q, want %q\n%s", got, tt.answer, out)
			}
			if got := digSection(out, "AUTHORITY"); !slices.Equal(got, tt.authority) {
				t.Errorf("authority %q, want %q\n%s", got, tt.authority, out)
			}
			if strings.Contains(out, "WARNING") || strings.Contains(out, "malformed") {
				t.Errorf("dig complains:\n%s", out)
			}
			edns := !slices.Contains(tt.args, "+noedns")
			if strings.Contains(out, "; EDNS: version: 0") != edns {
				t.Errorf("EDNS in reply: %v, want %v\n%s", !edns, edns, out)
			}
		})
	}

	t.Run("truncated over UDP, complete over TCP", func(t *testing.T) {
		addrs := manyAddrs(100)
		point(t, s, addrs...)
		out := dig(t, s, "www.example.test", "A", "+bufsize=512")
		if !strings.Contains(out, "Truncated, retrying in TCP mode") {
			t.Errorf("dig did not see TC over UDP:\n%s", out)
		}
		if got := digSection(out, "ANSWER"); len(got) != len(addrs) {
			t.Errorf("dig got %d A records after the TCP retry, want %d\n%s", len(got), len(addrs), out)
		}
		out = dig(t, s, "www.example.test", "A", "+bufsize=512", "+ignore")
		if fl := digFlags.FindStringSubmatch(out); fl == nil || !slices.Contains(strings.Fields(fl[1]), "tc") {
			t.Errorf("UDP reply without the tc flag: %v\n%s", fl, out)
		}
	})

	t.Run("Point changes the answer", func(t *testing.T) {
		before := s.Serial()
		point(t, s, "198.51.100.7")
		out := dig(t, s, "www.example.test", "A")
		if got := digSection(out, "ANSWER"); !slices.Equal(got, []string{"www.example.test. A 198.51.100.7"}) {
			t.Errorf("after Point: answer %q\n%s", got, out)
		}
		out = dig(t, s, "example.test", "SOA", "+short")
		var serial uint32
		if f := strings.Fields(out); len(f) < 3 {
			t.Fatalf("dig +short SOA: %q", out)
		} else {
			fmt.Sscan(f[2], &serial)
		}
		if serial <= before {
			t.Errorf("SOA serial %d after Point, want above %d", serial, before)
		}
	})
}

// TestServerRotates checks that in roundrobin mode consecutive answers
// start with each address in turn, so clients that take the first spread
// over all nodes.
func TestServerRotates(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addrs := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}
	point(t, s, addrs...)
	first := map[string]int{}
	for range 3 * len(addrs) {
		r := ask(t, s, "udp", question("www.example.test.", dns.TypeA))
		var got []string
		for _, rr := range r.Answer {
			got = append(got, rr.(*dns.A).A.String())
		}
		first[got[0]]++
		slices.Sort(got)
		if !slices.Equal(got, addrs) {
			t.Fatalf("answer %v, want all of %v", got, addrs)
		}
	}
	for _, a := range addrs {
		if first[a] != 3 {
			t.Errorf("over 9 answers the first address was %v, want each of %v 3 times", first, addrs)
			break
		}
	}
}

// TestUpdaterRefusesUnsignedAnswer points a signing Updater at the
// embedded server, which answers without TSIG: the unsigned answer must not
// be believed.
func TestUpdaterRefusesUnsignedAnswer(t *testing.T) {
	s := startServer(t, ServerOptions{})
	point(t, s, "192.0.2.1")
	u, err := NewUpdater(UpdaterOptions{Server: s.Addr(), Zone: "example.test.", Names: []string{"www.example.test."},
		TSIGKey: "tandem-key.", TSIGSecret: "c2VjcmV0c2VjcmV0c2VjcmV0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Current(t.Context()); err == nil || !strings.Contains(err.Error(), "not TSIG-signed") {
		t.Fatalf("Current against an unsigned server = %v, want a refusal of the unsigned answer", err)
	}
	// Unsigned, the same updater reads fine, and the embedded server
	// refuses the update itself with NOTIMP, decoded.
	u, err = NewUpdater(UpdaterOptions{Server: s.Addr(), Zone: "example.test.", Names: []string{"www.example.test."}})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := u.Current(t.Context())
	if err != nil || !slices.Equal(cur["www.example.test."], []string{"192.0.2.1"}) {
		t.Fatalf("Current = %v, %v", cur, err)
	}
	err = u.Point(t.Context(), []string{"192.0.2.2"})
	var se *ServerError
	if !errors.As(err, &se) || se.Code() != "NOTIMP" || !strings.Contains(err.Error(), "does not implement dynamic update") {
		t.Fatalf("update to the embedded server = %v, want NOTIMP decoded", err)
	}
}

// TestServerPointUnderLoad flips the answer while clients ask: every answer
// must be one whole set, never a mix of the old and the new, and a later
// query on the same client never sees an older serial.
func TestServerPointUnderLoad(t *testing.T) {
	s := startServer(t, ServerOptions{Log: zap.NewNop()})
	sets := [][]string{{"192.0.2.1", "192.0.2.2"}, {"198.51.100.1", "198.51.100.2", "198.51.100.3"}}
	point(t, s, sets[0]...)
	const clients, queries = 4, 200
	errc := make(chan error, clients)
	for range clients {
		go func() {
			c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
			conn, err := c.Dial(s.Addr())
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			var lastSerial uint32
			for i := range queries {
				typ := dns.TypeA
				if i%2 == 1 {
					typ = dns.TypeSOA
				}
				r, _, err := c.ExchangeWithConn(question([]string{"www.example.test.", "example.test."}[i%2], typ), conn)
				if err != nil {
					errc <- err
					return
				}
				if typ == dns.TypeSOA {
					serial := r.Answer[0].(*dns.SOA).Serial
					if serial < lastSerial {
						errc <- fmt.Errorf("serial went back from %d to %d", lastSerial, serial)
						return
					}
					lastSerial = serial
					continue
				}
				var got []string
				for _, rr := range r.Answer {
					got = append(got, rr.(*dns.A).A.String())
				}
				slices.Sort(got)
				if !slices.Equal(got, sets[0]) && !slices.Equal(got, sets[1]) {
					errc <- fmt.Errorf("answer %v is neither %v nor %v", got, sets[0], sets[1])
					return
				}
			}
			errc <- nil
		}()
	}
	flips := 0
	for finished := 0; finished < clients; {
		select {
		case err := <-errc:
			finished++
			if err != nil {
				t.Error(err)
			}
		default:
			flips++
			point(t, s, sets[flips%2]...)
		}
	}
	t.Logf("%d flips during %d queries", flips, clients*queries)
}
