package main

// Failover with a witness, end to end: three real processes (alpha, beta
// and `tandem witness`), raft over SSH channels of the pipe, each node
// answering for the zone with its embedded DNS server, a real DNS client.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/failover"
)

// dnsAnswer asks the server at addr for www.example.test's A records.
func dnsAnswer(addr string) []string {
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return nil
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestWitnessFailoverEndToEnd(t *testing.T) {
	base := t.TempDir()
	wListen, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	addrs := [2]string{"192.0.2.1", "192.0.2.2"}
	var dnsAddrs [2]string
	extra := map[string]string{}
	for i, name := range []string{"alpha", "beta"} {
		if dnsAddrs[i], err = freeLoopbackAddr(); err != nil {
			t.Fatal(err)
		}
		extra[name] = fmt.Sprintf(`
[failover]
address = %q
heartbeat = "500ms"
dead_after = "5s"
min_dwell = "1s"
witness = %q
[failover.dns]
zone = "example.test."
names = ["www.example.test."]
ttl = 5
serve = %q
`, addrs[i], wListen, dnsAddrs[i])
	}
	nodes, err := setupPair(filepath.Join(base, "nodes"), pairOptions{
		SSH: "heartbeat = \"200ms\"\ntimeout = \"1s\"\n", Extra: extra,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The witness: its key, and trust both ways with each node.
	wdir := filepath.Join(base, "witness")
	wsigner, _, err := deploy.EnsureKey(filepath.Join(wdir, "state"), "tandem@witness")
	if err != nil {
		t.Fatal(err)
	}
	var wAuth, wKnown string
	for _, n := range nodes {
		s, err := deploy.LoadKey(deploy.KeyPath(n.StateDir()))
		if err != nil {
			t.Fatal(err)
		}
		wAuth += deploy.AuthorizedLine(s.PublicKey(), "tandem@"+n.Name) + "\n"
		wKnown += deploy.KnownHostsLine(n.Listen, s.PublicKey()) + "\n"
		appendFile(t, filepath.Join(n.Dir, "authorized_keys"), deploy.AuthorizedLine(wsigner.PublicKey(), "tandem@witness")+"\n")
		appendFile(t, filepath.Join(n.Dir, "known_hosts"), deploy.KnownHostsLine(wListen, wsigner.PublicKey())+"\n")
	}
	wconf := filepath.Join(wdir, "witness.toml")
	for name, data := range map[string]string{
		"authorized_keys": wAuth, "known_hosts": wKnown,
		"witness.toml": fmt.Sprintf(`node = "witness"
state_dir = %q
[ssh]
listen = %q
heartbeat = "200ms"
timeout = "1s"
[[peer]]
name = "alpha"
address = %q
[[peer]]
name = "beta"
address = %q
`, filepath.Join(wdir, "state"), wListen, nodes[0].Listen, nodes[1].Listen),
	} {
		if err := os.WriteFile(filepath.Join(wdir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	witness := exec.Command(tandemBinary(t), "witness", "-c", wconf)
	wlog := &syncBuffer{}
	witness.Stderr = wlog
	if err := witness.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		witness.Process.Kill()
		witness.Wait()
		if t.Failed() {
			t.Logf("witness log:\n%s", wlog.String())
		}
	})
	procs := [2]*daemonProc{startDaemon(t, nodes[0]), startDaemon(t, nodes[1])}

	role := func(i int) failover.Status {
		out, err := exec.Command(tandemBinary(t), "status", "-c", nodes[i].ConfigPath(), "--json").Output()
		var st Status
		if err != nil || json.Unmarshal(out, &st) != nil || st.Failover == nil {
			return failover.Status{} // not up yet
		}
		return *st.Failover
	}
	// One primary, known to both, with its address in both DNS servers.
	primary := -1
	waitFor(t, "one primary, known to both nodes, answered by both DNS servers", 60*time.Second, func() bool {
		a, b := role(0), role(1)
		if a.Primary == "" || a.Primary != b.Primary {
			return false
		}
		primary = slices.Index([]string{"alpha", "beta"}, a.Primary)
		want := []string{addrs[primary]}
		return slices.Equal(dnsAnswer(dnsAddrs[0]), want) && slices.Equal(dnsAnswer(dnsAddrs[1]), want)
	})
	survivor := 1 - primary
	epoch := role(survivor).Epoch

	// Kill the primary: the survivor wins raft with the witness and its DNS
	// answers its own address.
	killed := time.Now()
	procs[primary].cmd.Process.Kill()
	<-procs[primary].done
	waitFor(t, "the survivor primary, answering its own address", 30*time.Second, func() bool {
		return slices.Equal(dnsAnswer(dnsAddrs[survivor]), []string{addrs[survivor]})
	})
	t.Logf("kill to the survivor's DNS answer: %v (dead_after 5s)", time.Since(killed).Round(time.Millisecond))
	if st := role(survivor); st.Role.String() != "primary" || st.Epoch <= epoch {
		t.Errorf("survivor %s: role %v epoch %d, want primary with an epoch above %d", nodes[survivor].Name, st.Role, st.Epoch, epoch)
	}

	// The killed node comes back as standby: no automatic failback.
	procs[primary] = startDaemon(t, nodes[primary])
	waitFor(t, "the restarted node following the survivor", 60*time.Second, func() bool {
		st := role(primary)
		return st.Primary == nodes[survivor].Name && st.Role.String() == "standby"
	})
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}
