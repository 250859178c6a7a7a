// Package sdnotify tells systemd how the daemon is doing, by the sd_notify
// protocol: datagrams like "READY=1\nSTATUS=..." sent to the unix socket
// systemd names in NOTIFY_SOCKET.
//
// It owns the notifications and the watchdog loop; it does not decide when
// the daemon is ready or healthy: the caller says so. It reads no
// environment itself: cmd/tandem passes os.Getenv to FromEnv. A Notifier
// made without a socket (not started by systemd) does nothing and returns
// nil from every method, so the daemon can call it unconditionally.
package sdnotify
