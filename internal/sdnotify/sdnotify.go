package sdnotify

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends sd_notify messages. Its methods may be called from any
// goroutine.
type Notifier struct {
	socket   string        // NOTIFY_SOCKET; "" when not under systemd
	watchdog time.Duration // WATCHDOG_USEC for this process; 0 when off
}

// FromEnv returns a Notifier for the socket in NOTIFY_SOCKET and the
// watchdog interval in WATCHDOG_USEC (when WATCHDOG_PID is unset or names
// pid). getenv is os.Getenv in the daemon. A malformed WATCHDOG_USEC is an
// error: systemd would kill a daemon that ignored it.
func FromEnv(getenv func(string) string, pid int) (*Notifier, error) {
	n := &Notifier{socket: getenv("NOTIFY_SOCKET")}
	usec := getenv("WATCHDOG_USEC")
	if usec == "" || n.socket == "" {
		return n, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return n, nil // the watchdog is some other process's
	}
	v, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || v <= 0 {
		return nil, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	n.watchdog = time.Duration(v) * time.Microsecond
	return n, nil
}

// Enabled reports whether messages go anywhere.
func (n *Notifier) Enabled() bool { return n.socket != "" }

// WatchdogInterval is systemd's watchdog timeout (WatchdogSec=), 0 when the
// watchdog is off. Watchdog pings at half of it.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog }

// Ready tells systemd the daemon has started (Type=notify units count as
// started from here on), with a one-line status for `systemctl status`.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+oneLine(status))
}

// Status sets the one-line status `systemctl status` shows.
func (n *Notifier) Status(status string) error { return n.Send("STATUS=" + oneLine(status)) }

// ExtendTimeout asks systemd to wait d longer, from now, before it gives up
// on a start (or stop) in progress. Call it again before d runs out.
func (n *Notifier) ExtendTimeout(d time.Duration, status string) error {
	return n.Send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", d.Microseconds()), "STATUS="+oneLine(status))
}

// Stopping tells systemd the daemon is shutting down.
func (n *Notifier) Stopping(status string) error {
	return n.Send("STOPPING=1", "STATUS="+oneLine(status))
}

// Send sends one datagram of the given "KEY=value" assignments.
func (n *Notifier) Send(assignments ...string) error {
	if n.socket == "" {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"} // "@name" is an abstract socket
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(assignments, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", n.socket, err)
	}
	return nil
}

// Watchdog pings systemd's watchdog (WATCHDOG=1) every half interval while
// healthy returns nil, until ctx ends. When healthy returns an error, it
// sends that error as the status instead and no ping, so that a main loop
// that is stuck or failing gets the daemon restarted (Restart=on-failure)
// rather than kept alive by this goroutine. It returns at once when the
// watchdog is off. healthy must not block for long.
func (n *Notifier) Watchdog(ctx context.Context, healthy func() error) error {
	if n.watchdog <= 0 || n.socket == "" {
		return nil
	}
	t := time.NewTicker(n.watchdog / 2)
	defer t.Stop()
	return n.watchdogLoop(ctx, t.C, healthy)
}

// watchdogLoop sends one datagram per tick: a ping while healthy, the
// problem as the status while not (and the status again on recovery).
func (n *Notifier) watchdogLoop(ctx context.Context, ticks <-chan time.Time, healthy func() error) error {
	sick := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
		var err error
		if herr := healthy(); herr != nil {
			sick = true
			err = n.Send("STATUS=unhealthy, watchdog not fed: " + oneLine(herr.Error()))
		} else if sick {
			sick = false
			err = n.Send("WATCHDOG=1", "STATUS=healthy again")
		} else {
			err = n.Send("WATCHDOG=1")
		}
		if err != nil {
			return err
		}
	}
}

// oneLine keeps a status to one line: a newline would start a new
// assignment.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
