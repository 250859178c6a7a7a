package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// unisonTool is Unison with -repeat 1 (a full two-way sync every second; a
// change waits for the next pass), reaching B through the proxy in front of
// the bench's sshd. -repeat watch needs unison-fsmonitor, which Debian's
// package does not ship.
type unisonTool struct {
	sshd *sshServer
	px   proxies
	dir  string
	a, b string
	addr string
	p    *proc
}

func (t *unisonTool) column() string                    { return "Unison -repeat 1" }
func (t *unisonTool) twoWay() bool                      { return true }
func (t *unisonTool) fixedDelay() time.Duration         { return 0 }
func (t *unisonTool) wire() int64                       { return t.px.wire() }
func (t *unisonTool) after(context.Context, bool) error { return nil }

func (t *unisonTool) setup(ctx context.Context, a, b string) error {
	t.dir = filepath.Join(filepath.Dir(a), "unison")
	t.a, t.b = a, b
	for _, d := range []string{"local", "remote"} {
		if err := os.MkdirAll(filepath.Join(t.dir, d), 0o755); err != nil {
			return err
		}
	}
	var err error
	t.addr, err = t.px.add(t.sshd.addr)
	return err
}

func (t *unisonTool) launch(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(t.addr)
	ssh := t.sshd.sshCommand(t.addr)
	// The ssh options after "ssh -p port": Unison adds the port itself.
	var sshargs []string
	for i := 1; i < len(ssh); i++ {
		if ssh[i] == "-p" {
			i++
			continue
		}
		sshargs = append(sshargs, ssh[i])
	}
	var err error
	t.p, err = startProc("unison", filepath.Join(t.dir, "unison.out"),
		[]string{"UNISON=" + filepath.Join(t.dir, "local")},
		"unison", t.a, "ssh://127.0.0.1:"+port+"/"+t.b,
		"-batch", "-auto", "-repeat", "1", "-prefer", "newer", "-times",
		"-confirmbigdel=false", "-ui", "text", "-contactquietly",
		"-logfile", filepath.Join(t.dir, "unison.log"),
		"-sshargs", strings.Join(sshargs, " "),
		"-servercmd", "env UNISON="+filepath.Join(t.dir, "remote")+" unison")
	return err
}

func (t *unisonTool) roots() []int {
	return append([]int{t.p.cmd.Process.Pid}, t.sshd.sessions()...)
}

func (t *unisonTool) stop() {
	t.p.stop(5 * time.Second)
	t.p = nil
	t.px.close()
}
