package main

// Failover end to end without a witness: two real daemons, a fault proxy
// between them, and a real BIND9 that the primary updates by RFC 2136 with
// a TSIG key.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/failover"
	"github.com/tandemhost/tandem/failover/dns/bindtest"
	"github.com/tandemhost/tandem/internal/faultproxy"
)

// failoverOf returns n's failover status, or ok false while the daemon is
// not answering.
func failoverOf(t *testing.T, n *pairNode) (failover.Status, bool) {
	out, err := exec.Command(tandemBinary(t), "status", "-c", n.ConfigPath(), "--json").Output()
	var st Status
	if err != nil || json.Unmarshal(out, &st) != nil || st.Failover == nil {
		return failover.Status{}, false
	}
	return *st.Failover, true
}

func TestFailoverWithBIND(t *testing.T) {
	bind := bindtest.Start(t, bindtest.Options{Records: []string{"www 5 IN A 192.0.2.99"}})
	secret := bind.WriteSecretFile()
	wrong := filepath.Join(t.TempDir(), "wrong.secret")
	if err := os.WriteFile(wrong, []byte(bindtest.RandomSecret()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := [2]string{"192.0.2.1", "192.0.2.2"}
	// Each node also answers for the zone itself (embedded DNS), so one
	// kill times both ways of publishing the flip.
	var serve [2]string
	for i := range serve {
		var err error
		if serve[i], err = freeLoopbackAddr(); err != nil {
			t.Fatal(err)
		}
	}
	proxies := map[string]*faultproxy.Proxy{}
	section := func(i int, secretFile string) string {
		return fmt.Sprintf(`
[failover]
address = %q
heartbeat = "500ms"
dead_after = "5s"
min_dwell = "1s"
[failover.dns]
zone = "example.test."
names = ["www.example.test."]
ttl = 5
update = %q
tsig_key = "tandem-key."
tsig_secret_file = %q
serve = %q
`, addrs[i], bind.Addr, secretFile, serve[i])
	}
	nodes, err := setupPair(filepath.Join(t.TempDir(), "nodes"), pairOptions{
		Dial:  proxyDial(t, proxies, 0),
		SSH:   "heartbeat = \"200ms\"\ntimeout = \"1s\"\n",
		Extra: map[string]string{"alpha": section(0, secret), "beta": section(1, secret)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// tandem check sends a TSIG-signed update that changes nothing.
	out, _ := exec.Command(tandemBinary(t), "check", "-c", nodes[0].ConfigPath()).CombinedOutput()
	if !strings.Contains(string(out), "ok   dns update permission") {
		t.Errorf("tandem check does not report the DNS update permission as ok:\n%s", out)
	}

	procs := [2]*daemonProc{startDaemon(t, nodes[0]), startDaemon(t, nodes[1])}
	primary := -1
	waitFor(t, "one primary, and BIND answering its address", 60*time.Second, func() bool {
		a, okA := failoverOf(t, nodes[0])
		b, okB := failoverOf(t, nodes[1])
		if !okA || !okB || a.Primary == "" || a.Primary != b.Primary {
			return false
		}
		primary = slices.Index([]string{"alpha", "beta"}, a.Primary)
		return slices.Equal(bind.Addrs("www.example.test."), []string{addrs[primary]})
	})
	survivor := 1 - primary

	waitFor(t, "the standby's own DNS server answering the primary", 30*time.Second, func() bool {
		return slices.Equal(dnsAnswer(serve[survivor]), []string{addrs[primary]})
	})

	// Kill the primary: the survivor takes DNS, in BIND (RFC 2136) and in
	// its own server. tandem-bench reads the two lines logged here.
	killed := time.Now()
	procs[primary].cmd.Process.Kill()
	<-procs[primary].done
	var tookBIND, tookServe time.Duration
	waitFor(t, "BIND and the survivor's own server answering the survivor", 30*time.Second, func() bool {
		if tookServe == 0 && slices.Equal(dnsAnswer(serve[survivor]), []string{addrs[survivor]}) {
			tookServe = time.Since(killed)
		}
		if tookBIND == 0 && slices.Equal(bind.Addrs("www.example.test."), []string{addrs[survivor]}) {
			tookBIND = time.Since(killed)
		}
		return tookBIND != 0 && tookServe != 0
	})
	t.Logf("kill to BIND answering the survivor: %v (dead_after 5s)", tookBIND.Round(time.Millisecond))
	t.Logf("kill to the embedded DNS answering the survivor: %v (dead_after 5s)", tookServe.Round(time.Millisecond))

	// It comes back as standby.
	procs[primary] = startDaemon(t, nodes[primary])
	waitFor(t, "the restarted node standing by, healthy", 60*time.Second, func() bool {
		st, ok := failoverOf(t, nodes[primary])
		return ok && st.Role.String() == "standby" && st.Primary == nodes[survivor].Name && st.Healthy && st.PeerAlive
	})
	if got := bind.Addrs("www.example.test."); !slices.Equal(got, []string{addrs[survivor]}) {
		t.Errorf("BIND answers %v after the old primary came back, want the survivor's %s (no failback)", got, addrs[survivor])
	}

	// promote moves the role and DNS back.
	if out, err := exec.Command(tandemBinary(t), "promote", "-c", nodes[primary].ConfigPath()).CombinedOutput(); err != nil {
		t.Fatalf("tandem promote: %v\n%s", err, out)
	}
	waitFor(t, "BIND answering the promoted node", 30*time.Second, func() bool {
		return slices.Equal(bind.Addrs("www.example.test."), []string{addrs[primary]})
	})
	// demote hands it over again.
	if out, err := exec.Command(tandemBinary(t), "demote", "-c", nodes[primary].ConfigPath()).CombinedOutput(); err != nil {
		t.Fatalf("tandem demote: %v\n%s", err, out)
	}
	waitFor(t, "BIND answering the other node after demote", 30*time.Second, func() bool {
		return slices.Equal(bind.Addrs("www.example.test."), []string{addrs[survivor]})
	})

	// A wrong TSIG secret: check says so, and a node that must update DNS
	// with it changes nothing and says why.
	cfgPath := nodes[primary].ConfigPath()
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(data), secret, wrong, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(tandemBinary(t), "check", "-c", cfgPath).CombinedOutput()
	if exitCode(err) != exitFailure || !strings.Contains(string(out), "BADSIG") {
		t.Errorf("tandem check with a wrong TSIG secret: exit %d\n%s\nwant exit 1 and BADSIG with what to fix", exitCode(err), out)
	}
	procs[primary].stop(t)
	procs[primary] = startDaemon(t, nodes[primary])
	waitFor(t, "the restarted node seeing its peer", 60*time.Second, func() bool {
		st, ok := failoverOf(t, nodes[primary])
		return ok && st.PeerSeen && st.PeerAlive
	})
	procs[survivor].cmd.Process.Kill()
	<-procs[survivor].done
	waitFor(t, "the misconfigured node primary, reporting the DNS error", 60*time.Second, func() bool {
		st, ok := failoverOf(t, nodes[primary])
		return ok && st.Role.String() == "primary" && strings.Contains(st.DNSError, "BADSIG")
	})
	if got := bind.Addrs("www.example.test."); !slices.Equal(got, []string{addrs[survivor]}) {
		t.Errorf("BIND answers %v after an update with a wrong secret, want it unchanged (%s)", got, addrs[survivor])
	}
}
