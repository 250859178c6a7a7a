package failover

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/tandemhost/tandem/failover/quorum"
)

// fakeQuorum stands in for a raft voter: the test sets the leadership;
// Transfer moves it as raft would, or fails with err.
type fakeQuorum struct {
	node   string
	events chan quorum.Event

	mu        sync.Mutex
	term      uint64
	err       error
	transfers []string
}

func newFakeQuorum(node string) *fakeQuorum {
	return &fakeQuorum{node: node, events: make(chan quorum.Event, 16)}
}

func (q *fakeQuorum) Events() <-chan quorum.Event { return q.events }

func (q *fakeQuorum) lead(leader string, term uint64) {
	q.mu.Lock()
	q.term = term
	q.mu.Unlock()
	q.events <- quorum.Event{Leader: leader, Term: term, IsSelf: leader == q.node}
}

func (q *fakeQuorum) Transfer(to string) error {
	q.mu.Lock()
	q.transfers = append(q.transfers, to)
	err, term := q.err, q.term+1
	q.mu.Unlock()
	if err != nil {
		return err
	}
	q.lead(to, term)
	return nil
}

// TestRunnerWitness runs a runner in witness mode: it follows the quorum's
// leadership (the term becomes the epoch), and promote asks the quorum to
// move the leadership, returning once the role followed or the transfer
// failed.
func TestRunnerWitness(t *testing.T) {
	cfg := testConfig("198.51.100.1")
	cfg.Witness = "203.0.113.9:2222"
	q := newFakeQuorum("alpha")
	dns := &recordingDNS{}
	r, err := NewRunner(RunnerOptions{Config: cfg, Node: "alpha", Peer: "beta", StateDir: t.TempDir(),
		DNS: dns, Quorum: q, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runRunner(t, r)
	waitStatus(t, r, "healthy", func(s Status) bool { return s.Healthy })

	q.lead("beta", 4)
	waitStatus(t, r, "standby following beta", func(s Status) bool { return s.Leader == "beta" && s.LeaderTerm == 4 })
	q.lead("alpha", 5)
	waitStatus(t, r, "primary at term 5 with DNS", func(s Status) bool {
		return isRole(Primary, 5)(s) && slices.Equal(s.DNSTarget, []string{"198.51.100.1"})
	})
	q.lead("", 5)
	st := waitStatus(t, r, "standby after losing the leadership", isRole(Standby, 5))
	if !strings.Contains(st.LastTransition.Reason, "lost the raft leadership") {
		t.Errorf("demoted because %q", st.LastTransition.Reason)
	}

	q.lead("beta", 6)
	waitStatus(t, r, "following beta", func(s Status) bool { return s.Leader == "beta" })
	if err := r.Promote(false); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	if st := r.Status(); st.Role != Primary || st.Epoch != 7 {
		t.Errorf("after Promote: %s at epoch %d, want primary at 7", st.Role, st.Epoch)
	}

	q.lead("beta", 8)
	waitStatus(t, r, "standby at 8", isRole(Standby, 8))
	q.mu.Lock()
	q.err = quorum.ErrNoLeader
	q.mu.Unlock()
	if err := r.Promote(false); err == nil || errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no leader known") {
		t.Errorf("Promote with no leader = %v, want the quorum's error", err)
	}
	q.mu.Lock()
	got := slices.Clone(q.transfers)
	q.mu.Unlock()
	if want := []string{"alpha", "alpha"}; !slices.Equal(got, want) {
		t.Errorf("transfers = %v, want %v", got, want)
	}
}

func TestNewRunnerWitnessNeedsQuorum(t *testing.T) {
	cfg := testConfig("198.51.100.1")
	cfg.Witness = "203.0.113.9:2222"
	if _, err := NewRunner(RunnerOptions{Config: cfg, Node: "alpha", Peer: "beta", StateDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "witness") {
		t.Errorf("NewRunner(witness, no quorum) = %v, want an error", err)
	}
	if _, err := NewRunner(RunnerOptions{Config: testConfig("198.51.100.1"), Node: "alpha", Peer: "beta", StateDir: t.TempDir(),
		Quorum: newFakeQuorum("alpha")}); err == nil {
		t.Error("NewRunner(quorum without witness) succeeded")
	}
}
