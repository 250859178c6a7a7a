package replica

// Helpers the package's tests share: node keys and the OpenSSH files that
// trust them, pipe nodes on loopback, and replica engines on real temp
// trees with real index databases and conflict logs. The key and node
// helpers follow pipe/node_test.go, whose _test files cannot be imported.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
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

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/internal/duration"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/watcher/index"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rootName is the name of the synced tree in every test.
const rootName = "data"

// waitTimeout bounds every wait for an event in these tests.
const waitTimeout = 15 * time.Second

// waitFor polls cond every few milliseconds until it holds, or fails the
// test after waitTimeout saying what it waited for.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

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

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testNode is a pipe node on loopback with its key files and an observed
// log.
type testNode struct {
	name   string
	signer ssh.Signer
	ln     net.Listener
	dir    string // authorized_keys, known_hosts
	log    *zap.Logger
	logs   *observer.ObservedLogs
	node   *pipe.Node
	cancel context.CancelFunc
	done   chan error
}

func newTestNode(t *testing.T, name string) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	tl := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Core()
	return &testNode{name: name, signer: newSigner(t), ln: ln, dir: t.TempDir(), logs: logs,
		log: zap.New(zapcore.NewTee(core, tl)).Named(name)}
}

func (tn *testNode) addr() string { return tn.ln.Addr().String() }

func (tn *testNode) file(name string) string { return filepath.Join(tn.dir, name) }

// trust makes a accept b's key and trust b's host key at b's address.
func trust(t testing.TB, a, b *testNode) {
	t.Helper()
	writeFile(t, a.file("authorized_keys"), string(ssh.MarshalAuthorizedKey(b.signer.PublicKey())))
	writeFile(t, a.file("known_hosts"), knownhosts.Line([]string{knownhosts.Normalize(b.addr())}, b.signer.PublicKey())+"\n")
}

// start runs tn with its peer at peerAddr; setup registers handlers and
// session hooks before the node runs. The node stops at cleanup.
func (tn *testNode) start(t *testing.T, peer, peerAddr string, setup func(*pipe.Node)) {
	t.Helper()
	n, err := pipe.New(pipe.Options{
		Node: tn.name,
		Config: pipe.Config{
			AuthorizedKeys: tn.file("authorized_keys"),
			KnownHosts:     tn.file("known_hosts"),
			Heartbeat:      duration.Duration(100 * time.Millisecond),
			Timeout:        duration.Duration(3 * time.Second),
		},
		Peer:       pipe.Peer{Name: peer, Address: peerAddr},
		Signer:     tn.signer,
		Log:        tn.log,
		Listener:   tn.ln,
		MaxBackoff: 200 * time.Millisecond,
	})
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
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(func() {
		if !tn.stop() {
			t.Errorf("%s: the pipe node did not stop within %v", tn.name, waitTimeout)
		}
	})
}

// stop stops the node and reports whether it did within waitTimeout.
func (tn *testNode) stop() bool {
	if tn.cancel == nil {
		return true
	}
	tn.cancel()
	tn.cancel = nil
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case <-tn.done:
		return true
	case <-timer.C:
		return false
	}
}

// warned reports whether tn logged a warning (or worse) whose message and
// fields mention every one of want.
func (tn *testNode) warned(want ...string) bool {
	for _, e := range tn.logs.All() {
		if e.Level < zap.WarnLevel {
			continue
		}
		text := e.Message + " " + fmt.Sprint(e.ContextMap())
		all := true
		for _, w := range want {
			all = all && strings.Contains(text, w)
		}
		if all {
			return true
		}
	}
	return false
}

// warnings lists tn's warnings, for failure messages.
func (tn *testNode) warnings() []string {
	var out []string
	for _, e := range tn.logs.All() {
		if e.Level >= zap.WarnLevel {
			out = append(out, e.Message+" "+fmt.Sprint(e.ContextMap()))
		}
	}
	return out
}

// side is one node of a replicating pair: a pipe node, a sync tree, an
// index, a conflict log and the engine over them.
type side struct {
	*testNode
	root      string
	db        *index.DB
	conflicts *conflict.Log
	eng       *Engine
}

// newSide opens the index, conflict log and engine of node name, whose
// peer is peer, syncing the directory root (created if missing). Everything
// is closed at cleanup.
func newSide(t *testing.T, name, peer, root string) *side {
	t.Helper()
	s := &side{testNode: newTestNode(t, name), root: root}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	var err error
	if s.db, err = index.Open(filepath.Join(state, "index.db"), s.log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.db.Close() })
	if s.conflicts, err = conflict.Open(state); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.conflicts.Close() })
	s.eng, err = New(Options{
		Node:        name,
		Peer:        peer,
		DB:          s.db,
		Conflicts:   s.conflicts,
		Roots:       []Root{{Name: rootName, Dir: root}},
		Log:         s.log,
		BulkStreams: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.eng.Close() })
	return s
}

// runEngine runs the engine's scan loop until cleanup.
func (s *side) runEngine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Engine.Run = %v", s.name, err)
		}
	})
}

func (s *side) status() RootStatus { return s.eng.Status()[0] }

// unusedAddr returns a loopback address nothing listens on.
func unusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
