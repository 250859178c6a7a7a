package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tandemhost/tandem/failover"
	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/internal/duration"
)

// serveRoles serves the role routes for r on the control socket of the
// config at cfgPath until the test ends.
func serveRoles(t *testing.T, cfgPath string, r *failover.Runner) {
	t.Helper()
	state := filepath.Join(filepath.Dir(cfgPath), "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := control.Listen(control.SocketPath(state))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	roleRoutes(mux, r)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- control.Serve(ctx, ln, mux) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
}

// TestPromoteDemoteThroughTheDaemon runs tandem promote and demote against
// a real failover runner (no peer: started with force) behind the control
// socket.
func TestPromoteDemoteThroughTheDaemon(t *testing.T) {
	cfgPath := writeConfig(t, minimalConfig)
	if code, _, errs := cli(t, "promote", "-c", cfgPath); code != exitNotRunning || !strings.Contains(errs, "not running") {
		t.Errorf("promote without a daemon = %d, %q; want %d", code, errs, exitNotRunning)
	}
	state := filepath.Join(filepath.Dir(cfgPath), "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	fc := failover.Config{Address: "198.51.100.1", Heartbeat: duration.Duration(20 * time.Millisecond),
		DeadAfter: duration.Duration(time.Hour), Rise: 2, Fall: 1}
	r, err := failover.NewRunner(failover.RunnerOptions{Config: fc, Node: "alpha", Peer: "beta", StateDir: state,
		Force: true, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	serveRoles(t, cfgPath, r)
	// Wait until the node's own checks (none: always passing) are up.
	deadline := time.After(10 * time.Second)
	for {
		changed := r.Changed()
		if r.Status().Healthy {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("runner never became healthy")
		}
	}

	steps := []struct {
		args     []string
		code     int
		out, err string // substrings
	}{
		{[]string{"promote"}, exitFailure, "", "beta is not reachable"},
		{[]string{"promote", "--force"}, exitOK, "alpha is primary at epoch 1 (operator: tandem promote --force)\nDNS: 198.51.100.1", ""},
		{[]string{"promote", "--force"}, exitFailure, "", "already primary"},
		{[]string{"demote"}, exitFailure, "", "use --force"},
		{[]string{"demote", "--force"}, exitOK, "alpha is standby at epoch 1", ""},
		{[]string{"demote", "extra"}, exitUsage, "", "unexpected argument"},
	}
	for _, s := range steps {
		code, out, errs := cli(t, append(s.args, "-c", cfgPath)...)
		if code != s.code || !strings.Contains(out, s.out) || !strings.Contains(errs, s.err) {
			t.Errorf("tandem %v = %d, stdout %q, stderr %q; want %d, %q, %q", s.args, code, out, errs, s.code, s.out, s.err)
		}
	}
	if st := r.Status(); st.Role != failover.Standby || !st.Hold {
		t.Errorf("after demote --force: %+v", st)
	}
}

func TestPromoteWhenFailoverOff(t *testing.T) {
	cfgPath := writeConfig(t, minimalConfig)
	serveRoles(t, cfgPath, nil)
	code, _, errs := cli(t, "promote", "-c", cfgPath)
	if code != exitFailure || !strings.Contains(errs, "failover is off") {
		t.Errorf("promote with failover off = %d, %q; want %d and 'failover is off'", code, errs, exitFailure)
	}
}

func TestRoleHelp(t *testing.T) {
	for _, cmd := range []string{"promote", "demote"} {
		code, out, _ := cli(t, "help", cmd)
		if code != exitOK || !strings.Contains(out, "--force") || !strings.Contains(out, "Examples:") || !strings.Contains(out, "3 when the daemon is not running") {
			t.Errorf("help %s = %d, %q", cmd, code, out)
		}
	}
}
