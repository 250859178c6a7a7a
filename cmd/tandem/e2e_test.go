package main

// End-to-end tests: they build the tandem binary and start two real daemons
// (separate processes, real SSH on loopback) with an in-process latency and
// partition proxy between them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/internal/faultproxy"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// tandemBinary builds the binary once per test run.
func tandemBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tandem-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tandem")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// daemonProc is a `tandem run` process.
type daemonProc struct {
	node   *pairNode
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proxyDial returns a pairOptions.Dial that puts a fault proxy with oneWay
// latency in front of each node's SSH port, records it in proxies (when not
// nil) and closes it at cleanup.
func proxyDial(t testing.TB, proxies map[string]*faultproxy.Proxy, oneWay time.Duration) func(name, listen string) (string, error) {
	return func(name, listen string) (string, error) {
		p, err := faultproxy.New(listen)
		if err != nil {
			return "", err
		}
		p.SetLatency(oneWay)
		if proxies != nil {
			proxies[name] = p
		}
		t.Cleanup(func() { p.Close() })
		return p.Addr(), nil
	}
}

func startDaemon(t testing.TB, n *pairNode) *daemonProc {
	t.Helper()
	d := &daemonProc{node: n, stderr: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(tandemBinary(t), "run", "-c", n.ConfigPath(), "--log-level", "debug")
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("%s log:\n%s", n.Name, d.stderr.String())
		}
	})
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop(t testing.TB) {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want a clean exit", d.node.Name, err)
		}
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		t.Errorf("%s did not stop within 10s of SIGTERM", d.node.Name)
	}
}

// statusCLI runs `tandem status --json` and decodes it.
func statusCLI(t testing.TB, n *pairNode) Status {
	t.Helper()
	out, err := exec.Command(tandemBinary(t), "status", "-c", n.ConfigPath(), "--json").Output()
	if err != nil {
		t.Fatalf("tandem status --json: %v", err)
	}
	var st Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status --json printed %q: %v", out, err)
	}
	return st
}

// waitPeer polls n's control socket until cond holds for its peer.
func waitPeer(t testing.TB, n *pairNode, what string, cond func(PeerStatus) bool) PeerStatus {
	t.Helper()
	c := control.NewClient(control.SocketPath(n.StateDir()))
	deadline := time.Now().Add(30 * time.Second)
	var last Status
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lastErr = c.Get(ctx, "/status", &last)
		cancel()
		if lastErr == nil && len(last.Peers) == 1 && cond(last.Peers[0]) {
			return last.Peers[0]
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a synchronisation
	}
	t.Fatalf("%s: timed out waiting for %s; last status %+v, err %v", n.Name, what, last, lastErr)
	return PeerStatus{}
}

func TestTwoDaemonsThroughLatencyProxy(t *testing.T) {
	const oneWay = 50 * time.Millisecond
	proxies := map[string]*faultproxy.Proxy{}
	nodes, err := setupPair(t.TempDir(), pairOptions{
		Dial: proxyDial(t, proxies, oneWay),
		SSH:  "heartbeat = \"200ms\"\ntimeout = \"1s\"\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	alpha, beta := nodes[0], nodes[1]
	startDaemon(t, alpha)
	startDaemon(t, beta)

	for _, n := range nodes {
		waitPeer(t, n, "connected", func(p PeerStatus) bool { return p.Connected && p.Inbound && p.RTTms > 0 })
		st := statusCLI(t, n)
		p := st.Peers[0]
		if st.Node != n.Name || !p.Connected || p.Since == "" || p.LastError != "" {
			t.Errorf("%s: status --json = %+v, want connected with since set and no error", n.Name, st)
		}
		// The proxy delays each way by oneWay: a round trip cannot be faster.
		if p.RTTms < 2*ms(oneWay) {
			t.Errorf("%s: rtt_ms = %.1f, below the proxy's %v round trip", n.Name, p.RTTms, 2*oneWay)
		}
	}

	// The proxy in front of beta drops every connection: alpha redials.
	proxies["beta"].Reset()
	waitPeer(t, alpha, "reconnected after reset", func(p PeerStatus) bool { return p.Connected && p.Connects >= 2 })

	// A partition where packets vanish: alpha must notice the silence,
	// report it, and reconnect once the partition heals.
	proxies["beta"].Blackhole(true)
	down := waitPeer(t, alpha, "link down during the partition", func(p PeerStatus) bool { return !p.Connected })
	if !strings.Contains(down.LastError, "silent") && !strings.Contains(down.LastError, "timeout") {
		t.Errorf("alpha last_error during partition = %q, want it to say the peer went silent", down.LastError)
	}
	proxies["beta"].Blackhole(false)
	up := waitPeer(t, alpha, "reconnected after the partition", func(p PeerStatus) bool { return p.Connected && p.Connects >= 3 })
	if up.LastError != "" {
		t.Errorf("alpha last_error after healing = %q, want empty", up.LastError)
	}
	if up.RTTms < 2*ms(oneWay) {
		t.Errorf("alpha rtt_ms after healing = %.1f, below the proxy's round trip", up.RTTms)
	}
}

func TestCheckAgainstRunningPeer(t *testing.T) {
	nodes, err := setupPair(t.TempDir(), pairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, nodes[1])
	waitPeer(t, nodes[1], "beta up", func(p PeerStatus) bool { return true })
	out, err := exec.Command(tandemBinary(t), "check", "-c", nodes[0].ConfigPath()).CombinedOutput()
	if err != nil {
		t.Fatalf("tandem check: %v\n%s", err, out)
	}
	for _, want := range []string{"host key matches", "clock offset", "all checks passed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	// With beta's key gone from alpha's known_hosts, check fails and says why.
	os.WriteFile(filepath.Join(nodes[0].Dir, "known_hosts"), nil, 0o600)
	out, err = exec.Command(tandemBinary(t), "check", "-c", nodes[0].ConfigPath()).CombinedOutput()
	if code := exitCode(err); code != exitFailure || !strings.Contains(string(out), "known_hosts") {
		t.Errorf("check with empty known_hosts = exit %d:\n%s\nwant exit %d naming known_hosts", code, out, exitFailure)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
