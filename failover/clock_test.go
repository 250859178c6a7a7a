package failover

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestRunnerClock runs a runner on synctest's fake clock (no peer, started
// with force, default timings, no checks): it gives the peer exactly
// dead_after (10s) to show up, then promotes and points DNS, at 10s and
// not a tick later.
func TestRunnerClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Address: "198.51.100.1"}
		cfg.ApplyDefaults()
		dns := &recordingDNS{}
		r, err := NewRunner(RunnerOptions{Config: cfg, Node: "alpha", Peer: "beta", StateDir: t.TempDir(), DNS: dns, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()

		time.Sleep(9500 * time.Millisecond)
		synctest.Wait()
		st := r.Status()
		if st.Role != Standby || !st.Healthy || len(dns.Calls()) != 0 {
			t.Errorf("at 9.5s: %s, healthy %t, DNS calls %v; want a healthy standby, no DNS", st.Role, st.Healthy, dns.Calls())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		st = r.Status()
		if st.Role != Primary || st.Epoch != 1 || !slices.Equal(st.DNSTarget, []string{"198.51.100.1"}) {
			t.Errorf("at 10.5s: %+v; want primary at epoch 1 with DNS", st)
		}
		if at := st.LastTransition.At.Sub(start); at != DefaultDeadAfter {
			t.Errorf("promoted at %v, want exactly dead_after %v", at, DefaultDeadAfter)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
