package main

// TestUnitNotifyDaemon runs a real daemon (in process) and its systemd
// notifier against a unixgram socket standing in for systemd's
// NOTIFY_SOCKET.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/internal/sdnotify"
)

func TestUnitNotifyDaemon(t *testing.T) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	makeDirs(t, www, 20)
	nodes, err := setupPair(dir, pairOptions{Extra: map[string]string{"alpha": fmt.Sprintf("\n[[sync]]\nname = \"www\"\npath = %q\n", www)}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(nodes[0].ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	env := map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": fmt.Sprint(os.Getpid())}
	n, err := sdnotify.FromEnv(func(k string) string { return env[k] }, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}

	runCtx, stopRun := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- d.run(runCtx) }()
	notifyCtx, stopNotify := context.WithCancel(t.Context())
	notified := make(chan error, 1)
	go func() { notified <- d.notifyTo(notifyCtx, n) }()

	var got []string
	next := func() string {
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		buf := make([]byte, 4096)
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no sd_notify datagram (got so far %q): %v", got, err)
		}
		got = append(got, string(buf[:k]))
		return string(buf[:k])
	}
	// READY comes once the first scan is done, with the peer link in the
	// status; only EXTEND_TIMEOUT_USEC may come before it.
	for m := next(); !strings.HasPrefix(m, "READY=1\n"); m = next() {
		if !strings.HasPrefix(m, "EXTEND_TIMEOUT_USEC=60000000\nSTATUS=first scan: ") {
			t.Fatalf("before READY: %q, want only EXTEND_TIMEOUT_USEC", m)
		}
	}
	if ready := got[len(got)-1]; !strings.Contains(ready, "STATUS=") || !strings.Contains(ready, "beta") {
		t.Errorf("READY datagram = %q, want a STATUS naming the peer", ready)
	}
	if d.files.Local("www").LastScan.IsZero() {
		t.Error("READY before the first scan of www finished")
	}
	// Then the watchdog pings, two per WATCHDOG_USEC (status lines may
	// come in between when the link changes).
	pings := 0
	for pings < 3 {
		if m := next(); m == "WATCHDOG=1" {
			pings++
		} else if !strings.HasPrefix(m, "STATUS=") {
			t.Fatalf("after READY: %q, want WATCHDOG=1 or STATUS=", m)
		}
	}
	stopNotify()
	if err := <-notified; err != nil {
		t.Errorf("notifySystemd = %v", err)
	}
	// STOPPING goes last (a ping already under way may come before it).
	for m := next(); m != "STOPPING=1\nSTATUS=stopping"; m = next() {
		if m != "WATCHDOG=1" {
			t.Fatalf("after stop: %q, want STOPPING=1", m)
		}
	}
	t.Logf("datagrams: %q", got)
	stopRun()
	if err := <-ran; err != nil {
		t.Errorf("daemon run = %v", err)
	}
}

// TestUnitNotifyOutsideSystemd: without NOTIFY_SOCKET the part waits for
// ctx instead of returning, which would stop the whole daemon.
func TestUnitNotifyOutsideSystemd(t *testing.T) {
	n, _ := sdnotify.FromEnv(func(string) string { return "" }, os.Getpid())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- (&daemon{}).notifyTo(ctx, n) }()
	select {
	case err := <-done:
		t.Fatalf("notifyTo without systemd returned %v before ctx ended", err)
	case <-time.After(50 * time.Millisecond): // it must still be waiting; no event to wait for
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("notifyTo = %v after cancel, want nil", err)
	}
}

func TestUnitNotifyHealthProbe(t *testing.T) {
	release := make(chan struct{})
	hang := true
	p := &healthProbe{timeout: 50 * time.Millisecond, query: func() {
		if hang {
			<-release
		}
	}}
	if err := p.check(); err == nil {
		t.Fatal("check with a hanging query = nil, want an error")
	}
	if err := p.check(); err == nil || !strings.Contains(err.Error(), "has hung") {
		t.Fatalf("check while the first query still hangs = %v, want an error", err)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for p.busy.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling interval for the released query
	}
	hang = false
	if err := p.check(); err != nil {
		t.Errorf("check after the query returned = %v, want nil", err)
	}
}

func TestUnitNotifyStatusLine(t *testing.T) {
	for _, c := range []struct {
		st   Status
		want string
	}{
		{Status{Peers: []PeerStatus{{Name: "beta", Connected: true, RTTms: 101.4}}}, "connected to beta (rtt 101 ms)"},
		{Status{Peers: []PeerStatus{{Name: "beta", LastError: "connection refused"}},
			Sync: []SyncStatus{{Path: "www", Halted: "root vanished"}, {Path: "shop", Queued: 3}, {Path: "idle"}}},
			"not connected to beta: connection refused; www HALTED: root vanished; shop 3 queued"},
		{Status{Peers: []PeerStatus{{Name: "beta"}}, Sync: []SyncStatus{{Path: "www", Scanning: true, ScannedFiles: 1200}}},
			"dialing beta; www scanning (1200 files)"},
	} {
		if got := statusLine(c.st); got != c.want {
			t.Errorf("statusLine(%+v) = %q, want %q", c.st, got, c.want)
		}
	}
}

// TestUnitNotifyWithoutWatchdog: with WatchdogSec off the notifier still
// sends READY and then keeps running (a part that returned would stop the
// daemon) until ctx ends, then sends STOPPING.
func TestUnitNotifyWithoutWatchdog(t *testing.T) {
	nodes, err := setupPair(t.TempDir(), pairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(nodes[0].ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n, _ := sdnotify.FromEnv(func(k string) string { return map[string]string{"NOTIFY_SOCKET": sock}[k] }, os.Getpid())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.notifyTo(ctx, n) }()
	read := func(wait time.Duration) (string, error) {
		conn.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 4096)
		k, err := conn.Read(buf)
		return string(buf[:k]), err
	}
	if m, err := read(15 * time.Second); err != nil || !strings.HasPrefix(m, "READY=1\nSTATUS=") {
		t.Fatalf("first datagram = %q, %v; want READY", m, err)
	}
	// Returning early would send STOPPING right away; nothing may come.
	if m, err := read(300 * time.Millisecond); err == nil {
		t.Fatalf("after READY without a watchdog: %q, want nothing until the daemon stops", m)
	}
	cancel()
	if m, err := read(15 * time.Second); err != nil || m != "STOPPING=1\nSTATUS=stopping" {
		t.Errorf("after cancel: %q, %v; want STOPPING", m, err)
	}
	if err := <-done; err != nil {
		t.Errorf("notifyTo = %v", err)
	}
}
