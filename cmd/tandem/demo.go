package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/internal/faultproxy"
)

// pairNode is one node of a pair set up on this machine (demo and tests).
type pairNode struct {
	Name   string
	Dir    string // holds tandem.toml, the key files and state/
	Listen string // its SSH address
	Dial   string // where its peer dials it (Listen, or a proxy in front)
}

func (n *pairNode) ConfigPath() string { return filepath.Join(n.Dir, "tandem.toml") }
func (n *pairNode) StateDir() string   { return filepath.Join(n.Dir, "state") }

// pairOptions shape the configs setupPair writes.
type pairOptions struct {
	// Dial maps a node's listen address to the address its peer dials (a
	// proxy's, for latency); nil means the peer dials the listen address.
	Dial func(name, listen string) (string, error)
	// SSH is added to each config's [ssh] section.
	SSH string
	// Extra is appended to each config (e.g. [[sync]] sections), by node.
	Extra map[string]string
}

// setupPair creates two paired nodes, alpha and beta, under dir: keys,
// authorized_keys, known_hosts and configs.
func setupPair(dir string, o pairOptions) ([2]*pairNode, error) {
	var nodes [2]*pairNode
	pubs := make([]string, 2)
	for i, name := range []string{"alpha", "beta"} {
		listen, err := freeLoopbackAddr()
		if err != nil {
			return nodes, err
		}
		n := &pairNode{Name: name, Dir: filepath.Join(dir, name), Listen: listen, Dial: listen}
		if o.Dial != nil {
			if n.Dial, err = o.Dial(name, listen); err != nil {
				return nodes, err
			}
		}
		if err := os.MkdirAll(n.Dir, 0o755); err != nil {
			return nodes, err
		}
		signer, _, err := deploy.EnsureKey(n.StateDir(), "tandem@"+name)
		if err != nil {
			return nodes, err
		}
		pubs[i] = deploy.AuthorizedLine(signer.PublicKey(), "tandem@"+name)
		nodes[i] = n
	}
	for i, n := range nodes {
		peer := nodes[1-i]
		signer, err := deploy.LoadKey(deploy.KeyPath(peer.StateDir()))
		if err != nil {
			return nodes, err
		}
		files := map[string]string{
			"authorized_keys": pubs[1-i] + "\n",
			"known_hosts":     deploy.KnownHostsLine(peer.Dial, signer.PublicKey()) + "\n",
			"tandem.toml": fmt.Sprintf(`# %s: written by tandem demo
node = %q
state_dir = %q

[ssh]
listen = %q
authorized_keys = "authorized_keys"
known_hosts = "known_hosts"
%s
[[peer]]
name = %q
address = %q
%s`, n.Name, n.Name, n.StateDir(), n.Listen, o.SSH, peer.Name, peer.Dial, o.Extra[n.Name]),
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(n.Dir, name), []byte(data), 0o600); err != nil {
				return nodes, err
			}
		}
	}
	return nodes, nil
}

