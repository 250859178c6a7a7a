package pipe

// These tests start real SSH servers and clients on loopback (x/crypto/ssh
// on both ends, keys and known_hosts files in OpenSSH format).

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tandemhost/tandem/internal/duration"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testNode is one node of a test pair with its files.
type testNode struct {
	name   string
	signer ssh.Signer
	ln     net.Listener
	dir    string
	log    *zap.Logger
	logs   *observer.ObservedLogs
	node   *Node
	cancel context.CancelFunc
	done   chan error
}

func (tn *testNode) addr() string { return tn.ln.Addr().String() }

func (tn *testNode) file(name string) string { return filepath.Join(tn.dir, name) }

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTestNode(t *testing.T, name string) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	tn := &testNode{name: name, signer: newSigner(t), ln: ln, dir: t.TempDir(), logs: logs,
		log: zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))}
	return tn
}

// trust makes a accept b's key and trust b's host key at addr.
func trust(t testing.TB, a, b *testNode, addr string) {
	t.Helper()
	writeFile(t, a.file("authorized_keys"), string(ssh.MarshalAuthorizedKey(b.signer.PublicKey())))
	writeFile(t, a.file("known_hosts"), knownhosts.Line([]string{knownhosts.Normalize(addr)}, b.signer.PublicKey())+"\n")
}

// start runs tn with peer reachable at peerAddr.
// setup, when not nil, registers handlers on the node before it runs.
func (tn *testNode) start(t *testing.T, peer string, peerAddr string, setup func(*Node), mod ...func(*Options)) {
	t.Helper()
	opts := Options{
		Node: tn.name,
		Config: Config{
			AuthorizedKeys: tn.file("authorized_keys"),
			KnownHosts:     tn.file("known_hosts"),
			Heartbeat:      duration.Duration(50 * time.Millisecond),
			Timeout:        duration.Duration(500 * time.Millisecond),
		},
		Peer:       Peer{Name: peer, Address: peerAddr},
		Signer:     tn.signer,
		Log:        tn.log,
		Listener:   tn.ln,
		MaxBackoff: 200 * time.Millisecond,
	}
	for _, m := range mod {
		m(&opts)
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(n)
	}
	tn.node = n
	ctx, cancel := context.WithCancel(context.Background())
	tn.cancel = cancel
	tn.done = make(chan error, 1)
	go func() { tn.done <- tn.node.Run(ctx) }()
	t.Cleanup(tn.stop)
}

func (tn *testNode) stop() {
	if tn.cancel == nil {
		return
	}
	tn.cancel()
	<-tn.done
	tn.cancel = nil
}

// waitStatus waits until cond holds for tn's peer status, or fails.
func waitStatus(t *testing.T, tn *testNode, what string, cond func(PeerStatus) bool) PeerStatus {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		changed := tn.node.Changed()
		st := tn.node.Status()
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: timed out waiting for %s; status %+v", tn.name, what, st)
		}
	}
}

func connected(s PeerStatus) bool { return s.Connected && s.Inbound && s.RTT > 0 }

func pair(t *testing.T) (a, b *testNode) {
	a, b = newTestNode(t, "alpha"), newTestNode(t, "beta")
	trust(t, a, b, b.addr())
	trust(t, b, a, a.addr())
	return a, b
}

func TestPairConnectsAndMeasuresRTT(t *testing.T) {
	a, b := pair(t)
	a.start(t, "beta", b.addr(), nil)
	b.start(t, "alpha", a.addr(), nil)
	for _, n := range []*testNode{a, b} {
		st := waitStatus(t, n, "connected with RTT", connected)
		if st.PeerVersion != ProtocolVersion {
			t.Errorf("%s: PeerVersion = %d, want %d", n.name, st.PeerVersion, ProtocolVersion)
		}
		if st.LastError != "" {
			t.Errorf("%s: LastError = %q after connecting, want empty", n.name, st.LastError)
		}
		// Heartbeats keep coming.
		first := st.LastHeartbeat
		waitStatus(t, n, "a later heartbeat", func(s PeerStatus) bool { return s.LastHeartbeat.After(first) })
	}
}

