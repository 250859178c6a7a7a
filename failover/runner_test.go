package failover

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tandemhost/tandem/internal/duration"
	"github.com/tandemhost/tandem/internal/mysqltest"
	"github.com/tandemhost/tandem/pipe"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's connection opener lives as long as its DB; the
		// mysqltest helper's pools close at cleanup, after this check.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

// recordingDNS is a DNSPointer that records every call; failures > 0 makes
// that many calls fail first.
type recordingDNS struct {
	mu       sync.Mutex
	calls    [][]string
	failures int
}

func (d *recordingDNS) Point(ctx context.Context, addrs []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, slices.Clone(addrs))
	if d.failures > 0 {
		d.failures--
		return errors.New("NOTAUTH: the name server does not know key tandem-key.")
	}
	return nil
}

func (d *recordingDNS) Calls() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// waitStatus waits until cond holds for r's status, or fails the test.
func waitStatus(t testing.TB, r *Runner, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		changed := r.Changed()
		st := r.Status()
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: timed out waiting for %s; status %+v", st.Node, what, st)
		}
	}
}

// testConfig is a [failover] section with short intervals for tests.
func testConfig(addr string) Config {
	c := Config{
		Address:   addr,
		Heartbeat: duration.Duration(100 * time.Millisecond),
		DeadAfter: duration.Duration(1500 * time.Millisecond),
		Rise:      2,
		Fall:      1,
		MinDwell:  duration.Duration(time.Millisecond),
	}
	c.ApplyDefaults()
	return c
}

