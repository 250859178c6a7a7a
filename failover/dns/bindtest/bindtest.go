// Package bindtest starts a real BIND9 (named) for tests: a primary for one
// zone on a free loopback port (UDP and TCP), accepting RFC 2136 updates
// signed with a TSIG key, in its own temp directory, stopped when the test
// ends.
//
// A test calls Start; when named is not installed the test is skipped,
// unless TANDEM_REQUIRE_INTEGRATION is set (as CI does), and then it fails.
package bindtest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/tandemhost/tandem/internal/loopback"
)

// Key is a TSIG key named.conf declares.
type Key struct {
	Name   string // e.g. "tandem-key."
	Secret string // base64; empty: a random one
	// Grant allows the key to update any name in the zone
	// (`update-policy { grant KEY zonesub ANY; }`). A key without Grant
	// or OnlyName is known to the server but may change nothing.
	Grant bool
	// OnlyName allows the key to update A and AAAA at this one name
	// (`grant KEY name NAME A AAAA;`).
	OnlyName string
}

// Options change the zone a server starts with.
type Options struct {
	// Zone is the zone's name; default "example.test.".
	Zone string
	// Records are zone file lines added after the SOA and NS, relative to
	// the zone, e.g. "www 30 IN A 192.0.2.1". Default: that one line.
	Records []string
	// Keys are extra keys besides the granted DefaultKey.
	Keys []Key
}

// DefaultKey is the name of the key every server has, granted updates to
// the whole zone. Its secret is Server.Secret.
const DefaultKey = "tandem-key."

// Server is a running named.
type Server struct {
	Dir    string // temp directory: named.conf, the zone, its journal, named.log
	Addr   string // 127.0.0.1:port, UDP and TCP
	Zone   string // fqdn
	Secret string // base64 secret of DefaultKey (hmac-sha256)
	Keys   []Key  // every key, DefaultKey first, secrets filled in

	t     testing.TB
	token string // TXT at _bindtest.<zone>: proves we reach this named, not another on a reused port
	cmd   *exec.Cmd
	done  chan struct{}
	log   *lockedBuffer
}

// Require skips the test when named is missing, or fails it when
// TANDEM_REQUIRE_INTEGRATION is set.
func Require(t testing.TB) {
	t.Helper()
	if _, err := namedPath(); err != nil {
		msg := fmt.Sprintf("named not installed (apt-get install bind9): %v", err)
		if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
			t.Fatal(msg + "; TANDEM_REQUIRE_INTEGRATION is set, so this cannot be skipped")
		}
		t.Skip(msg)
	}
}

