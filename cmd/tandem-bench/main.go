package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// allTools are the --tools names, in column order.
var allTools = []string{"tandem", "rsync", "lsyncd", "lsyncd-default", "unison", "syncthing", "syncthing-default"}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tandem-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rtt := fs.Duration("rtt", 100*time.Millisecond, "round-trip time the proxies add (half each way)")
	var sz sizes
	fs.IntVar(&sz.samples, "samples", 20, "1 KiB files per direction for the latency percentiles")
	fs.IntVar(&sz.slowSamples, "slow-samples", 3, "the same, for a tool that waits a fixed delay of seconds before copying")
	fs.IntVar(&sz.burst, "burst", 10_000, "files in the burst (100 per directory)")
	bigMiB := fs.Int("big", 64, "size of the big file, MiB")
	fs.IntVar(&sz.tree, "tree", 20_000, "files in the initial-sync tree (the issue's size is 100000)")
	fs.DurationVar(&sz.idle, "idle", 10*time.Second, "how long the idle CPU is measured")
	fs.DurationVar(&sz.settle, "settle", 3*time.Second, "quiet time after the initial sync before measuring idle")
	fs.DurationVar(&sz.timeout, "timeout", 2*time.Minute, "longest wait for one change to arrive (the initial sync gets 5x)")
	toolList := fs.String("tools", strings.Join(allTools, ","), "tools to measure, comma-separated, from: "+strings.Join(allTools, ","))
	tandemBin := fs.String("tandem", "", "tandem binary (default: go build ./cmd/tandem)")
	workDir := fs.String("dir", "", "scratch directory (default: a new temp dir, removed at the end)")
	keep := fs.Bool("keep", false, "keep the scratch directory (logs, configs)")
	partList := fs.String("parts", "files,db,failover", "what to measure, comma-separated: files (the tools above), db (tandem vs MariaDB's own replication: go test -bench BenchmarkRows ./cmd/tandem, needs mariadb-server and sysbench), failover (time to the DNS flip: go test -run TestFailoverWithBIND ./cmd/tandem, needs bind9)")
	dbLag := fs.Duration("db-lag", 10*time.Second, "db: how long the 500 tx/s load runs while lag is sampled")
	dbBacklog := fs.Duration("db-backlog", 10*time.Second, "db: how long unthrottled sysbench builds the catch-up backlog")
	runs := fs.Int("runs", 1, "db and failover: how many times each is measured")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	parts := map[string]bool{}
	for _, p := range strings.Split(*partList, ",") {
		p = strings.TrimSpace(p)
		if p != "files" && p != "db" && p != "failover" {
			fmt.Fprintf(stderr, "tandem-bench: unknown part %q in --parts (want files, db, failover)\n", p)
			return 2
		}
		parts[p] = true
	}
	if *runs < 1 {
		fmt.Fprintf(stderr, "tandem-bench: --runs %d: want at least 1\n", *runs)
		return 2
	}
	sz.big = *bigMiB << 20
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s tandem-bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}

	work := *workDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "tandem-bench-"); err != nil {
			fmt.Fprintf(stderr, "tandem-bench: %v\n", err)
			return 1
		}
	}
	work, _ = filepath.Abs(work)
	if !*keep {
		defer os.RemoveAll(work)
	} else {
		defer logf("kept %s", work)
	}

	bin := *tandemBin
	if bin == "" && parts["files"] {
		bin = filepath.Join(work, "tandem-bin")
		logf("building ./cmd/tandem")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tandem")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(stderr, "tandem-bench: build ./cmd/tandem (run from the repository root, or pass --tandem): %v\n", err)
			return 1
		}
	}

	mach := describeMachine()
	tb := &table{}
	b := &bench{sz: sz, work: work, tb: tb, keep: *keep, logf: logf}
	var sshd *sshServer
	var sshdErr error
	needSSHD := func() (*sshServer, error) {
		if sshd == nil && sshdErr == nil {
			sshd, sshdErr = startSSHD(filepath.Join(work, "sshd"))
		}
		return sshd, sshdErr
	}
	defer func() {
		if sshd != nil {
			sshd.proc.stop(5 * time.Second)
		}
	}()

	for _, name := range strings.Split(*toolList, ",") {
		name = strings.TrimSpace(name)
		if ctx.Err() != nil || !parts["files"] {
			break
		}
		t, col, why := newTool(name, *rtt/2, bin, needSSHD)
		if col == "" {
			fmt.Fprintf(stderr, "tandem-bench: unknown tool %q (want one of %s)\n", name, strings.Join(allTools, ","))
			return 2
		}
		tb.tools = append(tb.tools, col)
		if t == nil {
			logf("%s: %s", col, why)
			for _, r := range rowList(sz) {
				tb.note(r.name, r.u, col, why)
			}
			continue
		}
		logf("%s: start", col)
		b.run(ctx, t)
	}
	var dbTable, foTable table
	if parts["db"] && ctx.Err() == nil {
		database(ctx, logf, &dbTable, *dbLag, *dbBacklog, *runs)
	}
	if parts["failover"] && ctx.Err() == nil {
		failoverFlip(ctx, logf, &foTable, *runs)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "tandem-bench: interrupted; the table holds what was measured\n")
	}
	if parts["files"] {
		for _, r := range rowList(sz) { // keep the rows in scenario order
			tb.cell(r.name, r.u, tb.tools[0])
		}
		order := map[string]int{}
		for i, r := range rowList(sz) {
			order[r.name] = i
		}
		sortRows(tb, order)
	}

	fmt.Fprintf(stdout, "Command: `%s`\n\n", strings.Join(append([]string{"tandem-bench"}, args...), " "))
	fmt.Fprintf(stdout, "Machine: %s; load average before: %s, after: %s. RTT through the proxies: %v.\n\n", mach, mach.loadBefore, loadAvg(), *rtt)
	if parts["files"] {
		fmt.Fprintf(stdout, "Files:\n\n")
		tb.write(stdout)
	}
	if parts["db"] {
		fmt.Fprintf(stdout, "\nDatabase (BenchmarkRows; four MariaDB servers, the RTT fixed at 100 ms there):\n\n")
		dbTable.write(stdout)
	}
	if parts["failover"] {
		fmt.Fprintf(stdout, "\nFailover (TestFailoverWithBIND; two daemons and a BIND9 on loopback):\n\n")
		foTable.write(stdout)
	}
	fmt.Fprintf(stdout, "\nVersions: %s\n", versions())
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

