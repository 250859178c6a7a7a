package failover

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestPairSimulation drives two machines through random partitions and
// health outages, one second at a time, delivering heartbeats while the
// link is up, and checks the invariants on every step:
//   - an epoch never goes down, and a role change is persisted before it
//     is announced;
//   - while the link is up, two primaries never last past the next
//     heartbeat exchange;
//   - once the link has been up and both nodes healthy for a while,
//     exactly one node is primary.
func TestPairSimulation(t *testing.T) {
	for seed := range uint64(300) {
		if err := simulate(seed, 900); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

type simNode struct {
	m         *Machine
	persisted Persisted
	sick      int // seconds of failing checks left
}

func simulate(seed uint64, steps int) error {
	rng := rand.New(rand.NewPCG(seed, 42))
	now := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	params := func(node, peer, addr string) Params {
		return Params{Node: node, Peer: peer, Address: addr, Priority: 100, DeadAfter: 10 * time.Second,
			Rise: 3, Fall: 2, MinDwell: 5 * time.Second, MaxPerHour: 1000}
	}
	nodes := []*simNode{
		{m: NewMachine(params("alpha", "beta", "192.0.2.1"), Persisted{})},
		{m: NewMachine(params("beta", "alpha", "192.0.2.2"), Persisted{})},
	}
	var log []string
	fail := func(format string, args ...any) error {
		tail := log
		if len(tail) > 30 {
			tail = tail[len(tail)-30:]
		}
		msg := fmt.Sprintf(format, args...)
		for _, l := range tail {
			msg += "\n  " + l
		}
		return fmt.Errorf("%s", msg)
	}
	apply := func(i int, acts []Action, err error, step int) error {
		n := nodes[i]
		for _, a := range acts {
			switch a := a.(type) {
			case Persist:
				if a.Epoch < n.persisted.Epoch {
					return fail("step %d: node %d persisted epoch %d after %d", step, i, a.Epoch, n.persisted.Epoch)
				}
				n.persisted = Persisted(a)
			case BecomePrimary:
				if n.persisted != (Persisted{Epoch: a.Epoch, Role: Primary}) {
					return fail("step %d: node %d became primary at %d but persisted %+v", step, i, a.Epoch, n.persisted)
				}
				log = append(log, fmt.Sprintf("step %d: %s primary at %d: %s", step, n.m.p.Node, a.Epoch, a.Reason))
			case BecomeStandby:
				if n.persisted != (Persisted{Epoch: a.Epoch, Role: Standby}) {
					return fail("step %d: node %d became standby at %d but persisted %+v", step, i, a.Epoch, n.persisted)
				}
				log = append(log, fmt.Sprintf("step %d: %s standby at %d: %s", step, n.m.p.Node, a.Epoch, a.Reason))
			}
		}
		return nil
	}
	for i := range nodes {
		acts, err := nodes[i].m.Step(Start{Now: now})
		if err := apply(i, acts, err, 0); err != nil {
			return err
		}
	}
	linkUp, linkFor := true, 0 // linkFor: seconds left in the current link state
	stable := 0                // seconds with the link up and both healthy
	dual := 0                  // consecutive steps with two primaries and the link up
	for step := 1; step <= steps; step++ {
		now = now.Add(time.Second)
		if linkFor <= 0 {
			linkUp = !linkUp
			if linkUp {
				linkFor = 20 + rng.IntN(120)
			} else {
				linkFor = 1 + rng.IntN(40)
			}
			log = append(log, fmt.Sprintf("step %d: link up=%t for %ds", step, linkUp, linkFor))
		}
		linkFor--
		for i, n := range nodes {
			if n.sick == 0 && rng.IntN(200) == 0 {
				n.sick = 1 + rng.IntN(30)
				log = append(log, fmt.Sprintf("step %d: %s sick for %ds", step, n.m.p.Node, n.sick))
			}
			ok := n.sick == 0
			if n.sick > 0 {
				n.sick--
			}
			acts, err := n.m.Step(HealthResult{Now: now, OK: ok, Detail: "sim"})
			if err := apply(i, acts, err, step); err != nil {
				return err
			}
			acts, err = n.m.Step(Tick{Now: now})
			if err := apply(i, acts, err, step); err != nil {
				return err
			}
		}
		if linkUp {
			for i, n := range nodes {
				role, epoch := n.m.Role()
				hb := PeerHeartbeat{Now: now, From: n.m.p.Node, Epoch: epoch, Role: role, Health: n.m.Health(),
					Hold: n.m.Hold(), Priority: n.m.p.Priority, Address: n.m.p.Address, Time: now}
				acts, err := nodes[1-i].m.Step(hb)
				if err := apply(1-i, acts, err, step); err != nil {
					return err
				}
			}
		}
		ra, _ := nodes[0].m.Role()
		rb, _ := nodes[1].m.Role()
		if linkUp && ra == Primary && rb == Primary {
			dual++
			if dual > 2 {
				return fail("step %d: both primary for %d steps with the link up", step, dual)
			}
		} else {
			dual = 0
		}
		if linkUp && nodes[0].m.Health() == HealthUp && nodes[1].m.Health() == HealthUp {
			stable++
		} else {
			stable = 0
		}
		if stable > 15 && (ra == Primary) == (rb == Primary) {
			return fail("step %d: link up and both healthy for %ds but roles %s and %s (waiting: %q / %q)", step, stable, ra, rb,
				nodes[0].m.Status().Waiting, nodes[1].m.Status().Waiting)
		}
	}
	return nil
}
