package main

// Database replication benchmark, tandem against MariaDB's own replication in
// one run: four real MariaDB servers and sysbench (Debian's). alpha and beta
// are replicated by two real `tandem run` daemons that dial each other through
// a proxy adding 50 ms each way; primary and replica by native GTID
// replication, the replica's IO thread dialing the primary through the same
// kind of proxy. Run:
//
//	go test -run '^$' -bench BenchmarkRows -benchtime 1x ./cmd/tandem
//	go test -run '^$' -bench BenchmarkRows -benchtime 1x -count 2 -timeout 30m ./cmd/tandem -rows.lag 30s -rows.backlog 25s
//
// Each case is one b.Loop iteration (-count N runs each N times on the same
// servers); the last case, summary, logs a markdown table of every run.
// The defaults take about 80 s; -rows.pprof DIR and -rows.slowlog 10ms
// show where the time goes.

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/internal/faultproxy"
	"github.com/tandemhost/tandem/internal/mysqltest"
)

var (
	rowsLagTime     = flag.Duration("rows.lag", 10*time.Second, "BenchmarkRows: how long sysbench runs at -rows.rate while lag is measured")
	rowsBacklogTime = flag.Duration("rows.backlog", 10*time.Second, "BenchmarkRows: how long unthrottled sysbench builds the catch-up backlog")
	rowsRate        = flag.Int("rows.rate", 500, "BenchmarkRows: sysbench transactions per second in the lag cases")
	rowsThreads     = flag.Int("rows.threads", 4, "BenchmarkRows: sysbench threads")
	rowsTableSize   = flag.Int("rows.tablesize", 10000, "BenchmarkRows: rows in each of the 4 sysbench tables")
	rowsPprof       = flag.String("rows.pprof", "", "BenchmarkRows: directory to save CPU profiles of both daemons during the tandem cases")
	rowsLogApplied  = flag.Bool("rows.logapplied", false, "BenchmarkRows: the daemons' [mysql] log_applied (true: the applied transactions go into beta's binlog too)")
	rowsSlowLog     = flag.Duration("rows.slowlog", 0, "BenchmarkRows: if set, beta's and the replica's servers log statements slower than this to files in the temp dir (logged, kept)")
)

// rowsOneWay is the delay the proxy adds each way (the 100 ms RTT).
var rowsPerf = flag.Bool("rows.perf", false, "BenchmarkRows: with -rows.pprof, also record alpha's and beta's servers with perf(1) during the tandem cases")

var rowsOneWay = flag.Duration("rows.oneway", 50*time.Millisecond, "BenchmarkRows: delay the proxy adds each way between the nodes and to the native replica")

// rowsBench is the two setups under test.
type rowsBench struct {
	// tb is the whole benchmark's: what a case starts outlives the case.
	tb testing.TB
	// tandem: alpha -> beta through the daemons.
	servers [2]*mysqltest.Server
	dbs     [2]*sql.DB
	nodes   [2]*pairNode
	procs   [2]*daemonProc
	// native: primary -> replica.
	primary, replica     *mysqltest.Server
	primaryDB, replicaDB *sql.DB
}

