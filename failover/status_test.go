package failover

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestStatusSummary(t *testing.T) {
	now := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	s := Status{Node: "alpha", Peer: "beta", MachineStatus: MachineStatus{
		Role: Primary, Epoch: 4, Since: now.Add(-time.Minute),
		LastTransition: Transition{At: now.Add(-time.Minute), From: Standby, To: Primary, Epoch: 4, Reason: "beta silent for 10s (dead_after 10s)"},
		Health:         HealthUp, DNS: []string{"198.51.100.1"}, PeerSeen: true, LastHeard: now.Add(-70 * time.Second),
	}, DNSUpdate: true, DNSError: "NOTAUTH: unknown key tandem-key.", ReadOnlyApplied: "off"}
	got := strings.Join(s.Summary(now), "\n")
	for _, want := range []string{
		"role PRIMARY at epoch 4 since",
		"last change: standby -> primary at",
		"beta silent for 10s",
		"own checks: up",
		"peer beta: SILENT since",
		"DNS: pointing at 198.51.100.1 FAILS: NOTAUTH",
		"MySQL read_only: off",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Summary lacks %q:\n%s", want, got)
		}
	}
}

// TestStatusJSON: the status survives JSON both ways (the control socket),
// roles and health by name.
func TestStatusJSON(t *testing.T) {
	s := Status{Node: "alpha", MachineStatus: MachineStatus{Role: Primary, Epoch: 3, Health: HealthDown, DNS: []string{"192.0.2.1"}}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"role":"primary"`, `"health":"down"`, `"epoch":3`, `"node":"alpha"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Role != Primary || back.Health != HealthDown || back.Epoch != 3 {
		t.Errorf("round trip = %+v", back)
	}
}
