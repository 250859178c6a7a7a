package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tandemhost/tandem/internal/sdnotify"
)

// How the daemon keeps systemd's start timeout (TimeoutStartSec=90s in the
// unit) from killing a long first scan of the synced trees: every
// startExtendEvery it asks for startExtendBy more.
const (
	startExtendEvery = 20 * time.Second
	startExtendBy    = 60 * time.Second
	// healthTimeout is how long a status query may take before the main
	// loop counts as stuck and the watchdog goes unfed.
	healthTimeout = 10 * time.Second
)

// notifySystemd tells systemd how the daemon is doing, until ctx ends: it
// is a part of the daemon (daemon.run starts it like the others). Under
// systemd (NOTIFY_SOCKET set) it sends EXTEND_TIMEOUT_USEC while the first
// scan of the synced trees runs, then READY=1 (systemd counts the unit as
// started; the peer need not be up, or a dead peer would keep both nodes
// from starting), STATUS= whenever the peer link or the trees change,
// WATCHDOG=1 at half WatchdogSec while the main loop answers, and
// STOPPING=1 when ctx ends. Elsewhere it just waits for ctx.
func (d *daemon) notifySystemd(ctx context.Context) error {
	n, err := sdnotify.FromEnv(os.Getenv, os.Getpid())
	if err != nil {
		return err
	}
	return d.notifyTo(ctx, n)
}

// notifyTo is notifySystemd with the notifier given.
func (d *daemon) notifyTo(ctx context.Context, n *sdnotify.Notifier) error {
	if !n.Enabled() {
		<-ctx.Done() // a part that returns would stop the daemon
		return nil
	}
	// Best effort: the daemon is on its way out either way.
	defer n.Stopping("stopping")
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	var extended time.Time
	for {
		st := d.status()
		if !firstScanRunning(d, st) {
			break
		}
		if time.Since(extended) >= startExtendEvery {
			extended = time.Now()
			if err := n.ExtendTimeout(startExtendBy, "first scan: "+statusLine(st)); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
	}
	last := statusLine(d.status())
	if err := n.Ready(last); err != nil {
		return err
	}
	probe := &healthProbe{query: func() { d.status() }, timeout: healthTimeout}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	// Watchdog returns at once when WatchdogSec is off, else when wctx ends
	// or a ping cannot be sent.
	watchdog := make(chan error, 1)
	go func() { watchdog <- n.Watchdog(wctx, probe.check) }()
	watchdogDone := false
	wait := func() {
		stop()
		if !watchdogDone {
			<-watchdog
		}
	}
	for {
		select {
		case <-ctx.Done():
			wait()
			return nil
		case err := <-watchdog:
			watchdogDone = true
			if err != nil {
				return err
			}
			watchdog = nil // off: keep reporting the status
		case <-d.node.Changed():
		case <-poll.C:
		}
		if line := statusLine(d.status()); line != last {
			last = line
			if err := n.Status(line); err != nil {
				wait()
				return err
			}
		}
	}
}

// firstScanRunning reports whether some synced tree is still in the scan
// it starts with. A tree whose scan failed or that is halted does not hold
// up READY (it would extend the start forever): the status says what is
// wrong with it instead.
func firstScanRunning(d *daemon, st Status) bool {
	if d.files == nil {
		return false
	}
	for _, s := range st.Sync {
		if s.Halted != "" || s.Error != "" {
			continue
		}
		if d.files.Local(s.Path).LastScan.IsZero() {
			return true
		}
	}
	return false
}

// statusLine is the daemon's state in one line for `systemctl status`.
func statusLine(st Status) string {
	var parts []string
	for _, p := range st.Peers {
		switch {
		case p.Connected:
			parts = append(parts, fmt.Sprintf("connected to %s (rtt %.0f ms)", p.Name, p.RTTms))
		case p.LastError != "":
			parts = append(parts, fmt.Sprintf("not connected to %s: %s", p.Name, p.LastError))
		default:
			parts = append(parts, "dialing "+p.Name)
		}
	}
	for _, s := range st.Sync {
		switch {
		case s.Halted != "":
			parts = append(parts, fmt.Sprintf("%s HALTED: %s", s.Path, s.Halted))
		case s.Error != "":
			parts = append(parts, fmt.Sprintf("%s: %s", s.Path, s.Error))
		case s.Scanning:
			parts = append(parts, fmt.Sprintf("%s scanning (%d files)", s.Path, s.ScannedFiles))
		case s.Queued > 0:
			parts = append(parts, fmt.Sprintf("%s %d queued", s.Path, s.Queued))
		}
	}
	return strings.Join(parts, "; ")
}

// healthProbe is the watchdog's question: does the main loop answer a
// status query (peer link state and the index) within timeout? One query
// is in flight at a time; while it hangs, the answer is no.
type healthProbe struct {
	query   func()
	timeout time.Duration
	busy    atomic.Bool // a query is running
}

func (h *healthProbe) check() error {
	if !h.busy.CompareAndSwap(false, true) {
		return fmt.Errorf("a status query has hung for more than %v", h.timeout)
	}
	done := make(chan struct{})
	go func() {
		defer h.busy.Store(false)
		h.query()
		close(done)
	}()
	t := time.NewTimer(h.timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("a status query hung for %v", h.timeout)
	}
}