// runRunner runs r until the returned stop is called (or the test ends).
func runRunner(t testing.TB, r *Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestRunnerAlone runs one runner with no peer (started with force) and a
// real MariaDB: read_only is on at start, off after promote, on again after
// demote; the hooks see TANDEM_ROLE and TANDEM_EPOCH; DNS failures are
// retried; the epoch survives a restart.
func TestRunnerAlone(t *testing.T) {
	db := mysqltest.Start(t, mysqltest.Options{})
	readOnly := func() int {
		t.Helper()
		var v int
		if err := db.DB("").QueryRow("SELECT @@global.read_only").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	dir := t.TempDir()
	hookLog := filepath.Join(dir, "hooks.log")
	cfg := testConfig("198.51.100.1")
	cfg.DeadAfter = duration.Duration(time.Hour) // promotion only by hand here
	cfg.OnPromote = `echo "promote $TANDEM_ROLE $TANDEM_EPOCH $TANDEM_NODE" >> ` + hookLog
	cfg.OnDemote = `echo "demote $TANDEM_ROLE $TANDEM_EPOCH" >> ` + hookLog + `; exit 4`
	dns := &recordingDNS{failures: 2}
	r, err := NewRunner(RunnerOptions{Config: cfg, Node: "alpha", Peer: "beta", StateDir: dir, DNS: dns,
		MySQLDSN: db.DSN(""), Force: true, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(true); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Promote before Run = %v, want ErrNotRunning", err)
	}
	stop := runRunner(t, r)
	waitStatus(t, r, "read_only on and healthy", func(s Status) bool { return s.ReadOnlyApplied == "on" && s.Healthy })
	if v := readOnly(); v != 1 {
		t.Errorf("standby: @@global.read_only = %d, want 1", v)
	}
	if err := r.Promote(false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("Promote(false) with the peer never seen = %v, want a refusal suggesting --force", err)
	}
	if err := r.Promote(true); err != nil {
		t.Fatalf("Promote(true): %v", err)
	}
	st := waitStatus(t, r, "primary with DNS and read_only off", func(s Status) bool {
		return s.Role == Primary && s.ReadOnlyApplied == "off" && slices.Equal(s.DNSTarget, []string{"198.51.100.1"})
	})
	if st.Epoch != 1 || st.DNSError != "" || !strings.Contains(st.LastTransition.Reason, "--force") {
		t.Errorf("after promote: %+v", st)
	}
	if v := readOnly(); v != 0 {
		t.Errorf("primary: @@global.read_only = %d, want 0", v)
	}
	if calls := dns.Calls(); len(calls) != 3 {
		t.Errorf("DNS calls = %v, want 3 (two failures retried, then success)", calls)
	}
	if err := r.Demote(false); err == nil {
		t.Error("Demote(false) with no peer to take over succeeded")
	}
	if err := r.Demote(true); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, r, "standby, read_only on, hook error", func(s Status) bool {
		return s.Role == Standby && s.ReadOnlyApplied == "on" && s.HookError != ""
	})
	if !st.Hold || !strings.Contains(st.HookError, "exit status 4") {
		t.Errorf("after demote: %+v", st)
	}
	if v := readOnly(); v != 1 {
		t.Errorf("demoted: @@global.read_only = %d, want 1", v)
	}
	stop()
	hooks, err := os.ReadFile(hookLog)
	if err != nil {
		t.Fatal(err)
	}
	if want := "promote primary 1 alpha\ndemote standby 1\n"; string(hooks) != want {
		t.Errorf("hooks wrote %q, want %q", hooks, want)
	}

	// A restart keeps the epoch: the next promotion is epoch 2.
	if p, err := LoadState(dir); err != nil || p != (Persisted{Epoch: 1, Role: Standby}) {
		t.Errorf("LoadState = %+v, %v; want epoch 1 standby", p, err)
	}
	r2, err := NewRunner(RunnerOptions{Config: cfg, Node: "alpha", Peer: "beta", StateDir: dir, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	runRunner(t, r2)
	waitStatus(t, r2, "healthy", func(s Status) bool { return s.Healthy })
	if err := r2.Promote(true); err != nil {
		t.Fatal(err)
	}
	if epoch := r2.Epoch(); epoch != 2 {
		t.Errorf("epoch after restart and promote = %d, want 2", epoch)
	}
}

func TestNewRunnerRejects(t *testing.T) {
	dir := t.TempDir()
	good := RunnerOptions{Config: testConfig("198.51.100.1"), Node: "alpha", Peer: "beta", StateDir: dir}
	bad := func(f func(o *RunnerOptions)) RunnerOptions { o := good; f(&o); return o }
	damaged := t.TempDir()
	if err := os.WriteFile(filepath.Join(damaged, StateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		opts RunnerOptions
		want string
	}{
		"no peer":       {bad(func(o *RunnerOptions) { o.Peer = "" }), "peer"},
		"no state dir":  {bad(func(o *RunnerOptions) { o.StateDir = "" }), "state dir"},
		"bad address":   {bad(func(o *RunnerOptions) { o.Config.Address = "www" }), "address"},
		"rise <= fall":  {bad(func(o *RunnerOptions) { o.Config.Rise, o.Config.Fall = 2, 2 }), "rise"},
		"mysql no dsn":  {bad(func(o *RunnerOptions) { o.Config.Checks = []Check{{MySQL: true}} }), "dsn"},
		"damaged state": {bad(func(o *RunnerOptions) { o.StateDir = damaged }), "epoch 0"},
	} {
		if _, err := NewRunner(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewRunner error = %v, want one mentioning %q", name, err, tt.want)
		}
	}
}

// pairNode is one node of a two-node test pair: its key, its SSH address
// and its state dir, kept across restarts.
type pairNode struct {
	name, addr, dir string
	signer          ssh.Signer
	dns, serve      *recordingDNS // RFC 2136 updates, own DNS server
	runner          *Runner
	stop            func()
}

func newPairNode(t *testing.T, name, address string) *pairNode {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return &pairNode{name: name, addr: addr, dir: t.TempDir(), signer: signer}
}

// trust makes a accept b's key and know b's host key.
func trust(t *testing.T, a, b *pairNode) {
	t.Helper()
	ak := ssh.MarshalAuthorizedKey(b.signer.PublicKey())
	kh := knownhosts.Line([]string{knownhosts.Normalize(b.addr)}, b.signer.PublicKey()) + "\n"
	if err := os.WriteFile(filepath.Join(a.dir, "authorized_keys"), ak, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "known_hosts"), []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs n's pipe node and failover runner on loopback, with peer.
// The runner has recording DNS pointers unless mods change its options.
func (n *pairNode) start(t *testing.T, peer *pairNode, cfg Config, mods ...func(o *RunnerOptions)) {
	t.Helper()
	log := zaptest.NewLogger(t).Named(n.name)
	var ln net.Listener
	var err error
	// The port was free a moment ago (or held by this node before a
	// restart); retry briefly while the old socket closes.
	for range 50 {
		if ln, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	var r *Runner
	node, err := pipe.New(pipe.Options{
		Node: n.name,
		Config: pipe.Config{
			AuthorizedKeys: filepath.Join(n.dir, "authorized_keys"),
			KnownHosts:     filepath.Join(n.dir, "known_hosts"),
			Heartbeat:      duration.Duration(100 * time.Millisecond),
			Timeout:        duration.Duration(time.Second),
		},
		Peer:       pipe.Peer{Name: peer.name, Address: peer.addr},
		Signer:     n.signer,
		Log:        log,
		Listener:   ln,
		MaxBackoff: 200 * time.Millisecond,
		Epoch:      func() uint64 { return r.Epoch() },
	})
	if err != nil {
		t.Fatal(err)
	}
	n.dns, n.serve = &recordingDNS{}, &recordingDNS{}
	opts := RunnerOptions{Config: cfg, Node: n.name, Peer: peer.name, StateDir: n.dir,
		Pipe: node, DNS: n.dns, Serve: n.serve, Log: log}
	for _, mod := range mods {
		mod(&opts)
	}
	r, err = NewRunner(opts)
	if err != nil {
		t.Fatal(err)
	}
	n.runner = r
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := node.Run(ctx); err != nil {
			t.Errorf("%s pipe: %v", n.name, err)
		}
	})
	wg.Go(func() {
		if err := r.Run(ctx); err != nil {
			t.Errorf("%s failover: %v", n.name, err)
		}
	})
	var once sync.Once
	n.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(n.stop)
}

func isRole(role Role, epoch uint64) func(Status) bool {
	return func(s Status) bool { return s.Role == role && s.Epoch == epoch }
}

// TestPairFailover starts two nodes (real pipe.Nodes over SSH on
// loopback, each with a runner and a recording DNS): they elect alpha; alpha
// dies and beta takes over and points DNS; alpha comes back as standby and
// stays so; promote and demote move the role.
func TestPairFailover(t *testing.T) {
	alpha := newPairNode(t, "alpha", "192.0.2.1")
	beta := newPairNode(t, "beta", "192.0.2.2")
	trust(t, alpha, beta)
	trust(t, beta, alpha)
	alphaCfg, betaCfg := testConfig("192.0.2.1"), testConfig("192.0.2.2")

	alpha.start(t, beta, alphaCfg)
	beta.start(t, alpha, betaCfg)
	// Both start at once: alpha, preferred by name, promotes.
	a := waitStatus(t, alpha.runner, "alpha primary at epoch 1", isRole(Primary, 1))
	waitStatus(t, beta.runner, "beta standby at epoch 1", func(s Status) bool {
		return isRole(Standby, 1)(s) && s.PeerRole == "primary"
	})
	waitStatus(t, alpha.runner, "alpha's DNS", func(s Status) bool { return slices.Equal(s.DNSTarget, []string{"192.0.2.1"}) })
	if p := beta.runner.Primary(); p != "alpha" {
		t.Errorf("beta says the primary is %q, want alpha", p)
	}
	if !strings.Contains(a.LastTransition.Reason, "preferred") {
		t.Errorf("alpha promoted because %q, want the election", a.LastTransition.Reason)
	}
	if calls := beta.dns.Calls(); len(calls) != 0 {
		t.Errorf("standby beta pointed DNS: %v", calls)
	}
	waitStatus(t, beta.runner, "beta's own DNS server answering alpha", func(s Status) bool {
		return slices.Equal(s.Serving, []string{"192.0.2.1"})
	})

	// alpha dies: beta promotes after dead_after and points DNS at itself.
	alpha.stop()
	killed := time.Now()
	b := waitStatus(t, beta.runner, "beta primary with DNS", func(s Status) bool {
		return isRole(Primary, 2)(s) && slices.Equal(s.DNSTarget, []string{"192.0.2.2"})
	})
	t.Logf("alpha killed -> beta's DNS pointed in %v (dead_after %v)", time.Since(killed).Round(time.Millisecond), betaCfg.DeadAfter)
	if !strings.Contains(b.LastTransition.Reason, "alpha silent") {
		t.Errorf("beta promoted because %q, want alpha's silence", b.LastTransition.Reason)
	}

	// alpha restarts: it adopts beta's epoch and stays standby (no
	// automatic failback), for longer than dead_after.
	alpha.start(t, beta, alphaCfg)
	waitStatus(t, alpha.runner, "alpha standby at epoch 2 hearing beta", func(s Status) bool {
		return isRole(Standby, 2)(s) && s.PeerRole == "primary"
	})
	until := time.Now().Add(alphaCfg.DeadAfter.Std() + 500*time.Millisecond)
	for time.Now().Before(until) {
		changed := alpha.runner.Changed()
		if s := alpha.runner.Status(); s.Role != Standby {
			t.Fatalf("restarted alpha became %s: %+v", s.Role, s)
		}
		select {
		case <-changed:
		case <-time.After(time.Until(until)):
		}
	}
	if calls := alpha.dns.Calls(); len(calls) != 0 {
		t.Errorf("restarted standby alpha pointed DNS: %v", calls)
	}
	if calls := alpha.serve.Calls(); len(calls) != 1 || !slices.Equal(calls[0], []string{"192.0.2.2"}) {
		t.Errorf("restarted alpha's own DNS server was given %v, want only beta's address", calls)
	}

	// An operator promotes alpha: beta hears the higher epoch and demotes.
	if err := alpha.runner.Promote(false); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	waitStatus(t, alpha.runner, "alpha primary at 3 with DNS", func(s Status) bool {
		return isRole(Primary, 3)(s) && slices.Equal(s.DNSTarget, []string{"192.0.2.1"})
	})
	waitStatus(t, beta.runner, "beta standby at 3", isRole(Standby, 3))

	// And demotes it: beta, eligible, takes over; alpha holds.
	if err := alpha.runner.Demote(false); err != nil {
		t.Fatalf("Demote: %v", err)
	}
	waitStatus(t, beta.runner, "beta primary at 4", isRole(Primary, 4))
	st := waitStatus(t, alpha.runner, "alpha standby at 4", isRole(Standby, 4))
	if st.Hold {
		t.Errorf("alpha still held after beta took over: %+v", st)
	}
	if err := alpha.runner.Demote(false); err == nil || !strings.Contains(err.Error(), "already standby") {
		t.Errorf("second Demote = %v, want already standby", err)
	}
}