func BenchmarkRows(b *testing.B) {
	if _, err := exec.LookPath("sysbench"); err != nil {
		b.Skip("sysbench not installed (apt-get install sysbench)")
	}
	rb := startRowsBench(b)
	type lagFigures struct {
		p50, p99, max, txps float64
		samples             int
		load                string
	}
	type catchFigures struct {
		txns                             int64
		total, firstApply, txs, applyTxs float64
		load, cpu                        string
	}
	figures := func(r catchResult) catchFigures {
		return catchFigures{r.txns, r.total.Seconds(), r.firstApply.Seconds(), float64(r.txns) / r.total.Seconds(),
			float64(r.txns) / (r.total - r.firstApply).Seconds(), loadAvg(), r.cpu}
	}
	// Every run of each case (-count N runs each N times).
	var lag [2][]lagFigures
	var catch [2][]catchFigures
	names := [2]string{"tandem", "native"}

	for i := range 2 {
		b.Run("lag-"+names[i], func(b *testing.B) {
			for b.Loop() {
				var r lagResult
				if i == 0 {
					stop := rb.profile(b, "lag", *rowsLagTime)
					r = rb.measureLag(b, rb.dbs[0], rb.dbs[1])
					stop()
				} else {
					r = rb.measureLag(b, rb.primaryDB, rb.replicaDB)
				}
				f := lagFigures{r.pct(50), r.pct(99), r.pct(100), r.txps, len(r.lags), loadAvg()}
				lag[i] = append(lag[i], f)
				b.ReportMetric(f.p50, "p50-ms")
				b.ReportMetric(f.p99, "p99-ms")
				b.ReportMetric(f.max, "max-ms")
				b.ReportMetric(r.txps, "tx/s")
			}
		})
	}
	for i := range 2 {
		b.Run("catchup-"+names[i], func(b *testing.B) {
			for b.Loop() {
				var r catchResult
				if i == 0 {
					r = rb.catchUpTandem(b)
				} else {
					r = rb.catchUpNative(b)
				}
				c := figures(r)
				catch[i] = append(catch[i], c)
				b.ReportMetric(float64(r.txns), "backlog-txns")
				b.ReportMetric(r.total.Seconds(), "s")
				b.ReportMetric(c.txs, "tx/s")
				b.ReportMetric(c.applyTxs, "apply-tx/s")
				b.ReportMetric(r.firstApply.Seconds(), "s-to-first-apply")
			}
			if i == 1 && len(catch[0]) > 0 {
				k := len(catch[1]) - 1
				b.ReportMetric(ratio(catch[0][min(k, len(catch[0])-1)].txs, catch[1][k].txs), "tandem/native")
			}
		})
	}
	// catchup-pair runs both catch-ups back to back in each iteration
	// (their order alternating), so that each ratio compares runs minutes
	// apart at most, not a series of one against a series of the other
	// while the machine drifts.
	var pairs []float64
	b.Run("catchup-pair", func(b *testing.B) {
		for b.Loop() {
			var r [2]catchResult
			first := len(pairs) % 2 // 0: tandem first
			for _, i := range []int{first, 1 - first} {
				if i == 0 {
					r[i] = rb.catchUpTandem(b)
				} else {
					r[i] = rb.catchUpNative(b)
				}
				catch[i] = append(catch[i], figures(r[i]))
			}
			t, n := catch[0][len(catch[0])-1], catch[1][len(catch[1])-1]
			pairs = append(pairs, ratio(t.txs, n.txs))
			b.ReportMetric(t.txs, "tandem-tx/s")
			b.ReportMetric(n.txs, "native-tx/s")
			b.ReportMetric(t.applyTxs, "tandem-apply-tx/s")
			b.ReportMetric(n.applyTxs, "native-apply-tx/s")
			b.ReportMetric(t.firstApply, "tandem-s-to-first")
			b.ReportMetric(n.firstApply, "native-s-to-first")
			b.ReportMetric(pairs[len(pairs)-1], "tandem/native")
		}
	})
	// cells formats one figure of every run of a case.
	cells := func(n int, f func(k int) string) string {
		var c []string
		for k := range n {
			c = append(c, f(k))
		}
		if len(c) == 0 {
			return "-"
		}
		return strings.Join(c, "; ")
	}
	table := func() string {
		var t strings.Builder
		row := func(what string, f func(i int) string) { fmt.Fprintf(&t, "| %s | %s | %s |\n", what, f(0), f(1)) }
		fmt.Fprintf(&t, "\n| %d ms RTT, oltp_write_only, 4 x %d rows; each run | tandem | native MariaDB |\n|---|---|---|\n", 2*rowsOneWay.Milliseconds(), *rowsTableSize)
		row(fmt.Sprintf("lag p50 / p99 / max ms at --rate=%d", *rowsRate), func(i int) string {
			return cells(len(lag[i]), func(k int) string { l := lag[i][k]; return fmt.Sprintf("%.0f / %.0f / %.0f", l.p50, l.p99, l.max) })
		})
		row("achieved tx/s, heartbeats seen (load average)", func(i int) string {
			return cells(len(lag[i]), func(k int) string { l := lag[i][k]; return fmt.Sprintf("%.0f, %d (%s)", l.txps, l.samples, l.load) })
		})
		row("catch-up: backlog txns, s until all applied (s until the first)", func(i int) string {
			return cells(len(catch[i]), func(k int) string {
				c := catch[i][k]
				return fmt.Sprintf("%d, %.1f (%.1f)", c.txns, c.total, c.firstApply)
			})
		})
		row("catch-up tx/s from restart, from first applied (load average)", func(i int) string {
			return cells(len(catch[i]), func(k int) string { c := catch[i][k]; return fmt.Sprintf("%.0f, %.0f (%s)", c.txs, c.applyTxs, c.load) })
		})
		row("CPU used during the catch-up", func(i int) string {
			return cells(len(catch[i]), func(k int) string { return catch[i][k].cpu })
		})
		fmt.Fprintf(&t, "| catch-up ratio tandem/native, from restart | %s | |", cells(min(len(catch[0]), len(catch[1])), func(k int) string {
			return fmt.Sprintf("%.2f", ratio(catch[0][k].txs, catch[1][k].txs))
		}))
		if len(pairs) > 0 {
			fmt.Fprintf(&t, "\n| same ratio, catchup-pair runs (each pair back to back) | %s | |", cells(len(pairs), func(k int) string {
				return fmt.Sprintf("%.2f", pairs[k])
			}))
		}
		return t.String()
	}
	// A parent benchmark's own log is shown only with -v; a case's always.
	printed := false
	b.Run("summary", func(b *testing.B) {
		for b.Loop() {
		}
		if !printed {
			b.Log(table())
			printed = true
		}
	})
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// startRowsBench starts the four servers, prepares the same sysbench tables
// on each, starts the daemons and the native replica.
func startRowsBench(b *testing.B) *rowsBench {
	b.Helper()
	rb := &rowsBench{tb: b}
	extra := map[string]string{}
	// sysbench prepares alpha's tables (with ids 1..N whatever the
	// auto_increment settings); the other three get a copy.
	var source *sql.DB
	prepare := func(s *mysqltest.Server) *sql.DB {
		s.Exec("CREATE DATABASE bench",
			"CREATE TABLE bench.heartbeat (id INT PRIMARY KEY, ts BIGINT NOT NULL)",
			"INSERT INTO bench.heartbeat VALUES (1, 0)")
		db := s.DB("bench")
		if source == nil {
			sysbench(b, s, "prepare", "--threads=1", "--auto_inc=off")
			source = db
		} else {
			copyTables(b, source, db, 4)
		}
		return db
	}
	slowLog := func(name string) []string {
		if *rowsSlowLog == 0 {
			return nil
		}
		path := filepath.Join(os.TempDir(), fmt.Sprintf("tandem-rows-slow-%s-%d.log", name, time.Now().Unix()))
		b.Logf("%s's slow query log: %s", name, path)
		return []string{"--slow-query-log", "--slow-query-log-file=" + path, fmt.Sprintf("--long-query-time=%f", rowsSlowLog.Seconds())}
	}
	for i, name := range []string{"alpha", "beta"} {
		args := []string{"--auto-increment-increment=2", fmt.Sprintf("--auto-increment-offset=%d", i+1)}
		if i == 1 {
			args = append(args, slowLog(name)...)
		}
		rb.servers[i] = mysqltest.Start(b, mysqltest.Options{ServerID: uint32(i + 1), Args: args})
		rb.dbs[i] = prepare(rb.servers[i])
		extra[name] = fmt.Sprintf("\n[mysql]\ndsn = %q\nserver_id = %d\ndatabases = [\"bench\"]\nlog_applied = %t\n", rb.servers[i].DSN(""), 1001+i, *rowsLogApplied)
	}
	rb.primary = mysqltest.Start(b, mysqltest.Options{ServerID: 3})
	rb.replica = mysqltest.Start(b, mysqltest.Options{ServerID: 4, Args: slowLog("replica")})
	rb.primaryDB, rb.replicaDB = prepare(rb.primary), prepare(rb.replica)
	tables := []string{"bench.sbtest1", "bench.sbtest2", "bench.sbtest3", "bench.sbtest4"}
	want := checksums(b, rb.servers[0], tables)
	for _, s := range []*mysqltest.Server{rb.servers[1], rb.primary, rb.replica} {
		if got := checksums(b, s, tables); got != want {
			b.Fatalf("copied sysbench tables differ: %s, want %s", got, want)
		}
	}

	nodes, err := setupPair(filepath.Join(b.TempDir(), "nodes"), pairOptions{
		Dial:  proxyDial(b, nil, *rowsOneWay),
		SSH:   "heartbeat = \"200ms\"\ntimeout = \"1s\"\n",
		Extra: extra,
	})
	if err != nil {
		b.Fatal(err)
	}
	rb.nodes = nodes
	for i, n := range rb.nodes {
		rb.procs[i] = startDaemon(b, n)
	}
	for _, n := range rb.nodes {
		waitPeer(b, n, "connected", func(p PeerStatus) bool { return p.Connected })
	}

	p, err := faultproxy.New(rb.primary.Addr())
	if err != nil {
		b.Fatal(err)
	}
	p.SetLatency(*rowsOneWay)
	b.Cleanup(func() { p.Close() })
	var pos string
	if err := rb.primaryDB.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		b.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(p.Addr())
	rb.replica.Exec(
		"SET GLOBAL gtid_slave_pos = '"+pos+"'",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
			port, mysqltest.User, mysqltest.Password),
		"START SLAVE")
	b.Cleanup(func() { rb.replicaDB.Exec("STOP SLAVE") })
	// Both paths carry a heartbeat before anything is measured.
	rb.heartbeatSeen(b, rb.dbs[0], rb.dbs[1])
	rb.heartbeatSeen(b, rb.primaryDB, rb.replicaDB)
	return rb
}

