package failover

// This test starts three real raft voters (failover/quorum: alpha, beta and
// the witness, raft-boltdb in temp dirs) talking over loopback TCP, and a
// failover Runner for each node on top, with recording DNS.

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tandemhost/tandem/failover/quorum"
	"github.com/tandemhost/tandem/internal/duration"
)

// loopbackVoters is three quorum voters over loopback TCP.
type loopbackVoters struct {
	t      *testing.T
	dir    string
	lns    map[string]net.Listener
	layers map[string]*quorum.StreamLayer
	voters map[string]*quorum.Quorum
	mu     sync.Mutex // guards layers, voters
	wg     sync.WaitGroup
}

var quorumNames = []string{"alpha", "beta", "witness"}

func newLoopbackVoters(t *testing.T, deadAfter time.Duration) *loopbackVoters {
	v := &loopbackVoters{t: t, dir: t.TempDir(), lns: map[string]net.Listener{},
		layers: map[string]*quorum.StreamLayer{}, voters: map[string]*quorum.Quorum{}}
	for _, name := range quorumNames {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		v.lns[name] = ln
	}
	for _, name := range quorumNames {
		v.wg.Go(func() { v.accept(name) })
	}
	t.Cleanup(func() {
		for _, name := range quorumNames {
			v.stop(name)
		}
		for _, ln := range v.lns {
			ln.Close()
		}
		v.wg.Wait()
	})
	for _, name := range quorumNames {
		v.start(name, deadAfter)
	}
	return v
}

func (v *loopbackVoters) accept(name string) {
	for {
		c, err := v.lns[name].Accept()
		if err != nil {
			return
		}
		v.wg.Go(func() {
			v.mu.Lock()
			layer := v.layers[name]
			v.mu.Unlock()
			if layer == nil {
				c.Close()
				return
			}
			_ = layer.Deliver(c) // refused conns: a stopped voter
		})
	}
}

func (v *loopbackVoters) start(name string, deadAfter time.Duration) {
	dial := func(ctx context.Context, peer string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", v.lns[peer].Addr().String())
	}
	layer := quorum.NewStreamLayer(name, dial)
	q, err := quorum.New(quorum.Options{
		Node: name, Voters: quorumNames, Dir: filepath.Join(v.dir, name), Transport: layer,
		Priority: map[string]int{"alpha": 100, "beta": 100}, DeadAfter: deadAfter,
		Log: zaptest.NewLogger(v.t).Named(name + ".raft"), Bootstrap: true,
	})
	if err != nil {
		v.t.Fatalf("quorum.New(%s): %v", name, err)
	}
	v.mu.Lock()
	v.layers[name], v.voters[name] = layer, q
	v.mu.Unlock()
}

func (v *loopbackVoters) stop(name string) {
	v.mu.Lock()
	q := v.voters[name]
	delete(v.voters, name)
	delete(v.layers, name)
	v.mu.Unlock()
	if q != nil {
		if err := q.Close(); err != nil {
			v.t.Errorf("Close(%s): %v", name, err)
		}
	}
}

// TestWitnessFailover: with a witness, exactly one node becomes primary
// with the raft term as its epoch; when it dies the other wins the
// leadership, promotes and points DNS; promote moves the role back.
func TestWitnessFailover(t *testing.T) {
	deadAfter := 1500 * time.Millisecond
	voters := newLoopbackVoters(t, deadAfter)
	runners := map[string]*Runner{}
	stops := map[string]func(){}
	dns := map[string]*recordingDNS{}
	dirs := map[string]string{"alpha": t.TempDir(), "beta": t.TempDir()}
	start := func(name string) {
		peer, addr := "beta", "192.0.2.1"
		if name == "beta" {
			peer, addr = "alpha", "192.0.2.2"
		}
		cfg := testConfig(addr)
		cfg.DeadAfter = duration.Duration(deadAfter)
		cfg.Witness = "witness.example:2222"
		dns[name] = &recordingDNS{}
		voters.mu.Lock()
		q := voters.voters[name]
		voters.mu.Unlock()
		r, err := NewRunner(RunnerOptions{Config: cfg, Node: name, Peer: peer, StateDir: dirs[name],
			DNS: dns[name], Quorum: q, Log: zaptest.NewLogger(t).Named(name)})
		if err != nil {
			t.Fatal(err)
		}
		runners[name] = r
		stops[name] = runRunner(t, r)
	}
	start("alpha")
	start("beta")

	// Exactly one primary, at the raft term.
	var first, second string
	deadline := time.After(20 * time.Second)
	for first == "" {
		ca, cb := runners["alpha"].Changed(), runners["beta"].Changed()
		a, b := runners["alpha"].Status(), runners["beta"].Status()
		switch {
		case a.Role == Primary && b.Role == Primary:
			t.Fatalf("both primary: alpha %+v, beta %+v", a, b)
		case a.Role == Primary && b.Leader == "alpha":
			first, second = "alpha", "beta"
		case b.Role == Primary && a.Leader == "beta":
			first, second = "beta", "alpha"
		}
		if first != "" {
			break
		}
		select {
		case <-ca:
		case <-cb:
		case <-deadline:
			t.Fatalf("no primary: alpha %+v, beta %+v", a, b)
		}
	}
	st := runners[first].Status()
	if st.Epoch != st.LeaderTerm {
		t.Errorf("%s is primary at epoch %d, raft term %d; want them equal", first, st.Epoch, st.LeaderTerm)
	}
	waitStatus(t, runners[first], "DNS", func(s Status) bool { return len(s.DNSTarget) == 1 })

	// The primary dies (its raft voter and its runner): the other wins.
	killed := time.Now()
	stops[first]()
	voters.stop(first)
	st = waitStatus(t, runners[second], second+" primary with DNS", func(s Status) bool {
		return s.Role == Primary && len(s.DNSTarget) == 1
	})
	t.Logf("%s killed -> %s primary at epoch %d with DNS in %v (dead_after %v)", first, second, st.Epoch,
		time.Since(killed).Round(time.Millisecond), deadAfter)
	if st.Epoch != st.LeaderTerm {
		t.Errorf("%s is primary at epoch %d, raft term %d", second, st.Epoch, st.LeaderTerm)
	}
	if got := dns[second].Calls(); !slices.Equal(got[len(got)-1], st.DNSTarget) {
		t.Errorf("%s DNS calls %v, want the last to be %v", second, got, st.DNSTarget)
	}

	// It comes back: it follows the leader as standby, and promote moves
	// the leadership (and the role) to it; the other demotes.
	voters.start(first, deadAfter)
	start(first)
	waitStatus(t, runners[first], first+" standby following "+second, func(s Status) bool {
		return s.Role == Standby && s.Leader == second && s.Healthy
	})
	if err := runners[first].Promote(false); err != nil {
		t.Fatalf("Promote(%s): %v", first, err)
	}
	st = runners[first].Status()
	if st.Role != Primary || st.Epoch != st.LeaderTerm {
		t.Errorf("after Promote: %s %s at epoch %d, term %d", first, st.Role, st.Epoch, st.LeaderTerm)
	}
	waitStatus(t, runners[second], second+" standby", func(s Status) bool { return s.Role == Standby && s.Leader == first })
}
