package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/tandemhost/tandem/internal/pairsetup"
)

// tandemTool runs two `tandem run` daemons, alpha on A and beta on B, each
// dialing the other through a proxy, set up as `tandem demo` sets its pair
// up (internal/pairsetup).
type tandemTool struct {
	bin   string
	px    proxies
	nodes [2]*pairsetup.Node
	procs []*proc
}

func (t *tandemTool) column() string                    { return "tandem" }
func (t *tandemTool) twoWay() bool                      { return true }
func (t *tandemTool) fixedDelay() time.Duration         { return 0 }
func (t *tandemTool) wire() int64                       { return t.px.wire() }
func (t *tandemTool) after(context.Context, bool) error { return nil }

func (t *tandemTool) setup(ctx context.Context, a, b string) error {
	nodes, err := pairsetup.Setup(filepath.Join(filepath.Dir(a), "tandem"), pairsetup.Options{
		Dial: func(_, listen string) (string, error) { return t.px.add(listen) },
		Extra: map[string]string{
			"alpha": fmt.Sprintf("\n[[sync]]\nname = \"bench\"\npath = %q\n", a),
			"beta":  fmt.Sprintf("\n[[sync]]\nname = \"bench\"\npath = %q\n", b),
		},
		By: "tandem-bench",
	})
	t.nodes = nodes
	return err
}

func (t *tandemTool) launch(ctx context.Context) error {
	for _, n := range t.nodes {
		p, err := startProc("tandem "+n.Name, filepath.Join(n.Dir, "tandem.log"), nil,
			t.bin, "run", "-c", n.ConfigPath(), "--log-format", "console")
		if err != nil {
			return err
		}
		t.procs = append(t.procs, p)
	}
	return nil
}

func (t *tandemTool) roots() []int {
	var pids []int
	for _, p := range t.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

func (t *tandemTool) stop() {
	for _, p := range t.procs {
		p.stop(10 * time.Second)
	}
	t.procs = nil
	t.px.close()
}