func TestStreams(t *testing.T) {
	a, b := pair(t)
	sessions := make(chan *Session, 1)
	a.start(t, "beta", b.addr(), func(n *Node) {
		n.OnSession(func(ctx context.Context, s *Session) {
			sessions <- s
			<-ctx.Done()
		})
	})
	b.start(t, "alpha", a.addr(), func(n *Node) {
		n.Handle("echo", 0, func(ctx context.Context, s *Stream) error {
			for {
				typ, body, err := s.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := s.SendFrame(typ, body); err != nil {
					return err
				}
			}
		})
	})
	var s *Session
	select {
	case s = <-sessions:
	case <-time.After(10 * time.Second):
		t.Fatal("no session within 10s")
	}
	if s.Peer != "beta" || s.Version != ProtocolVersion {
		t.Errorf("session = peer %q version %d, want beta, %d", s.Peer, s.Version, ProtocolVersion)
	}
	st, err := s.Open("echo", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 100
	go func() {
		for i := 0; i < n; i++ {
			st.Send(&Ping{Seq: uint64(i), SentUnixNano: int64(i) * 7})
		}
		st.CloseWrite()
	}()
	for i := 0; i < n; i++ {
		typ, body, err := st.Recv()
		if err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		var p Ping
		if typ != typePing {
			t.Fatalf("echo %d: frame type %d, want %d", i, typ, typePing)
		}
		if err := Unmarshal(body, &p); err != nil || p.Seq != uint64(i) || p.SentUnixNano != int64(i)*7 {
			t.Fatalf("echo %d = %+v, %v", i, p, err)
		}
	}
	if _, _, err := st.Recv(); err != io.EOF {
		t.Errorf("Recv after the echo ended = %v, want io.EOF", err)
	}
	if _, err := s.Open("nosuch", 0); err == nil {
		t.Error("Open of a kind the peer does not serve succeeded")
	}
}

func TestUnknownClientKeyRefused(t *testing.T) {
	a, b := pair(t)
	// beta does not know alpha's key: it trusts some other key.
	stranger := newTestNode(t, "stranger")
	writeFile(t, b.file("authorized_keys"), string(ssh.MarshalAuthorizedKey(stranger.signer.PublicKey())))
	b.start(t, "alpha", a.addr(), nil)
	a.start(t, "beta", b.addr(), nil)
	st := waitStatus(t, a, "an auth error", func(s PeerStatus) bool { return s.LastError != "" })
	if st.Connected || !strings.Contains(st.LastError, "authorized_keys") {
		t.Errorf("alpha status = %+v, want not connected and an error pointing at authorized_keys", st)
	}
	waitLog(t, b, "refused client key", "is not in")
	if b.node.Status().Inbound {
		t.Error("beta reports an inbound link from an unknown key")
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	a, b := pair(t)
	// alpha's known_hosts holds an old key for beta's address.
	old := newSigner(t)
	writeFile(t, a.file("known_hosts"), knownhosts.Line([]string{knownhosts.Normalize(b.addr())}, old.PublicKey())+"\n")
	b.start(t, "alpha", a.addr(), nil)
	a.start(t, "beta", b.addr(), nil)
	st := waitStatus(t, a, "a host key error", func(s PeerStatus) bool { return s.LastError != "" })
	if st.Connected || !strings.Contains(st.LastError, "mismatch") || !strings.Contains(st.LastError, "known_hosts") {
		t.Errorf("alpha status = %+v, want a host key mismatch naming known_hosts", st)
	}
	// The other direction still works: the check is per link.
	waitStatus(t, b, "beta connected", func(s PeerStatus) bool { return s.Connected })
}

func TestUnknownHostRefused(t *testing.T) {
	a, b := pair(t)
	writeFile(t, a.file("known_hosts"), "")
	b.start(t, "alpha", a.addr(), nil)
	a.start(t, "beta", b.addr(), nil)
	st := waitStatus(t, a, "an unknown host error", func(s PeerStatus) bool { return s.LastError != "" })
	if !strings.Contains(st.LastError, ErrUnknownHost.Error()) || !strings.Contains(st.LastError, "known_hosts") {
		t.Errorf("alpha LastError = %q, want an unknown host error", st.LastError)
	}
}

func TestUnexpectedPeerNameRefused(t *testing.T) {
	a, b := pair(t)
	// alpha expects "gamma" at beta's address; beta expects alpha.
	b.start(t, "alpha", a.addr(), nil)
	a.start(t, "gamma", b.addr(), nil)
	st := waitStatus(t, a, "a name error", func(s PeerStatus) bool { return s.LastError != "" })
	if st.Connected || !strings.Contains(st.LastError, ErrUnexpectedPeer.Error()) {
		t.Errorf("alpha status = %+v, want refused for an unexpected name", st)
	}
	waitLog(t, b, "inbound peer link ended", "refused peer")
}

func TestCheckHelloVersions(t *testing.T) {
	n := &Node{opts: Options{Node: "beta", Peer: Peer{Name: "alpha"}}}
	tests := []struct {
		min, max uint16
		want     uint16
		refused  bool
	}{
		{1, 1, 1, false},
		{1, 9, ProtocolVersion, false},
		{ProtocolVersion + 1, ProtocolVersion + 3, 0, true},
		{0, 0, 0, true},
		{3, 2, 0, true},
	}
	for _, tt := range tests {
		v, reason := n.checkHello(&Hello{MinVersion: tt.min, MaxVersion: tt.max, Node: "alpha", Peer: "beta"})
		if (reason != "") != tt.refused || v != tt.want {
			t.Errorf("checkHello(versions %d..%d) = %d, %q; want %d, refused %v", tt.min, tt.max, v, reason, tt.want, tt.refused)
		}
		if tt.refused && !strings.Contains(reason, "upgrade") {
			t.Errorf("refusal %q does not say what to do", reason)
		}
	}
}

func TestPeerRestartReconnects(t *testing.T) {
	a, b := pair(t)
	a.start(t, "beta", b.addr(), nil)
	b.start(t, "alpha", a.addr(), nil)
	waitStatus(t, a, "connected", connected)
	b.stop()
	down := waitStatus(t, a, "link down", func(s PeerStatus) bool { return !s.Connected })
	if down.LastError == "" {
		t.Error("link down without LastError")
	}
	// Restart beta on the same address.
	ln, err := net.Listen("tcp", b.addr())
	if err != nil {
		t.Fatal(err)
	}
	b.ln = ln
	b.start(t, "alpha", a.addr(), nil)
	st := waitStatus(t, a, "reconnected", func(s PeerStatus) bool { return connected(s) && s.Connects >= 2 })
	if st.LastError != "" {
		t.Errorf("LastError = %q after reconnecting", st.LastError)
	}
}

// TestInboundCutsRedialWait: a node waiting to redial its peer (here for
// an hour) dials at once when the peer dials it: the peer is back, and
// what this node sends travels on its own link.
func TestInboundCutsRedialWait(t *testing.T) {
	a, b := pair(t)
	bAddr := b.addr()
	b.ln.Close() // beta is down: alpha's dials are refused
	a.start(t, "beta", bAddr, func(n *Node) {
		n.backoff = func(int, time.Duration) time.Duration { return time.Hour }
	})
	waitStatus(t, a, "a refused dial", func(s PeerStatus) bool { return s.LastError != "" })
	ln, err := net.Listen("tcp", bAddr)
	if err != nil {
		t.Fatal(err)
	}
	b.ln = ln
	b.start(t, "alpha", a.addr(), nil)
	waitStatus(t, a, "alpha's own link to beta up, long before its hour of backoff", func(s PeerStatus) bool { return s.Connected })
}

func TestBackoff(t *testing.T) {
	max := 3 * time.Second
	for a := 0; a < 20; a++ {
		for i := 0; i < 50; i++ {
			d := backoff(a, max)
			lo := min(100*time.Millisecond<<min(a, 10), max) / 2
			if d < lo || d >= max {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", a, d, lo, max)
			}
		}
	}
}

// waitLog waits for a log entry whose message is msg and whose fields
// mention want.
func waitLog(t *testing.T, tn *testNode, msg, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range tn.logs.FilterMessage(msg).All() {
			if strings.Contains(fmt.Sprint(e.ContextMap()), want) {
				return
			}
		}
		select {
		case <-tn.node.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s: no log %q mentioning %q; logs: %v", tn.name, msg, want, tn.logs.All())
}

func TestProbeLeavesLinkAlone(t *testing.T) {
	a, b := pair(t)
	a.start(t, "beta", b.addr(), nil)
	b.start(t, "alpha", a.addr(), nil)
	waitStatus(t, b, "connected", connected)
	before := b.node.Status()

	// A second alpha (as `tandem check` would run) probes beta.
	probe, err := New(a.node.opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := probe.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if res.Version != ProtocolVersion || res.RTT <= 0 {
		t.Errorf("Probe = %+v, want version %d and a positive RTT", res, ProtocolVersion)
	}
	// beta's inbound link from the real alpha survives the probe.
	waitStatus(t, b, "a heartbeat after the probe", func(s PeerStatus) bool {
		return s.Inbound && s.LastHeartbeat.After(before.LastHeartbeat)
	})
	if got := a.node.Status().Connects; got != 1 {
		t.Errorf("alpha reconnected %d times during the probe, want 1 connection", got)
	}
}
