package quorum

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Bounds, derived from testDeadAfter like the code derives its timeouts.
var (
	testTimeouts = TimeoutsFor(testDeadAfter)
	// electWithin bounds a first election and a hand-over: generous, it
	// only keeps a broken test from hanging.
	electWithin = 10 * testDeadAfter
	// failoverWithin is the documented worst case (3 heartbeat timeouts
	// + 2 election timeouts = dead_after) plus half of it for a busy
	// machine.
	failoverWithin = testDeadAfter + testDeadAfter/2
	// stepDownWithin is the documented worst case (2 leases = 0.8
	// heartbeat timeouts) plus a fifth of a heartbeat timeout.
	stepDownWithin = testTimeouts.Heartbeat
)

var nodes = []string{"alpha", "beta"}

func otherNode(name string) string {
	if name == "alpha" {
		return "beta"
	}
	return "alpha"
}

// waitEvent reads q's Events until one equals want.
func waitEvent(t *testing.T, q *Quorum, want Event) {
	t.Helper()
	timeout := time.After(electWithin)
	var last Event
	for {
		select {
		case ev, ok := <-q.Events():
			if !ok {
				t.Fatalf("Events closed; last %+v, want %+v", last, want)
			}
			if ev == want {
				return
			}
			last = ev
		case <-timeout:
			t.Fatalf("no Event %+v within %v; last %+v", want, electWithin, last)
		}
	}
}

func TestElectsOneLeader(t *testing.T) {
	c := newCluster(t, map[string]int{"alpha": 100, "beta": 100})
	leader, term := c.waitAgreed(electWithin, voterNames...)
	if term == 0 {
		t.Fatalf("leader %s in term 0", leader)
	}
	for _, name := range voterNames {
		q := c.voter(name)
		waitEvent(t, q, Event{Leader: leader, Term: term, IsSelf: name == leader})
		if got, gotTerm := q.Leader(); got != leader || gotTerm != term {
			t.Errorf("%s: Leader() = %s, %d, want %s, %d", name, got, gotTerm, leader, term)
		}
	}
}

func TestWitnessHandsLeadershipOver(t *testing.T) {
	tests := []struct {
		name     string
		priority map[string]int
		prefer   string // Transfer to this node first ("" none)
		want     string
	}{
		{"to the higher priority", map[string]int{"alpha": 100, "beta": 200}, "", "beta"},
		{"ties by name", map[string]int{"alpha": 100, "beta": 100}, "", "alpha"},
		{"to the preferred primary over priority", map[string]int{"alpha": 100, "beta": 200}, "alpha", "alpha"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, tt.priority)
			leader, _ := c.waitAgreed(electWithin, voterNames...)
			if tt.prefer != "" {
				if err := c.voter(leader).Transfer(tt.prefer); err != nil {
					t.Fatalf("Transfer(%s): %v", tt.prefer, err)
				}
				leader, _ = c.waitAgreed(electWithin, voterNames...)
				waitFor(t, electWithin, "the witness to apply the preference", func() bool {
					return c.voter(DefaultWitness).Preferred() == tt.prefer
				})
			}
			_, term := c.waitAgreed(electWithin, voterNames...)

			// Make the witness win, bypassing Transfer (which refuses it).
			w := c.voter(DefaultWitness)
			if err := c.voter(leader).r.LeadershipTransferToServer(DefaultWitness, DefaultWitness).Error(); err != nil {
				t.Fatalf("transfer from %s to the witness: %v", leader, err)
			}
			var wonAt, lostAt time.Time
			var got string
			var gotTerm uint64
			waitFor(t, electWithin, "the witness to win and hand over", func() bool {
				ev := w.state()
				if ev.IsSelf && wonAt.IsZero() {
					wonAt = time.Now()
				}
				if !ev.IsSelf && !wonAt.IsZero() && lostAt.IsZero() {
					lostAt = time.Now()
				}
				var ok bool
				got, gotTerm, ok = c.agreed(voterNames...)
				return ok && gotTerm >= term+2
			})
			// Two elections after term: the witness's, then the node's.
			if got != tt.want {
				t.Errorf("leader after the witness won = %s (term %d), want %s", got, gotTerm, tt.want)
			}
			if !wonAt.IsZero() {
				t.Logf("the witness led for %v", lostAt.Sub(wonAt))
				if d := lostAt.Sub(wonAt); d > testTimeouts.Election*2 {
					t.Errorf("the witness kept leadership for %v, want under %v", d, testTimeouts.Election*2)
				}
			}
		})
	}
}

