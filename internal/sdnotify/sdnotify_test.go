package sdnotify

// The tests listen on a real unixgram socket, as systemd does, and read
// what the Notifier sends.

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// systemdSocket is a NOTIFY_SOCKET stand-in.
type systemdSocket struct {
	path string
	conn *net.UnixConn
}

func listen(t *testing.T) *systemdSocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &systemdSocket{path: path, conn: conn}
}

// next returns the next datagram, failing after a generous deadline.
func (s *systemdSocket) next(t *testing.T) string {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatalf("no sd_notify datagram: %v", err)
	}
	return string(buf[:n])
}

func (s *systemdSocket) env(watchdogUSEC string, pid int) func(string) string {
	return func(k string) string {
		switch k {
		case "NOTIFY_SOCKET":
			return s.path
		case "WATCHDOG_USEC":
			return watchdogUSEC
		case "WATCHDOG_PID":
			return strconv.Itoa(pid)
		}
		return ""
	}
}

func TestMessages(t *testing.T) {
	s := listen(t)
	n, err := FromEnv(s.env("", 0), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("FromEnv = enabled %v, watchdog %v; want enabled, no watchdog", n.Enabled(), n.WatchdogInterval())
	}
	for _, c := range []struct {
		send func() error
		want string
	}{
		{func() error { return n.ExtendTimeout(90*time.Second, "scanning /var/www: 120000 files") }, "EXTEND_TIMEOUT_USEC=90000000\nSTATUS=scanning /var/www: 120000 files"},
		{func() error { return n.Ready("connected to beta\nsyncing 1 tree") }, "READY=1\nSTATUS=connected to beta syncing 1 tree"},
		{func() error { return n.Status("peer beta unreachable") }, "STATUS=peer beta unreachable"},
		{func() error { return n.Stopping("stopping on SIGTERM") }, "STOPPING=1\nSTATUS=stopping on SIGTERM"},
	} {
		if err := c.send(); err != nil {
			t.Fatal(err)
		}
		if got := s.next(t); got != c.want {
			t.Errorf("datagram = %q, want %q", got, c.want)
		}
	}
}

func TestAbstractSocket(t *testing.T) {
	name := "@tandem-sdnotify-test-" + strconv.Itoa(os.Getpid())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := &systemdSocket{path: name, conn: conn}
	n, _ := FromEnv(s.env("", 0), os.Getpid())
	if err := n.Ready("up"); err != nil {
		t.Fatal(err)
	}
	if got := s.next(t); got != "READY=1\nSTATUS=up" {
		t.Errorf("datagram on abstract socket = %q", got)
	}
}

func TestNotUnderSystemd(t *testing.T) {
	n, err := FromEnv(func(string) string { return "" }, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n.Enabled() {
		t.Error("Enabled() without NOTIFY_SOCKET = true")
	}
	if err := n.Ready("x"); err != nil {
		t.Errorf("Ready without NOTIFY_SOCKET = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Watchdog(ctx, func() error { return nil }); err != nil {
		t.Errorf("Watchdog without NOTIFY_SOCKET = %v, want nil", err)
	}
}

func TestFromEnvWatchdog(t *testing.T) {
	s := listen(t)
	pid := os.Getpid()
	for _, c := range []struct {
		usec    string
		pid     int
		want    time.Duration
		wantErr bool
	}{
		{"30000000", pid, 30 * time.Second, false},
		{"30000000", pid + 1, 0, false}, // another process's watchdog
		{"", pid, 0, false},
		{"soon", pid, 0, true},
		{"-5", pid, 0, true},
	} {
		n, err := FromEnv(s.env(c.usec, c.pid), pid)
		if (err != nil) != c.wantErr {
			t.Errorf("FromEnv(WATCHDOG_USEC=%q) error = %v, want error %v", c.usec, err, c.wantErr)
			continue
		}
		if err == nil && n.WatchdogInterval() != c.want {
			t.Errorf("FromEnv(WATCHDOG_USEC=%q, PID %d) interval = %v, want %v", c.usec, c.pid, n.WatchdogInterval(), c.want)
		}
	}
}

// TestWatchdogOnlyWhileHealthy drives the loop tick by tick: every tick
// sends exactly one datagram, a ping only while the health func says so.
func TestWatchdogOnlyWhileHealthy(t *testing.T) {
	s := listen(t)
	n, _ := FromEnv(s.env("2000000", os.Getpid()), os.Getpid())
	var health atomic.Pointer[error]
	ok := error(nil)
	health.Store(&ok)
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.watchdogLoop(ctx, ticks, func() error { return *health.Load() }) }()

	stuck := errors.New("main loop stuck for 40s\nin scan")
	for i, step := range []struct {
		err  error
		want string
	}{
		{nil, "WATCHDOG=1"},
		{nil, "WATCHDOG=1"},
		{stuck, "STATUS=unhealthy, watchdog not fed: main loop stuck for 40s in scan"},
		{stuck, "STATUS=unhealthy, watchdog not fed: main loop stuck for 40s in scan"},
		{nil, "WATCHDOG=1\nSTATUS=healthy again"},
		{nil, "WATCHDOG=1"},
	} {
		e := step.err
		health.Store(&e)
		ticks <- time.Now()
		if got := s.next(t); got != step.want {
			t.Errorf("tick %d (health %v): datagram = %q, want %q", i, step.err, got, step.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watchdogLoop = %v after cancel, want nil", err)
	}
}

// TestWatchdogTicksAtHalfInterval runs the real ticker with a short
// WATCHDOG_USEC and checks that pings arrive, about two per interval.
func TestWatchdogTicksAtHalfInterval(t *testing.T) {
	s := listen(t)
	n, _ := FromEnv(s.env("40000", os.Getpid()), os.Getpid()) // 40 ms
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Watchdog(ctx, func() error { return nil }) }()
	start := time.Now()
	for range 4 {
		if got := s.next(t); got != "WATCHDOG=1" {
			t.Fatalf("datagram = %q, want WATCHDOG=1", got)
		}
	}
	// Four pings at 20 ms cannot come sooner than 80 ms after start.
	if el := time.Since(start); el < 80*time.Millisecond {
		t.Errorf("4 pings in %v, want them 20 ms apart (half of WATCHDOG_USEC)", el)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watchdog = %v after cancel", err)
	}
}
