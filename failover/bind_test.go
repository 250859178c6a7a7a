package failover

// This test starts a real BIND9 (failover/dns/bindtest: named on a loopback
// port, a zone that takes RFC 2136 updates signed with TSIG) and two nodes
// (pipe.Nodes over SSH on loopback, each with a runner whose DNS is a real
// failover/dns Updater).

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tandemhost/tandem/failover/dns"
	"github.com/tandemhost/tandem/failover/dns/bindtest"
	"github.com/tandemhost/tandem/internal/duration"
)

const bindName = "www.example.test."

func bindUpdater(t *testing.T, bind *bindtest.Server, secret string) *dns.Updater {
	t.Helper()
	u, err := dns.NewUpdater(dns.UpdaterOptions{
		Server: bind.Addr, Zone: bind.Zone, Names: []string{bindName}, TTL: 30,
		TSIGKey: bindtest.DefaultKey, TSIGSecret: secret, Log: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPairFailoverBIND: kill the primary -> BIND serves the survivor's
// address within dead_after + 2 s; restart it -> it rejoins as standby and
// BIND keeps the survivor; promote and demote move the role and BIND's
// answer.
func TestPairFailoverBIND(t *testing.T) {
	bind := bindtest.Start(t, bindtest.Options{Records: []string{"www 30 IN A 192.0.2.9"}})
	alpha := newPairNode(t, "alpha", "192.0.2.1")
	beta := newPairNode(t, "beta", "192.0.2.2")
	trust(t, alpha, beta)
	trust(t, beta, alpha)
	alphaCfg, betaCfg := testConfig("192.0.2.1"), testConfig("192.0.2.2")
	useBIND := func(o *RunnerOptions) { o.DNS = bindUpdater(t, bind, bind.Secret) }

	alpha.start(t, beta, alphaCfg, useBIND)
	beta.start(t, alpha, betaCfg, useBIND)
	waitStatus(t, alpha.runner, "alpha primary", isRole(Primary, 1))
	bind.WaitAddrs(bindName, []string{"192.0.2.1"}, 10*time.Second)
	// beta must have heard alpha's epoch before alpha dies, or both end
	// up primary at epoch 1 (a real race the machine settles, but not the
	// one this test checks).
	waitStatus(t, beta.runner, "beta standby at epoch 1 hearing alpha", func(s Status) bool {
		return isRole(Standby, 1)(s) && s.PeerRole == "primary"
	})

	alpha.stop()
	killed := time.Now()
	bind.WaitAddrs(bindName, []string{"192.0.2.2"}, betaCfg.DeadAfter.Std()+10*time.Second)
	took := time.Since(killed)
	t.Logf("alpha stopped -> BIND answers beta after %v (dead_after %v)", took.Round(time.Millisecond), betaCfg.DeadAfter)
	if limit := betaCfg.DeadAfter.Std() + 2*time.Second; took > limit {
		t.Errorf("failover took %v, want at most dead_after + 2s = %v", took, limit)
	}

	alpha.start(t, beta, alphaCfg, useBIND)
	waitStatus(t, alpha.runner, "alpha standby, healthy, hearing beta", func(s Status) bool {
		return isRole(Standby, 2)(s) && s.PeerRole == "primary" && s.Healthy
	})
	if got := bind.Addrs(bindName); len(got) != 1 || got[0] != "192.0.2.2" {
		t.Errorf("after alpha rejoined BIND answers %v, want beta's 192.0.2.2", got)
	}

	if err := alpha.runner.Promote(false); err != nil {
		t.Fatal(err)
	}
	bind.WaitAddrs(bindName, []string{"192.0.2.1"}, 10*time.Second)
	waitStatus(t, beta.runner, "beta standby", isRole(Standby, 3))
	if err := alpha.runner.Demote(false); err != nil {
		t.Fatal(err)
	}
	bind.WaitAddrs(bindName, []string{"192.0.2.2"}, 10*time.Second)
	waitStatus(t, beta.runner, "beta primary", isRole(Primary, 4))
}

// TestWrongTSIGSecret: a node whose TSIG secret is wrong becomes primary
// but BIND refuses its update: the status says what to fix, BIND keeps
// the old address, and the runner keeps retrying.
func TestWrongTSIGSecret(t *testing.T) {
	bind := bindtest.Start(t, bindtest.Options{Records: []string{"www 30 IN A 192.0.2.9"}})
	cfg := testConfig("192.0.2.1")
	cfg.DeadAfter = duration.Duration(time.Hour)
	r, err := NewRunner(RunnerOptions{Config: cfg, Node: "alpha", Peer: "beta", StateDir: t.TempDir(), Force: true,
		DNS: bindUpdater(t, bind, bindtest.RandomSecret()), Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runRunner(t, r)
	waitStatus(t, r, "running", func(s Status) bool { return s.Healthy })
	if err := r.Promote(true); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, r, "a DNS error", func(s Status) bool { return s.DNSError != "" })
	t.Logf("DNS error: %s", st.DNSError)
	if !strings.Contains(st.DNSError, "BADSIG") || !strings.Contains(st.DNSError, "secret") {
		t.Errorf("DNS error %q, want one naming BADSIG and the secret", st.DNSError)
	}
	summary := strings.Join(st.Summary(time.Now()), "\n")
	if !strings.Contains(summary, "FAILS") {
		t.Errorf("status summary does not show the failure:\n%s", summary)
	}
	if got := bind.Addrs(bindName); len(got) != 1 || got[0] != "192.0.2.9" {
		t.Errorf("BIND answers %v after refused updates, want the old 192.0.2.9", got)
	}
}