func TestLeaderCrashFailover(t *testing.T) {
	c := newCluster(t, map[string]int{"alpha": 100, "beta": 100})
	leader, term := c.waitAgreed(electWithin, voterNames...)
	survivor := otherNode(leader)

	c.stop(leader)
	var got string
	var gotTerm uint64
	took := waitFor(t, failoverWithin, "a new leader after the crash", func() bool {
		var ok bool
		got, gotTerm, ok = c.agreed(survivor, DefaultWitness)
		return ok && gotTerm > term
	})
	t.Logf("leader %s (term %d) closed: %s leads in term %d after %v (bound %v)",
		leader, term, got, gotTerm, took, failoverWithin)
	if got != survivor {
		t.Fatalf("leader after the crash = %s, want %s", got, survivor)
	}

	// The crashed node rejoins as a follower, its term never going back.
	q := c.start(leader)
	if _, restarted := q.Leader(); restarted < term {
		t.Errorf("%s restarted in term %d, below its term %d before", leader, restarted, term)
	}
	again, againTerm := c.waitAgreed(electWithin, voterNames...)
	if again != survivor || againTerm != gotTerm {
		t.Errorf("after %s rejoined: leader %s term %d, want %s term %d (no failback)",
			leader, again, againTerm, survivor, gotTerm)
	}
}

// TestPartitionedLeaderStepsDown is the split-brain guarantee: a leader cut
// off from both other voters stops being leader before the others elect a
// new one, and after healing it follows.
func TestPartitionedLeaderStepsDown(t *testing.T) {
	c := newCluster(t, map[string]int{"alpha": 100, "beta": 100})
	leader, term := c.waitAgreed(electWithin, voterNames...)
	old, other := c.voter(leader), otherNode(leader)

	c.net.isolate(leader)
	start := time.Now()
	// stepDown: the old leader no longer says IsSelf; rival: a voter on
	// the other side (the witness included) first says IsSelf in a newer
	// term; elected: both there agree on a node.
	var stepDown, rival, elected time.Duration
	var newLeader string
	var newTerm uint64
	waitFor(t, failoverWithin, "the old leader to step down and the others to elect", func() bool {
		// Read the old leader first, so that a step-down and an election
		// between two polls count as in order; the margin is tens of ms.
		oldSelf := old.state().IsSelf
		if !oldSelf && stepDown == 0 {
			stepDown = time.Since(start)
		}
		for _, name := range []string{other, DefaultWitness} {
			if ev := c.voter(name).state(); ev.IsSelf && ev.Term > term && rival == 0 {
				rival = time.Since(start)
			}
		}
		if oldSelf && rival != 0 {
			t.Fatalf("split brain: %s still leads %v after the cut, a rival leads since %v",
				leader, time.Since(start), rival)
		}
		if l, tm, ok := c.agreed(other, DefaultWitness); ok && tm > term && elected == 0 {
			newLeader, newTerm, elected = l, tm, time.Since(start)
		}
		return stepDown != 0 && elected != 0
	})
	t.Logf("%s cut off: stepped down after %v (bound %v); first rival leader after %v; %s leads in term %d after %v",
		leader, stepDown, stepDownWithin, rival, newLeader, newTerm, elected)
	if stepDown > stepDownWithin {
		t.Errorf("%s stepped down after %v, want within %v", leader, stepDown, stepDownWithin)
	}
	if newLeader != other {
		t.Errorf("new leader = %s, want %s", newLeader, other)
	}
	waitEvent(t, old, Event{Leader: "", Term: term, IsSelf: false})

	c.net.heal(leader)
	healed, healedTerm := c.waitAgreed(electWithin, voterNames...)
	if healed != other || healedTerm < newTerm {
		t.Errorf("after healing: leader %s term %d, want %s term >= %d", healed, healedTerm, other, newTerm)
	}
}

