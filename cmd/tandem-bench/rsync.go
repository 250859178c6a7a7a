package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// rsyncTool is rsync -a --delete over SSH, run once after each change, as
// from cron or a deploy script: no watcher, no process between runs. A to B
// is a push, B to A a pull, both through the proxy in front of the bench's
// sshd.
type rsyncTool struct {
	sshd *sshServer
	px   proxies
	a, b string
	addr string // the proxy in front of sshd
}

func (t *rsyncTool) column() string               { return "rsync over SSH (one run)" }
func (t *rsyncTool) twoWay() bool                 { return true }
func (t *rsyncTool) fixedDelay() time.Duration    { return 0 }
func (t *rsyncTool) wire() int64                  { return t.px.wire() }
func (t *rsyncTool) roots() []int                 { return nil }
func (t *rsyncTool) launch(context.Context) error { return nil }
func (t *rsyncTool) stop()                        { t.px.close() }

func (t *rsyncTool) setup(ctx context.Context, a, b string) error {
	t.a, t.b = a, b
	var err error
	t.addr, err = t.px.add(t.sshd.addr)
	return err
}

func (t *rsyncTool) after(ctx context.Context, fromA bool) error {
	src, dst := t.a+"/", "127.0.0.1:"+t.b+"/"
	if !fromA {
		src, dst = "127.0.0.1:"+t.b+"/", t.a+"/"
	}
	cmd := exec.CommandContext(ctx, "rsync", "-a", "--delete", "-e", strings.Join(t.sshd.sshCommand(t.addr), " "), src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rsync: %w: %s", err, out)
	}
	return nil
}