func namedPath() (string, error) {
	if p, err := exec.LookPath("named"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/named", "/usr/local/sbin/named"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("named not found in PATH, /usr/sbin or /usr/local/sbin")
}

// RandomSecret returns a fresh base64 secret of 32 bytes, as tsig-keygen
// makes for hmac-sha256.
func RandomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Start starts named for o's zone and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	Require(t)
	if o.Zone == "" {
		o.Zone = "example.test."
	}
	if o.Records == nil {
		o.Records = []string{"www 30 IN A 192.0.2.1"}
	}
	s := &Server{Zone: dns.CanonicalName(o.Zone), t: t}
	s.Keys = append([]Key{{Name: DefaultKey, Grant: true}}, o.Keys...)
	for i := range s.Keys {
		s.Keys[i].Name = dns.CanonicalName(s.Keys[i].Name)
		if s.Keys[i].Secret == "" {
			s.Keys[i].Secret = RandomSecret()
		}
	}
	s.Secret = s.Keys[0].Secret
	dir, err := os.MkdirTemp("", "tandem-bindtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.Dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })

	var lastErr error
	for range 3 { // a free port can be taken between probing and named's bind
		port, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.writeConfig(port, o.Records); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatal(lastErr)
	return nil
}

func (s *Server) writeConfig(port int, records []string) error {
	var conf strings.Builder
	fmt.Fprintf(&conf, `options {
	directory %[1]q;
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	pid-file %[3]q;
	session-keyfile %[4]q;
	managed-keys-directory %[1]q;
	recursion no;
	dnssec-validation no;
	notify no;
	allow-transfer { none; };
};
controls { };
`, s.Dir, port, filepath.Join(s.Dir, "named.pid"), filepath.Join(s.Dir, "session.key"))
	var grants strings.Builder
	for _, k := range s.Keys {
		fmt.Fprintf(&conf, "key %q { algorithm hmac-sha256; secret %q; };\n", k.Name, k.Secret)
		if k.Grant {
			fmt.Fprintf(&grants, " grant %s zonesub ANY;", k.Name)
		}
		if k.OnlyName != "" {
			fmt.Fprintf(&grants, " grant %s name %s A AAAA;", k.Name, dns.Fqdn(k.OnlyName))
		}
	}
	policy := "update-policy {" + grants.String() + " };"
	if grants.Len() == 0 {
		policy = "allow-update { none; };"
	}
	zoneFile := filepath.Join(s.Dir, "zone.db")
	fmt.Fprintf(&conf, "zone %q { type primary; file %q; %s };\n", strings.TrimSuffix(s.Zone, "."), zoneFile, policy)
	if err := os.WriteFile(filepath.Join(s.Dir, "named.conf"), []byte(conf.String()), 0o600); err != nil {
		return err
	}
	s.token = RandomSecret()
	zone := fmt.Sprintf("$ORIGIN %s\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n_bindtest IN TXT %q\n%s\n",
		s.Zone, s.token, strings.Join(records, "\n"))
	os.Remove(zoneFile + ".jnl")
	return os.WriteFile(zoneFile, []byte(zone), 0o600)
}

func (s *Server) start() error {
	bin, err := namedPath()
	if err != nil {
		return err
	}
	args := []string{"-g", "-n", "1", "-c", filepath.Join(s.Dir, "named.conf")}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	s.log = &lockedBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start named: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		txt, err := s.Lookup("_bindtest."+s.Zone, dns.TypeTXT)
		if err == nil && slices.Equal(txt, []string{fmt.Sprintf("%q", s.token)}) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("another server answers on %s: %v", s.Addr, txt)
		}
		if strings.Contains(s.log.String(), "address in use") {
			s.Stop()
			return fmt.Errorf("named could not bind %s: address in use", s.Addr)
		}
		select {
		case <-s.done:
			s.cmd = nil
			return fmt.Errorf("named exited at start: %s\n%s", cmd.ProcessState, s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("named not answering on %s after 30s: %v\n%s", s.Addr, err, s.log.String())
		}
	}
}

// Stop shuts named down (SIGTERM, then SIGKILL after 10 s), waiting for
// it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Log is what named has written to stderr so far.
func (s *Server) Log() string { return s.log.String() }

// Lookup asks the server over TCP, without recursion or TSIG, for name's
// records of type typ and returns their data as text (addresses for A and
// AAAA), sorted. A non-NOERROR answer is an error, except NXDOMAIN, which
// is no records.
func (s *Server) Lookup(name string, typ uint16) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), typ)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		return nil, err
	}
	if r.Rcode == dns.RcodeNameError {
		return nil, nil
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s %s: %s", name, dns.TypeToString[typ], dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype != typ {
			continue
		}
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		default:
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Addrs returns name's A and AAAA addresses, sorted, failing the test on
// error.
func (s *Server) Addrs(name string) []string {
	s.t.Helper()
	a, err := s.Lookup(name, dns.TypeA)
	if err != nil {
		s.t.Fatal(err)
	}
	aaaa, err := s.Lookup(name, dns.TypeAAAA)
	if err != nil {
		s.t.Fatal(err)
	}
	return append(a, aaaa...)
}

// WaitAddrs polls until name answers exactly want (any order), failing
// the test after timeout, and returns how long it took.
func (s *Server) WaitAddrs(name string, want []string, timeout time.Duration) time.Duration {
	s.t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	start := time.Now()
	var got []string
	for {
		got = s.Addrs(name)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			s.t.Fatalf("%s at %s answers %v, want %v after %s", name, s.Addr, got, want, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Serial returns the zone's SOA serial.
func (s *Server) Serial() uint32 {
	s.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(s.Zone, dns.TypeSOA)
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial
		}
	}
	s.t.Fatalf("no SOA for %s in %v", s.Zone, r)
	return 0
}

// Set replaces name's A and AAAA records with addrs (none: deletes them)
// by an unconditional update signed with DefaultKey, as an operator would
// with nsupdate. It is independent of the code under test.
func (s *Server) Set(name string, addrs ...string) {
	s.t.Helper()
	name = dns.CanonicalName(name)
	m := new(dns.Msg)
	m.SetUpdate(s.Zone)
	m.RemoveRRset([]dns.RR{
		&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA}},
		&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA}},
	})
	var rrs []dns.RR
	for _, a := range addrs {
		rr, err := dns.NewRR(fmt.Sprintf("%s 30 IN %s %s", name, map[bool]string{true: "A", false: "AAAA"}[strings.Contains(a, ".")], a))
		if err != nil {
			s.t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	m.Insert(rrs)
	m.SetTsig(DefaultKey, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: map[string]string{DefaultKey: s.Secret}}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		s.t.Fatalf("set %s %v at %s: %v", name, addrs, s.Addr, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		s.t.Fatalf("set %s %v at %s: %s", name, addrs, s.Addr, dns.RcodeToString[r.Rcode])
	}
}

// WriteSecretFile writes DefaultKey's secret, bare, to a 0600 file in the
// test's temp dir and returns its path.
func (s *Server) WriteSecretFile() string {
	s.t.Helper()
	p := filepath.Join(s.t.TempDir(), "tsig.secret")
	if err := os.WriteFile(p, []byte(s.Secret+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
