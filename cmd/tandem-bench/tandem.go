package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tandemhost/tandem/deploy"
)

// tandemTool runs two `tandem run` daemons, alpha on A and beta on B, each
// dialing the other through a proxy, as cmd/tandem's setupPair does.
type tandemTool struct {
	bin   string
	dir   string // scratch: configs, keys, state, logs
	px    proxies
	nodes [2]tandemNode
	procs []*proc
}

type tandemNode struct {
	name, dir, listen, dial, files string
}

func (t *tandemTool) column() string                    { return "tandem" }
func (t *tandemTool) twoWay() bool                      { return true }
func (t *tandemTool) fixedDelay() time.Duration         { return 0 }
func (t *tandemTool) wire() int64                       { return t.px.wire() }
func (t *tandemTool) after(context.Context, bool) error { return nil }

func (t *tandemTool) setup(ctx context.Context, a, b string) error {
	t.dir = filepath.Join(filepath.Dir(a), "tandem")
	pubs := make([]string, 2)
	for i, name := range []string{"alpha", "beta"} {
		listen, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		dial, err := t.px.add(listen)
		if err != nil {
			return err
		}
		n := tandemNode{name: name, dir: filepath.Join(t.dir, name), listen: listen, dial: dial, files: []string{a, b}[i]}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return err
		}
		signer, _, err := deploy.EnsureKey(filepath.Join(n.dir, "state"), "tandem@"+name)
		if err != nil {
			return err
		}
		pubs[i] = deploy.AuthorizedLine(signer.PublicKey(), "tandem@"+name)
		t.nodes[i] = n
	}
	for i, n := range t.nodes {
		peer := t.nodes[1-i]
		signer, err := deploy.LoadKey(deploy.KeyPath(filepath.Join(peer.dir, "state")))
		if err != nil {
			return err
		}
		files := map[string]string{
			"authorized_keys": pubs[1-i] + "\n",
			"known_hosts":     deploy.KnownHostsLine(peer.dial, signer.PublicKey()) + "\n",
			"tandem.toml": fmt.Sprintf(`# %s: written by tandem-bench
node = %q
state_dir = %q

[ssh]
listen = %q
authorized_keys = "authorized_keys"
known_hosts = "known_hosts"

[[peer]]
name = %q
address = %q

[[sync]]
name = "bench"
path = %q
`, n.name, n.name, filepath.Join(n.dir, "state"), n.listen, peer.name, peer.dial, n.files),
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(n.dir, name), []byte(data), 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tandemTool) launch(ctx context.Context) error {
	for _, n := range t.nodes {
		p, err := startProc("tandem "+n.name, filepath.Join(n.dir, "tandem.log"), nil,
			t.bin, "run", "-c", filepath.Join(n.dir, "tandem.toml"), "--log-format", "console")
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