func TestTransfer(t *testing.T) {
	c := newCluster(t, map[string]int{"alpha": 200, "beta": 100})
	leader, _ := c.waitAgreed(electWithin, voterNames...)
	follower := otherNode(leader)

	steps := []struct {
		from, to string
	}{
		{follower, follower},     // a follower asks for itself (forwarded)
		{DefaultWitness, leader}, // the witness asks (forwarded)
		{leader, follower},       // the leader gives it away
		{follower, follower},     // the leader asks for itself: nothing moves
	}
	for _, s := range steps {
		_, before := c.waitAgreed(electWithin, voterNames...)
		if err := c.voter(s.from).Transfer(s.to); err != nil {
			t.Fatalf("%s: Transfer(%s): %v", s.from, s.to, err)
		}
		got, term := c.waitAgreed(electWithin, voterNames...)
		if got != s.to || term < before {
			t.Fatalf("%s: after Transfer(%s): leader %s term %d (before: term %d)", s.from, s.to, got, term, before)
		}
		for _, name := range voterNames {
			waitFor(t, electWithin, name+" to apply the preference", func() bool {
				return c.voter(name).Preferred() == s.to
			})
		}
	}

	for _, to := range []string{DefaultWitness, "gamma"} {
		if err := c.voter("alpha").Transfer(to); err == nil {
			t.Errorf("Transfer(%q) succeeded, want an error", to)
		}
	}
}

func TestTransferWithoutLeader(t *testing.T) {
	n := newNetwork(t)
	o := Options{
		Node: "alpha", Voters: voterNames, Dir: t.TempDir(), Transport: n.layer("alpha"),
		DeadAfter: testDeadAfter, Log: testLogger(t), Bootstrap: true,
	}
	q, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Transfer("alpha"); !errors.Is(err, ErrNoLeader) {
		t.Errorf("Transfer with no other voter up = %v, want ErrNoLeader", err)
	}
}

func TestRestartKeepsTermAndPreference(t *testing.T) {
	c := newCluster(t, map[string]int{"alpha": 100, "beta": 200})
	leader, _ := c.waitAgreed(electWithin, voterNames...)
	prefer := otherNode(leader)
	if err := c.voter(leader).Transfer(prefer); err != nil {
		t.Fatal(err)
	}
	_, term := c.waitAgreed(electWithin, voterNames...)
	for _, name := range voterNames {
		waitFor(t, electWithin, name+" to apply the preference", func() bool {
			return c.voter(name).Preferred() == prefer
		})
	}

	terms := map[string]uint64{}
	for _, name := range voterNames {
		_, terms[name] = c.voter(name).Leader()
		c.stop(name)
	}
	// Bootstrap is set again: with state on disk it must do nothing.
	for _, name := range voterNames {
		q := c.start(name)
		if _, got := q.Leader(); got < terms[name] {
			t.Errorf("%s restarted in term %d, before it was in %d", name, got, terms[name])
		}
	}
	_, after := c.waitAgreed(electWithin, voterNames...)
	if after <= term {
		t.Errorf("term after the restart = %d, want above %d", after, term)
	}
	for _, name := range voterNames {
		waitFor(t, electWithin, name+" to restore the preference", func() bool {
			return c.voter(name).Preferred() == prefer
		})
	}
}