// sysbench runs one sysbench oltp_write_only command against s and returns
// its output.
func sysbench(b testing.TB, s *mysqltest.Server, command string, args ...string) string {
	b.Helper()
	all := append([]string{"oltp_write_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
		"--mysql-port=" + strconv.Itoa(s.Port), "--mysql-user=" + mysqltest.User, "--mysql-password=" + mysqltest.Password,
		"--mysql-db=bench", "--tables=4", "--table-size=" + strconv.Itoa(*rowsTableSize)}, args...)
	out, err := exec.Command("sysbench", append(all, command)...).CombinedOutput()
	if err != nil {
		b.Fatalf("sysbench %s: %v\n%s", command, err, out)
	}
	return string(out)
}

// copyTables copies sysbench's tables sbtest1..n from src to dst.
func copyTables(b testing.TB, src, dst *sql.DB, n int) {
	b.Helper()
	for i := 1; i <= n; i++ {
		table := fmt.Sprintf("sbtest%d", i)
		var name, create string
		if err := src.QueryRow("SHOW CREATE TABLE "+table).Scan(&name, &create); err != nil {
			b.Fatal(err)
		}
		if _, err := dst.Exec(create); err != nil {
			b.Fatal(err)
		}
		rows, err := src.Query("SELECT id, k, c, pad FROM " + table + " ORDER BY id")
		if err != nil {
			b.Fatal(err)
		}
		var vals []string
		var args []any
		flush := func() {
			if len(vals) == 0 {
				return
			}
			if _, err := dst.Exec("INSERT INTO "+table+" (id, k, c, pad) VALUES "+strings.Join(vals, ","), args...); err != nil {
				b.Fatal(err)
			}
			vals, args = vals[:0], args[:0]
		}
		for rows.Next() {
			var id, k int64
			var c, pad string
			if err := rows.Scan(&id, &k, &c, &pad); err != nil {
				b.Fatal(err)
			}
			vals = append(vals, "(?,?,?,?)")
			args = append(args, id, k, c, pad)
			if len(vals) == 1000 {
				flush()
			}
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
		flush()
	}
}

var sysbenchTxns = regexp.MustCompile(`transactions:\s+(\d+)\s+\(([\d.]+) per sec`)

func checksums(b testing.TB, s *mysqltest.Server, tables []string) string {
	b.Helper()
	var parts []string
	for _, tb := range tables {
		sum, err := s.Checksum(tb)
		if err != nil {
			b.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s=%d", tb, sum))
	}
	return strings.Join(parts, " ")
}

// heartbeatSeen writes a heartbeat on src and waits until dst has it.
func (rb *rowsBench) heartbeatSeen(b testing.TB, src, dst *sql.DB) {
	b.Helper()
	ts := time.Now().UnixMicro()
	if _, err := src.Exec("UPDATE heartbeat SET ts = ? WHERE id = 1", ts); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "the heartbeat replicated", 2*time.Minute, func() bool {
		var got int64
		return dst.QueryRow("SELECT ts FROM heartbeat WHERE id = 1").Scan(&got) == nil && got == ts
	})
}

type lagResult struct {
	lags []time.Duration // sorted
	txps float64
}

// pct returns the p-th percentile lag in ms (100: the largest).
func (r lagResult) pct(p int) float64 {
	if len(r.lags) == 0 {
		return 0
	}
	i := min(len(r.lags)*p/100, len(r.lags)-1)
	return float64(r.lags[i].Microseconds()) / 1000
}

// measureLag runs sysbench at -rows.rate on src while a heartbeat row is
// written on src every 10 ms and read on dst every 2 ms; each new value seen
// on dst is one lag sample: when it was seen minus when it was written.
func (rb *rowsBench) measureLag(b testing.TB, src, dst *sql.DB) lagResult {
	b.Helper()
	rb.heartbeatSeen(b, src, dst)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcConn, err := src.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer srcConn.Close()
	dstConn, err := dst.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer dstConn.Close()

	var wg sync.WaitGroup
	var lags []time.Duration
	var beatErr, pollErr error
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := srcConn.ExecContext(ctx, "UPDATE heartbeat SET ts = ? WHERE id = 1", time.Now().UnixMicro()); err != nil && ctx.Err() == nil {
				beatErr = err
				return
			}
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var ts int64
			if err := dstConn.QueryRowContext(ctx, "SELECT ts FROM heartbeat WHERE id = 1").Scan(&ts); err != nil {
				if ctx.Err() == nil {
					pollErr = err
				}
				return
			}
			if ts != last {
				now := time.Now().UnixMicro()
				if last != 0 {
					lags = append(lags, time.Duration(now-ts)*time.Microsecond)
				}
				last = ts
			}
		}
	})
	out := sysbench(b, rb.serverOf(src), "run", fmt.Sprintf("--rate=%d", *rowsRate), fmt.Sprintf("--threads=%d", *rowsThreads),
		fmt.Sprintf("--time=%d", max(1, int(rowsLagTime.Seconds()))), "--rand-seed=0")
	cancel()
	wg.Wait()
	if beatErr != nil || pollErr != nil {
		b.Fatalf("heartbeat: %v; poll: %v", beatErr, pollErr)
	}
	r := lagResult{lags: lags}
	slices.Sort(r.lags)
	if m := sysbenchTxns.FindStringSubmatch(out); m != nil {
		r.txps, _ = strconv.ParseFloat(m[2], 64)
	} else {
		b.Logf("sysbench printed no transaction count:\n%s", out)
	}
	return r
}

