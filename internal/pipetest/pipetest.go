// Package pipetest makes pairs of pipe nodes on loopback for tests: keys,
// the OpenSSH files that trust them, and nodes that stop when the test ends.
package pipetest

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

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tandemhost/tandem/internal/duration"
	"github.com/tandemhost/tandem/pipe"
)

// WaitTimeout bounds every wait in these helpers.
const WaitTimeout = 15 * time.Second

// WaitFor polls cond every few milliseconds until it holds, or fails the
// test after WaitTimeout saying what it waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", WaitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Pair makes two nodes that trust each other and starts them, each with its
// setup (which registers handlers before the node runs).
func Pair(t *testing.T, a, b string, setupA, setupB func(*pipe.Node)) (*Node, *Node) {
	t.Helper()
	na, nb := NewNode(t, a), NewNode(t, b)
	Trust(t, na, nb)
	Trust(t, nb, na)
	na.Start(t, b, nb.Addr(), setupA)
	nb.Start(t, a, na.Addr(), setupB)
	return na, nb
}

func NewSigner(t testing.TB) ssh.Signer {
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

// Node is a pipe node on loopback with its key files and an observed
// log.
type Node struct {
	Name   string
	Signer ssh.Signer
	ln     net.Listener
	dir    string // authorized_keys, known_hosts
	Log    *zap.Logger
	Logs   *observer.ObservedLogs
	Pipe   *pipe.Node
	cancel context.CancelFunc
	done   chan error
}

func NewNode(t *testing.T, name string) *Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	tl := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Core()
	return &Node{Name: name, Signer: NewSigner(t), ln: ln, dir: t.TempDir(), Logs: logs,
		Log: zap.New(zapcore.NewTee(core, tl)).Named(name)}
}

func (tn *Node) Addr() string { return tn.ln.Addr().String() }

func (tn *Node) File(name string) string { return filepath.Join(tn.dir, name) }

// trust makes a accept b's key and trust b's host key at b's address.
func Trust(t testing.TB, a, b *Node) {
	t.Helper()
	writeFile(t, a.File("authorized_keys"), string(ssh.MarshalAuthorizedKey(b.Signer.PublicKey())))
	writeFile(t, a.File("known_hosts"), knownhosts.Line([]string{knownhosts.Normalize(b.Addr())}, b.Signer.PublicKey())+"\n")
}

// start runs tn with its peer at peerAddr; setup registers handlers and
// session hooks before the node runs. The node stops at cleanup.
func (tn *Node) Start(t *testing.T, peer, peerAddr string, setup func(*pipe.Node)) {
	t.Helper()
	n, err := pipe.New(pipe.Options{
		Node: tn.Name,
		Config: pipe.Config{
			AuthorizedKeys: tn.File("authorized_keys"),
			KnownHosts:     tn.File("known_hosts"),
			Heartbeat:      duration.Duration(100 * time.Millisecond),
			Timeout:        duration.Duration(3 * time.Second),
		},
		Peer:       pipe.Peer{Name: peer, Address: peerAddr},
		Signer:     tn.Signer,
		Log:        tn.Log,
		Listener:   tn.ln,
		MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(n)
	}
	tn.Pipe = n
	ctx, cancel := context.WithCancel(context.Background())
	tn.cancel = cancel
	tn.done = make(chan error, 1)
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(func() {
		if !tn.Stop() {
			t.Errorf("%s: the pipe node did not stop within %v", tn.Name, WaitTimeout)
		}
	})
}

// stop stops the node and reports whether it did within WaitTimeout.
func (tn *Node) Stop() bool {
	if tn.cancel == nil {
		return true
	}
	tn.cancel()
	tn.cancel = nil
	timer := time.NewTimer(WaitTimeout)
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
func (tn *Node) Warned(want ...string) bool {
	for _, e := range tn.Logs.All() {
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
func (tn *Node) Warnings() []string {
	var out []string
	for _, e := range tn.Logs.All() {
		if e.Level >= zap.WarnLevel {
			out = append(out, e.Message+" "+fmt.Sprint(e.ContextMap()))
		}
	}
	return out
}

// Restart stops tn and starts it again on the same address, with setup run
// on the new pipe node.
func (tn *Node) Restart(t *testing.T, peer, peerAddr string, setup func(*pipe.Node)) {
	t.Helper()
	addr := tn.Addr()
	if !tn.Stop() {
		t.Fatalf("%s: the pipe node did not stop within %v", tn.Name, WaitTimeout)
	}
	var err error
	deadline := time.Now().Add(WaitTimeout)
	for tn.ln, err = net.Listen("tcp", addr); err != nil; tn.ln, err = net.Listen("tcp", addr) {
		if time.Now().After(deadline) {
			t.Fatalf("listen again on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tn.Start(t, peer, peerAddr, setup)
}
