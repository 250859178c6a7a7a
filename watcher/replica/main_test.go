package replica

// Helpers the package's tests share: node keys and the OpenSSH files that
// trust them, pipe nodes on loopback, and replica engines on real temp
// trees with real index databases and conflict logs. The key and node
// helpers follow pipe/node_test.go, whose _test files cannot be imported.

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandemhost/tandem/internal/pipetest"

	"go.uber.org/goleak"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/watcher/index"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rootName is the name of the synced tree in every test.
const rootName = "data"

// waitTimeout bounds every wait for an event in these tests.
const waitTimeout = pipetest.WaitTimeout

// waitFor polls cond until it holds, or fails the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	pipetest.WaitFor(t, what, cond)
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// side is one node of a replicating pair: a pipe node, a sync tree, an
// index, a conflict log and the engine over them.
type side struct {
	*pipetest.Node
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
	s := &side{Node: pipetest.NewNode(t, name), root: root}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	var err error
	if s.db, err = index.Open(filepath.Join(state, "index.db"), s.Log); err != nil {
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
		Log:         s.Log,
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
			t.Errorf("%s: Engine.Run = %v", s.Name, err)
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