// serverOf returns the server behind one of the benchmark's pools.
func (rb *rowsBench) serverOf(db *sql.DB) *mysqltest.Server {
	switch db {
	case rb.dbs[0]:
		return rb.servers[0]
	case rb.dbs[1]:
		return rb.servers[1]
	case rb.primaryDB:
		return rb.primary
	}
	return rb.replica
}

type catchResult struct {
	txns       int64
	total      time.Duration // from the restart to everything applied
	firstApply time.Duration // from the restart to the first transaction applied
	cpu        string        // CPU time the replicating processes used
}

// backlog runs unthrottled sysbench on s, then writes a last heartbeat, and
// returns the GTID seq before the run and that of the last heartbeat.
func (rb *rowsBench) backlog(b testing.TB, s *mysqltest.Server, db *sql.DB) (from, to uint64) {
	b.Helper()
	from = gtidSeq(b, db)
	sysbench(b, s, "run", "--rate=0", fmt.Sprintf("--threads=%d", *rowsThreads),
		fmt.Sprintf("--time=%d", max(1, int(rowsBacklogTime.Seconds()))), "--rand-seed=0")
	if _, err := db.Exec("UPDATE heartbeat SET ts = ? WHERE id = 1", time.Now().UnixMicro()); err != nil {
		b.Fatal(err)
	}
	return from, gtidSeq(b, db)
}