func TestNewRefuses(t *testing.T) {
	layer := func(name string) *StreamLayer { return NewStreamLayer(name, nil) }
	valid := func() Options {
		return Options{Node: "alpha", Voters: voterNames, Dir: t.TempDir(), Transport: layer("alpha")}
	}
	tests := []struct {
		name   string
		modify func(*Options)
		is     error
	}{
		{"no witness", func(o *Options) { o.Voters = nodes }, ErrNoWitness},
		{"four voters", func(o *Options) { o.Voters = append(slices.Clone(voterNames), "delta") }, nil},
		{"node not a voter", func(o *Options) { o.Node, o.Transport = "gamma", layer("gamma") }, nil},
		{"witness not a voter", func(o *Options) { o.Witness = "arbiter" }, nil},
		{"duplicate voter", func(o *Options) { o.Voters = []string{"alpha", "alpha", "witness"} }, nil},
		{"transport of another node", func(o *Options) { o.Transport = layer("beta") }, nil},
		{"dead_after too small", func(o *Options) { o.DeadAfter = 10 * time.Millisecond }, nil},
		{"no dir", func(o *Options) { o.Dir = "" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.modify(&o)
			q, err := New(o)
			if err == nil {
				q.Close()
				t.Fatalf("New(%+v) succeeded, want an error", o)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("New = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestTimeoutsFor(t *testing.T) {
	got := TimeoutsFor(10 * time.Second)
	want := Timeouts{Heartbeat: 2 * time.Second, Election: 2 * time.Second, LeaderLease: 800 * time.Millisecond, IO: 2 * time.Second}
	if got != want {
		t.Fatalf("TimeoutsFor(10s) = %+v, want %+v", got, want)
	}
	// The split-brain margin: a cut-off leader gives up (2 leases) before
	// a follower may start an election (1 heartbeat timeout).
	for _, d := range []time.Duration{MinDeadAfter, time.Second, 10 * time.Second, time.Minute} {
		tm := TimeoutsFor(d)
		if 2*tm.LeaderLease >= tm.Heartbeat {
			t.Errorf("TimeoutsFor(%v): 2 leases %v not below the heartbeat timeout %v", d, 2*tm.LeaderLease, tm.Heartbeat)
		}
		conf := raft.DefaultConfig()
		conf.LocalID = "alpha"
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = tm.Heartbeat, tm.Election, tm.LeaderLease
		if err := raft.ValidateConfig(conf); err != nil {
			t.Errorf("TimeoutsFor(%v): raft refuses: %v", d, err)
		}
	}
}

var measure = flag.Duration("quorum.measure", 0, "measure failover times with this dead_after (e.g. 10s); slow")

// TestMeasureFailover measures, with -quorum.measure=DEAD_AFTER, the time
// from a leader's crash to a new leader, and from a leader's isolation to
// its step-down and to a new leader, over a few rounds.
func TestMeasureFailover(t *testing.T) {
	if *measure == 0 {
		t.Skip("set -quorum.measure=10s to measure")
	}
	const rounds = 3
	d := *measure
	bound := d + d/2
	for i := range rounds {
		c := newClusterWith(t, map[string]int{"alpha": 100, "beta": 100}, d)
		leader, term := c.waitAgreed(10*d, voterNames...)
		c.stop(leader)
		took := waitFor(t, bound, "a new leader", func() bool {
			_, tm, ok := c.agreed(otherNode(leader), DefaultWitness)
			return ok && tm > term
		})
		t.Logf("dead_after %v round %d: crash -> new leader %v", d, i, took)

		c.start(leader)
		leader, term = c.waitAgreed(10*d, voterNames...)
		old := c.voter(leader)
		c.net.isolate(leader)
		start := time.Now()
		var stepDown time.Duration
		elected := waitFor(t, bound, "a new leader after the cut", func() bool {
			if stepDown == 0 && !old.state().IsSelf {
				stepDown = time.Since(start)
			}
			_, tm, ok := c.agreed(otherNode(leader), DefaultWitness)
			return ok && tm > term
		})
		t.Logf("dead_after %v round %d: cut -> old leader steps down %v, new leader %v", d, i, stepDown, elected)
		for _, name := range voterNames {
			c.stop(name)
		}
	}
}

func TestStore(t *testing.T) {
	s, err := openStore(filepath.Join(t.TempDir(), "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if first, _ := s.FirstIndex(); first != 0 {
		t.Errorf("FirstIndex of an empty store = %d, want 0", first)
	}
	at := time.Unix(1700000000, 123)
	var logs []*raft.Log
	for i := uint64(1); i <= 5; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand, Data: []byte{byte(i)}, Extensions: []byte("x"), AppendedAt: at})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 3 || last != 5 {
		t.Errorf("after DeleteRange(1, 2): first %d last %d, want 3 5", first, last)
	}
	var l raft.Log
	if err := s.GetLog(2, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog(2) = %v, want ErrLogNotFound", err)
	}
	if err := s.GetLog(4, &l); err != nil {
		t.Fatal(err)
	}
	if l.Index != 4 || l.Term != 2 || l.Type != raft.LogCommand || string(l.Data) != "\x04" ||
		string(l.Extensions) != "x" || !l.AppendedAt.Equal(at) {
		t.Errorf("GetLog(4) = %+v", l)
	}

	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Errorf("GetUint64 of a missing key = %v, want raft's \"not found\"", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); v != 7 || err != nil {
		t.Errorf("GetUint64 = %d, %v, want 7", v, err)
	}
}

func FuzzDecodeLog(f *testing.F) {
	f.Add(encodeLog(&raft.Log{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("conf")}))
	f.Add(encodeLog(&raft.Log{Index: 1 << 40, Term: 3, Data: encodePrefer("beta"), AppendedAt: time.Unix(0, 42)}))
	f.Add([]byte{logFormat, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			return
		}
		// What decodes re-encodes to the same bytes, except that an unset
		// time may have been written as a time at the epoch.
		var again raft.Log
		if err := decodeLog(encodeLog(&l), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.Index != l.Index || again.Term != l.Term || string(again.Data) != string(l.Data) {
			t.Fatalf("round trip %+v != %+v", again, l)
		}
	})
}

func TestRunWitness(t *testing.T) {
	n := newNetwork(t)
	o := Options{
		Node: "alpha", Voters: voterNames, Dir: t.TempDir(), Transport: n.layer("alpha"),
		DeadAfter: testDeadAfter, Log: testLogger(t), Bootstrap: true,
	}
	if err := RunWitness(context.Background(), o); err == nil {
		t.Fatal("RunWitness as alpha succeeded, want an error")
	}

	o.Node, o.Transport = DefaultWitness, n.layer(DefaultWitness)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunWitness(ctx, o) }()
	// Alone, the witness stays a follower; it must still stop on cancel.
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunWitness = %v, want nil after cancel", err)
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (*memSink) ID() string      { return "test" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (*memSink) Close() error    { return nil }

func TestFSMSnapshotRestore(t *testing.T) {
	var f fsm
	if res := f.Apply(&raft.Log{Index: 1, Data: encodePrefer("beta")}); res != nil {
		t.Fatalf("Apply(prefer beta) = %v", res)
	}
	if res := f.Apply(&raft.Log{Index: 2, Data: []byte{99}}); res == nil {
		t.Error("Apply(unknown command) = nil, want an error")
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil || sink.cancelled {
		t.Fatalf("Persist = %v (cancelled %v)", err, sink.cancelled)
	}
	var restored fsm
	if err := restored.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	if got := restored.get(); got != "beta" {
		t.Errorf("restored preference = %q, want beta", got)
	}
	if err := restored.Restore(io.NopCloser(strings.NewReader("{"))); err == nil {
		t.Error("Restore of a torn snapshot succeeded")
	}
}