// freeLoopbackAddr returns a 127.0.0.1 port nobody listens on right now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func cmdDemo(e *env, args []string) int {
	dir := e.flags.Lookup("dir").Value.String()
	latency := e.flags.Lookup("latency").Value.(flag.Getter).Get().(time.Duration)
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "tandem-demo-"); err != nil {
			fmt.Fprintf(e.stderr, "tandem demo: %v\n", err)
			return exitFailure
		}
	}
	dir, _ = filepath.Abs(dir)
	var proxies []*faultproxy.Proxy
	defer func() {
		for _, p := range proxies {
			p.Close()
		}
	}()
	var opts pairOptions
	if latency > 0 {
		opts.Dial = func(name, listen string) (string, error) {
			p, err := faultproxy.New(listen)
			if err != nil {
				return "", err
			}
			p.SetLatency(latency)
			proxies = append(proxies, p)
			return p.Addr(), nil
		}
	}
	opts.Extra = map[string]string{}
	for _, name := range []string{"alpha", "beta"} {
		files := filepath.Join(dir, name, "www")
		if err := os.MkdirAll(files, 0o755); err != nil {
			fmt.Fprintf(e.stderr, "tandem demo: %v\n", err)
			return exitFailure
		}
		opts.Extra[name] = fmt.Sprintf("\n[[sync]]\nname = \"www\"\npath = %q\nexclude = [\"*.tmp\", \"cache/\"]\n", files)
	}
	nodes, err := setupPair(dir, opts)
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem demo: set up nodes: %v\n", err)
		return exitFailure
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem demo: %v\n", err)
		return exitFailure
	}

	fmt.Fprintf(e.stdout, "tandem demo: two nodes under %s\n", dir)
	for _, n := range nodes {
		fmt.Fprintf(e.stdout, "  %-5s SSH on %s, config %s\n", n.Name, n.Listen, n.ConfigPath())
	}
	if latency > 0 {
		fmt.Fprintf(e.stdout, "  the link between them is delayed %s each way (round trip %s)\n", latency, 2*latency)
	}

	var wg sync.WaitGroup
	procs := make([]*exec.Cmd, 0, 2)
	for _, n := range nodes {
		cmd := exec.Command(self, "run", "-c", n.ConfigPath(), "--log-format", "console")
		out, err := cmd.StderrPipe()
		if err != nil {
			fmt.Fprintf(e.stderr, "tandem demo: %v\n", err)
			return exitFailure
		}
		cmd.Stdout = cmd.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(e.stderr, "tandem demo: start %s: %v\n", n.Name, err)
			return exitFailure
		}
		procs = append(procs, cmd)
		wg.Go(func() { prefixLines(e.stdout, n.Name+" | ", out) })
	}
	defer func() {
		for _, p := range procs {
			p.Process.Signal(syscall.SIGTERM)
		}
		wg.Wait()
		for _, p := range procs {
			p.Wait()
		}
		fmt.Fprintf(e.stdout, "tandem demo: both nodes stopped; their files stay in %s\n", dir)
	}()

	fmt.Fprintf(e.stdout, `
Each node syncs its www folder with the other's. What to try, in another terminal:
  echo hello > %[5]s/www/index.html; cat %[6]s/www/index.html    # a write on alpha shows up on beta
  mkdir -p %[6]s/www/uploads && cp /etc/os-release %[6]s/www/uploads/   # and the other way
  %[1]s status -c %[2]s
  %[1]s status -c %[3]s --json
  %[1]s conflicts list -c %[2]s
  %[1]s check -c %[2]s
  kill -STOP %[4]d; echo a > %[5]s/www/x.txt; echo b > %[6]s/www/x.txt; sleep 8; kill -CONT %[4]d
      # freeze beta, edit the same file on both: a conflict, kept on both sides and logged
Press Ctrl-C to stop both nodes.

`, self, nodes[0].ConfigPath(), nodes[1].ConfigPath(), procs[1].Process.Pid, nodes[0].Dir, nodes[1].Dir)

	watchPair(e.ctx, e.stdout, nodes)
	return exitOK
}

// watchPair prints each node's view of the link whenever it changes, until
// ctx ends.
func watchPair(ctx context.Context, w io.Writer, nodes [2]*pairNode) {
	last := make(map[string]string)
	applied := make(map[string]int64)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, n := range nodes {
			var st Status
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			err := control.NewClient(control.SocketPath(n.StateDir())).Get(qctx, "/status", &st)
			cancel()
			line := "starting"
			if err == nil && len(st.Peers) > 0 {
				p := st.Peers[0]
				switch {
				case p.Connected:
					line = fmt.Sprintf("connected to %s", p.Name)
				case p.LastError != "":
					line = fmt.Sprintf("not connected to %s: %s", p.Name, p.LastError)
				default:
					line = fmt.Sprintf("dialing %s", p.Name)
				}
			}
			if line != last[n.Name] {
				last[n.Name] = line
				rtt := ""
				if err == nil && len(st.Peers) > 0 && st.Peers[0].Connected && st.Peers[0].RTTms > 0 {
					rtt = fmt.Sprintf(" (first round trip %.1f ms)", st.Peers[0].RTTms)
				}
				fmt.Fprintf(w, "demo  | %s: %s%s\n", n.Name, line, rtt)
			}
			for _, t := range st.Sync {
				if d := t.Applied - applied[n.Name]; err == nil && d > 0 {
					applied[n.Name] = t.Applied
					fmt.Fprintf(w, "demo  | %s: applied %d change(s) from its peer to %s (last one %.0f ms after it was written)\n",
						n.Name, d, t.Path, t.LagMs)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// prefixLines copies r to w line by line with prefix in front.
func prefixLines(w io.Writer, prefix string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(w, prefix+strings.TrimRight(sc.Text(), "\r"))
	}
}