// gtidSeq returns the seq of the server's last binlogged transaction.
func gtidSeq(b testing.TB, db *sql.DB) uint64 {
	b.Helper()
	var pos string
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		b.Fatal(err)
	}
	i := strings.LastIndexByte(pos, '-')
	n, err := strconv.ParseUint(pos[i+1:], 10, 64)
	if err != nil {
		b.Fatalf("gtid_binlog_pos %q: %v", pos, err)
	}
	return n
}

// catchUpTandem stops beta's daemon, builds a backlog on alpha, starts
// beta's daemon again and times until beta has applied all of it.
func (rb *rowsBench) catchUpTandem(b testing.TB) catchResult {
	b.Helper()
	rb.quiesce(b, rb.procs[:]...)
	rb.heartbeatSeen(b, rb.dbs[0], rb.dbs[1])
	rb.procs[1].stop(b)
	from, to := rb.backlog(b, rb.servers[0], rb.dbs[0])
	// The source purges what sysbench deleted and overwrote for seconds
	// after it: the catch-up starts once that is done, for either side.
	rb.quiesce(b, rb.procs[0])
	cpu0, dbCPU0 := procCPU(b, rb.procs[0].cmd.Process.Pid), serverCPU(b, rb.servers[1])
	start := time.Now()
	rb.procs[1] = startDaemon(rb.tb, rb.nodes[1])
	stopProfile := rb.profile(b, "catchup", *rowsBacklogTime)
	defer stopProfile()
	var r catchResult
	r.txns = int64(to - from)
	deadline := start.Add(10 * time.Minute)
	for {
		var st Status
		c := control.NewClient(control.SocketPath(rb.nodes[1].StateDir()))
		if c.Get(context.Background(), "/status", &st) == nil && st.Rows != nil {
			if r.firstApply == 0 && st.Rows.AppliedTxns > 0 {
				r.firstApply = time.Since(start)
			}
			if st.Rows.Applied >= to {
				r.total = time.Since(start)
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("beta did not apply alpha's %d-transaction backlog in 10 minutes; last status %+v", r.txns, st.Rows)
		}
		// Not faster: each status costs the daemon CPU it would
		// otherwise spend applying.
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	r.cpu = fmt.Sprintf("alpha's daemon %.1f s, beta's daemon %.1f s, beta's mariadbd %.1f s; the daemons' peak RSS %d and %d MiB",
		(procCPU(b, rb.procs[0].cmd.Process.Pid) - cpu0).Seconds(), procCPU(b, rb.procs[1].cmd.Process.Pid).Seconds(), (serverCPU(b, rb.servers[1]) - dbCPU0).Seconds(),
		procPeakRSS(b, rb.procs[0].cmd.Process.Pid)>>20, procPeakRSS(b, rb.procs[1].cmd.Process.Pid)>>20)
	return r
}

// catchUpNative stops the replica's threads, builds a backlog on the
// primary, starts them again and times until the replica's gtid_slave_pos
// reaches the primary's last transaction.
func (rb *rowsBench) catchUpNative(b testing.TB) catchResult {
	b.Helper()
	rb.quiesce(b, rb.procs[:]...)
	rb.heartbeatSeen(b, rb.primaryDB, rb.replicaDB)
	if _, err := rb.replicaDB.Exec("STOP SLAVE"); err != nil {
		b.Fatal(err)
	}
	from, to := rb.backlog(b, rb.primary, rb.primaryDB)
	rb.quiesce(b, rb.procs[:]...)
	var want string
	if err := rb.primaryDB.QueryRow("SELECT @@gtid_binlog_pos").Scan(&want); err != nil {
		b.Fatal(err)
	}
	var before string
	rb.replicaDB.QueryRow("SELECT @@gtid_slave_pos").Scan(&before)
	conn, err := rb.replicaDB.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	cpu0 := serverCPU(b, rb.replica)
	start := time.Now()
	if _, err := conn.ExecContext(context.Background(), "START SLAVE"); err != nil {
		b.Fatal(err)
	}
	r := catchResult{txns: int64(to - from)}
	deadline := start.Add(10 * time.Minute)
	for {
		var pos string
		if err := conn.QueryRowContext(context.Background(), "SELECT @@gtid_slave_pos").Scan(&pos); err != nil {
			b.Fatal(err)
		}
		if r.firstApply == 0 && pos != before {
			r.firstApply = time.Since(start)
		}
		if pos == want {
			r.total = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the replica did not reach %s in 10 minutes; it is at %s", want, pos)
		}
		time.Sleep(2 * time.Millisecond) // polling interval
	}
	r.cpu = fmt.Sprintf("replica's mariadbd %.1f s", (serverCPU(b, rb.replica) - cpu0).Seconds())
	return r
}

// quiesce waits (up to a minute) until the four servers and the given
// daemons together use under 5% of a core over half a second: a catch-up
// starts with the machine as quiet for either side, not while a server
// still purges what sysbench or the case before deleted.
func (rb *rowsBench) quiesce(b testing.TB, procs ...*daemonProc) {
	b.Helper()
	used := func() time.Duration {
		var d time.Duration
		for _, s := range []*mysqltest.Server{rb.servers[0], rb.servers[1], rb.primary, rb.replica} {
			d += serverCPU(b, s)
		}
		for _, p := range procs {
			d += procCPU(b, p.cmd.Process.Pid)
		}
		return d
	}
	const window = 500 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for before := used(); ; {
		time.Sleep(window) // a measuring window, not a synchronisation
		now := used()
		if now-before < window/20 {
			return
		}
		if time.Now().After(deadline) {
			b.Logf("the servers and daemons did not quiet down in a minute (%v CPU in the last %v); measuring anyway", now-before, window)
			return
		}
		before = now
	}
}

// serverCPU returns the CPU time a server process has used.
func serverCPU(b testing.TB, s *mysqltest.Server) time.Duration {
	pid, err := os.ReadFile(filepath.Join(s.Dir, "pid"))
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err != nil {
		b.Fatal(err)
	}
	return procCPU(b, n)
}

// profile saves CPU profiles of both daemons over d to -rows.pprof, if set,
// and with -rows.perf a perf recording of alpha's and beta's servers there
// too; the returned func waits for them.
func (rb *rowsBench) profile(b testing.TB, phase string, d time.Duration) func() {
	if *rowsPprof == "" {
		return func() {}
	}
	if err := os.MkdirAll(*rowsPprof, 0o755); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	if *rowsPerf {
		var pids []string
		for _, s := range rb.servers {
			pid, err := os.ReadFile(filepath.Join(s.Dir, "pid"))
			if err != nil {
				b.Fatal(err)
			}
			pids = append(pids, strings.TrimSpace(string(pid)))
		}
		out := filepath.Join(*rowsPprof, fmt.Sprintf("%s-servers-%d.perf", phase, time.Now().Unix()))
		b.Logf("perf of alpha's (pid %s) and beta's (pid %s) servers: %s", pids[0], pids[1], out)
		wg.Go(func() {
			cmd := exec.Command("perf", "record", "-g", "-F", "499", "-o", out, "-p", strings.Join(pids, ","),
				"--", "sleep", fmt.Sprint(max(1, int(d.Seconds()))))
			if msg, err := cmd.CombinedOutput(); err != nil {
				b.Logf("perf: %v: %s", err, msg)
			}
		})
	}
	for _, n := range rb.nodes {
		wg.Go(func() {
			sock := control.SocketPath(n.StateDir())
			hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}}
			// beta's daemon may be starting: its socket appears shortly.
			var resp *http.Response
			var err error
			for range 200 {
				if resp, err = hc.Get(fmt.Sprintf("http://t/debug/pprof/profile?seconds=%d", max(1, int(d.Seconds())))); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond) // waiting for the daemon's socket
			}
			if err != nil {
				b.Logf("profile %s: %v", n.Name, err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(*rowsPprof, fmt.Sprintf("%s-%s-%d.pprof", phase, n.Name, time.Now().Unix())))
			if err != nil {
				b.Logf("profile %s: %v", n.Name, err)
				return
			}
			io.Copy(f, resp.Body)
			f.Close()
		})
	}
	return wg.Wait
}

// loadAvg returns the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