type rowSpec struct {
	name string
	u    unit
}

func rowList(sz sizes) []rowSpec {
	l1, l2, l3, l4, burst, big, edit, wire, tree, cpu, rssRow := sz.rowNames()
	return []rowSpec{{l1, millis}, {l2, millis}, {l3, millis}, {l4, millis}, {burst, secs}, {big, secs}, {edit, secs}, {wire, kib}, {tree, secs}, {cpu, pct}, {rssRow, mib}}
}

func sortRows(tb *table, order map[string]int) {
	rows := make([]*row, len(order))
	var extra []*row
	for _, r := range tb.rows {
		if i, ok := order[r.name]; ok {
			rows[i] = r
		} else {
			extra = append(extra, r)
		}
	}
	tb.rows = tb.rows[:0]
	for _, r := range append(rows, extra...) {
		if r != nil {
			tb.rows = append(tb.rows, r)
		}
	}
}

// newTool returns the tool named name and its column, or a nil tool and
// why it is not measured.
func newTool(name string, oneWay time.Duration, bin string, sshd func() (*sshServer, error)) (tool, string, string) {
	px := proxies{oneWay: oneWay}
	withSSHD := func(col string, mk func(*sshServer) tool, bins ...string) (tool, string, string) {
		for _, b := range bins {
			if _, err := exec.LookPath(b); err != nil {
				return nil, col, "not installed (apt-get install " + b + ")"
			}
		}
		s, err := sshd()
		if err != nil {
			return nil, col, "not measured: " + err.Error()
		}
		return mk(s), col, ""
	}
	switch name {
	case "tandem":
		return &tandemTool{bin: bin, px: px}, "tandem", ""
	case "rsync":
		return withSSHD("rsync over SSH (one run)", func(s *sshServer) tool { return &rsyncTool{sshd: s, px: px} }, "rsync")
	case "lsyncd":
		return withSSHD("lsyncd, delay 0", func(s *sshServer) tool { return &lsyncdTool{sshd: s, px: px, delay: 0} }, "lsyncd", "rsync")
	case "lsyncd-default":
		return withSSHD("lsyncd, default delay 15 s", func(s *sshServer) tool { return &lsyncdTool{sshd: s, px: px, delay: -1} }, "lsyncd", "rsync")
	case "unison":
		return withSSHD("Unison -repeat 1", func(s *sshServer) tool { return &unisonTool{sshd: s, px: px} }, "unison")
	case "syncthing":
		col := "Syncthing, watcher delay 1 s"
		if _, err := exec.LookPath("syncthing"); err != nil {
			return nil, col, "not installed (apt-get install syncthing)"
		}
		return &syncthingTool{px: px, delayS: 1}, col, ""
	case "syncthing-default":
		col := "Syncthing, default delay 10 s"
		if _, err := exec.LookPath("syncthing"); err != nil {
			return nil, col, "not installed (apt-get install syncthing)"
		}
		return &syncthingTool{px: px, delayS: 10}, col, ""
	}
	return nil, "", ""
}

type machine struct {
	desc       string
	loadBefore string
}

func (m machine) String() string { return m.desc }

func describeMachine() machine {
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			}
		}
		mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	model := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return machine{
		desc:       fmt.Sprintf("%d CPUs (%s), %s RAM, Linux %s, %s", runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)), runtime.Version()),
		loadBefore: loadAvg(),
	}
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// versions lists the peers' versions as they report them.
func versions() string {
	var out []string
	for _, v := range [][]string{{"rsync", "--version"}, {"ssh", "-V"}, {"lsyncd", "--version"}, {"unison", "-version"}, {"syncthing", "--version"}, {"mariadbd", "--version"}, {"sysbench", "--version"}, {"named", "-v"}} {
		b, err := exec.Command(v[0], v[1:]...).CombinedOutput()
		if err != nil {
			continue
		}
		line := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		if !strings.Contains(strings.ToLower(line), v[0]) {
			line = v[0] + " " + strings.TrimPrefix(line, "Version: ")
		}
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}
