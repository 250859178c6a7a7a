package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// lsyncdTool is lsyncd in rsyncssh mode, pushing A to B (one way: lsyncd
// has no B to A) through the proxy in front of the bench's sshd. delay is
// lsyncd's per-event delay in seconds; -1 leaves lsyncd's default (15 s).
type lsyncdTool struct {
	sshd  *sshServer
	px    proxies
	delay int
	dir   string
	p     *proc
	cfg   string
}

func (t *lsyncdTool) column() string {
	if t.delay < 0 {
		return "lsyncd, default delay 15 s"
	}
	return fmt.Sprintf("lsyncd, delay %d", t.delay)
}
func (t *lsyncdTool) twoWay() bool { return false }
func (t *lsyncdTool) fixedDelay() time.Duration {
	if t.delay < 0 {
		return 15 * time.Second
	}
	return time.Duration(t.delay) * time.Second
}
func (t *lsyncdTool) wire() int64                       { return t.px.wire() }
func (t *lsyncdTool) after(context.Context, bool) error { return nil }

func (t *lsyncdTool) setup(ctx context.Context, a, b string) error {
	t.dir = filepath.Join(filepath.Dir(a), "lsyncd")
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return err
	}
	addr, err := t.px.add(t.sshd.addr)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	delay := ""
	if t.delay >= 0 {
		delay = fmt.Sprintf("delay = %d,", t.delay)
	}
	t.cfg = filepath.Join(t.dir, "lsyncd.conf.lua")
	conf := fmt.Sprintf(`settings {
	logfile = %q,
	statusFile = %q,
	nodaemon = true,
	insist = true,
}
sync {
	default.rsyncssh,
	source = %q,
	host = "127.0.0.1",
	targetdir = %q,
	%s
	ssh = {
		port = %s,
		identityFile = %q,
		options = {
			IdentitiesOnly = "yes",
			BatchMode = "yes",
			UserKnownHostsFile = %q,
			HostKeyAlias = %q,
			StrictHostKeyChecking = "yes",
		},
	},
}
`, filepath.Join(t.dir, "lsyncd.log"), filepath.Join(t.dir, "lsyncd.status"), a, b, delay, port, t.sshd.identity, t.sshd.knownHosts, hostAlias)
	return os.WriteFile(t.cfg, []byte(conf), 0o644)
}

func (t *lsyncdTool) launch(ctx context.Context) error {
	var err error
	t.p, err = startProc("lsyncd", filepath.Join(t.dir, "stdout.log"), nil, "lsyncd", "-nodaemon", t.cfg)
	return err
}

func (t *lsyncdTool) roots() []int {
	return append([]int{t.p.cmd.Process.Pid}, t.sshd.sessions()...)
}

func (t *lsyncdTool) stop() {
	t.p.stop(5 * time.Second)
	t.p = nil
	t.px.close()
}
