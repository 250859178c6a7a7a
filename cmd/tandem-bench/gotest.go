package main

// The database and failover parts. Both need servers the file part does
// not (four MariaDB servers and sysbench; BIND9), which the repository's
// own end-to-end benchmark and test already start and measure in temp
// dirs: BenchmarkRows and TestFailoverWithBIND in ./cmd/tandem. Rather than
// a second copy of that set-up, tandem-bench runs them with `go test` from
// the repository and puts their figures in tables of their own.

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// parseBenchLine reads one result line of `go test -bench`:
// "BenchmarkRows/lag-tandem-2  1  123 ns/op  56.1 p50-ms ...". It returns
// the name without the -GOMAXPROCS suffix and the metrics by unit.
func parseBenchLine(line string) (name string, metrics map[string]float64, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return "", nil, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return "", nil, false
	}
	name = f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	metrics = map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		metrics[f[i+1]] = v
	}
	return name, metrics, true
}

// skipReason finds why `go test -v` skipped: the line after "--- SKIP".
var skipLine = regexp.MustCompile(`(?m)^\s+\S+_test\.go:\d+: (.*)$`)

func skipReason(out string) string {
	i := strings.Index(out, "--- SKIP")
	if i < 0 {
		return ""
	}
	if m := skipLine.FindStringSubmatch(out[i:]); m != nil {
		return m[1]
	}
	return "skipped"
}

// goTest runs `go test args...` from the current directory (the
// repository root) and returns its combined output.
func goTest(ctx context.Context, logf func(string, ...any), args ...string) (string, error) {
	logf("go test %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", append([]string{"test"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// failure says why a go test run gave no figures (or, with found, what
// went wrong after it gave some): its skip reason, its error, or none.
func failure(out string, err error, found bool, none string) string {
	why := "not measured: "
	if found {
		why = "then failed: "
	}
	switch skip := skipReason(out); {
	case skip != "":
		return why + skip
	case err != nil:
		return why + fmt.Sprintf("go test: %v: %s", err, lastLine(out))
	default:
		return why + none
	}
}

// lastLine is the last non-empty line of s, for error messages.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

const (
	dbTandem = "tandem"
	dbNative = "MariaDB native replication"
)

// database runs BenchmarkRows: tandem (two daemons, alpha -> beta) and
// MariaDB's own GTID replication on the same sysbench load through the
// same kind of proxy, rtt apart.
func database(ctx context.Context, logf func(string, ...any), tb *table, lagFor, backlogFor time.Duration, runs int) {
	tb.tools = []string{dbTandem, dbNative}
	lag50 := "lag p50 at 500 tx/s (sysbench oltp_write_only, 4 tables)"
	lag99 := "lag p99 at 500 tx/s"
	lagMax := "lag max at 500 tx/s"
	catch := "catch-up after a backlog, transactions/s (higher is better)"
	rows := []rowSpec{{lag50, millis}, {lag99, millis}, {lagMax, millis}, {catch, txps}}
	out, err := goTest(ctx, logf, "-run", "^$", "-bench", "^BenchmarkRows$", "-benchtime", "1x",
		"-count", strconv.Itoa(runs), "-timeout", "60m", "-v", "./cmd/tandem",
		"-rows.lag", lagFor.String(), "-rows.backlog", backlogFor.String())
	found := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		name, m, ok := parseBenchLine(sc.Text())
		if !ok {
			continue
		}
		col := dbTandem
		if strings.HasSuffix(name, "-native") {
			col = dbNative
		}
		switch {
		case strings.HasPrefix(name, "BenchmarkRows/lag-"):
			tb.add(lag50, millis, col, m["p50-ms"])
			tb.add(lag99, millis, col, m["p99-ms"])
			tb.add(lagMax, millis, col, m["max-ms"])
			found = true
		case strings.HasPrefix(name, "BenchmarkRows/catchup-"):
			tb.add(catch, txps, col, m["tx/s"])
			found = true
		}
	}
	if found && err == nil {
		return
	}
	why := failure(out, err, found, "BenchmarkRows printed no figures")
	logf("database: %s", why)
	for _, r := range rows {
		for _, col := range tb.tools {
			tb.note(r.name, r.u, col, why)
		}
	}
}

const (
	foBIND  = "tandem, RFC 2136 update to BIND9"
	foServe = "tandem, its own DNS server"
)

// failoverLine matches what TestFailoverWithBIND logs once DNS answers the
// survivor.
var failoverLine = regexp.MustCompile(`kill to (BIND|the embedded DNS) answering the survivor: (\S+)`)

// failoverFlip runs TestFailoverWithBIND: two daemons, a real BIND9; the
// primary is killed with SIGKILL and the time until DNS answers the
// survivor's address is logged, for BIND (updated by RFC 2136) and for the
// survivor's own authoritative server.
func failoverFlip(ctx context.Context, logf func(string, ...any), tb *table, runs int) {
	tb.tools = []string{foBIND, foServe}
	flip := "kill -9 of the primary to DNS answering the survivor (heartbeat 0.5 s, dead_after 5 s)"
	out, err := goTest(ctx, logf, "-run", "^TestFailoverWithBIND$", "-count", strconv.Itoa(runs), "-v", "./cmd/tandem")
	found := false
	for _, m := range failoverLine.FindAllStringSubmatch(out, -1) {
		d, perr := time.ParseDuration(m[2])
		if perr != nil {
			continue
		}
		col := foBIND
		if m[1] != "BIND" {
			col = foServe
		}
		tb.add(flip, secs, col, d.Seconds())
		found = true
	}
	if found && err == nil {
		return
	}
	why := failure(out, err, found, "TestFailoverWithBIND logged no figures")
	logf("failover: %s", why)
	for _, col := range tb.tools {
		tb.note(flip, secs, col, why)
	}
}
