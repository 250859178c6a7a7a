package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/internal/faultproxy"
	"github.com/tandemhost/tandem/internal/pairsetup"
)

// The pair setup lives in internal/pairsetup (tandem-bench uses it too).
type (
	pairNode    = pairsetup.Node
	pairOptions = pairsetup.Options
)

var (
	setupPair        = pairsetup.Setup
	freeLoopbackAddr = pairsetup.FreeLoopbackAddr
)

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
