package binlog

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/mysqltest"
)

// BenchmarkApply measures how many small source transactions per second
// (one row each: updates of random rows of a 10k-row sysbench-like table,
// and inserts) a real MariaDB server takes through Apply when the stream
// is behind: Apply calls of 512 Txns, as the engine makes them. The
// "native" sub-benchmark feeds the same kind of backlog to MariaDB's own
// replication (relay log fetched, then the SQL thread started) on the same
// machine, for the ratio.
func BenchmarkApply(b *testing.B) {
	s := mysqltest.Start(b, mysqltest.Options{ServerID: 1})
	s.Exec("CREATE DATABASE shop")
	const rows = 10000
	run := 0
	for _, cfg := range []struct {
		workers       int
		skip, inserts bool
	}{{1, false, false}, {4, false, false}, {8, false, false}, {4, true, false}, {4, false, true}} {
		workers := cfg.workers
		name := fmt.Sprintf("workers=%d", workers)
		if cfg.skip {
			name += "/skip-binlog"
		}
		if cfg.inserts {
			name += "/inserts-only"
		}
		b.Run(name, func(b *testing.B) {
			table := fmt.Sprintf("sb%d_%v_%v", workers, cfg.skip, cfg.inserts)
			run++
			s.Exec("DROP TABLE IF EXISTS shop."+table, fmt.Sprintf("CREATE TABLE shop.%s (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k))", table))
			var vals []string
			for i := 0; i < rows; i++ {
				vals = append(vals, fmt.Sprintf("(%d, %d, '%s', '%s')", i, i, strings.Repeat("c", 120), strings.Repeat("p", 60)))
			}
			s.Exec(fmt.Sprintf("INSERT INTO shop.%s VALUES %s", table, strings.Join(vals, ",")))
			tb := testTable{schema: "shop", name: table, key: []int{0}, cols: []Column{
				{Name: "id"}, {Name: "k"}, {Name: "c", Charset: "utf8mb4"}, {Name: "pad", Charset: "utf8mb4"}}}
			cur := make([][]Value, rows)
			for i := range cur {
				cur[i] = []Value{vI(int64(i)), vI(int64(i)), vB(Text, strings.Repeat("c", 120)), vB(Text, strings.Repeat("p", 60))}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
			txns := make([]*Txn, b.N)
			next := int64(rows)
			for i := range txns {
				var r Row
				if i%4 == 3 || cfg.inserts {
					r = tb.ins([]Value{vI(next), vI(next), vB(Text, "new"), vB(Text, "x")})
					next++
				} else {
					id := rng.IntN(rows)
					after := []Value{cur[id][0], vI(cur[id][1].I + 1), cur[id][2], cur[id][3]}
					r = tb.upd(cur[id], after)
					cur[id] = after
				}
				txns[i] = testTxn(fmt.Sprintf("%s-%d", table, run), uint64(i+1), t0, r)
			}
			a, _ := testApplier(b, s, "beta", ApplierOptions{Workers: workers, SkipBinlog: cfg.skip})
			ctx := context.Background()
			b.ResetTimer()
			start, cpu := time.Now(), benchServerCPU(b, s)
			for i := 0; i < len(txns); i += 512 {
				if err := a.Apply(ctx, txns[i:min(i+512, len(txns))]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tx/s")
			b.ReportMetric(float64((benchServerCPU(b, s)-cpu).Microseconds())/float64(b.N), "server-cpu-µs/tx")
			b.StopTimer()
			if n := a.slowApplied.Load(); n != 0 {
				b.Errorf("%d transactions took the slow path", n)
			}
		})
	}
	b.Run("sysbench/workers=4", func(b *testing.B) {
		run++
		benchApplySysbench(b, s, fmt.Sprintf("sysbench-%d", run))
	})
	for _, threads := range []int{0, 4} {
		b.Run(fmt.Sprintf("native-mariadb-parallel-threads=%d", threads), func(b *testing.B) {
			benchNative(b, s, threads)
		})
	}
}

// benchNative measures MariaDB's own replication applying a backlog of
// b.N transactions like BenchmarkApply's, written on src.
func benchNative(b *testing.B, src *mysqltest.Server, threads int) {
	const rows = 10000
	replica := mysqltest.Start(b, mysqltest.Options{ServerID: 9, Args: []string{fmt.Sprintf("--slave-parallel-threads=%d", threads)}})
	table := fmt.Sprintf("nat%d_%d", threads, b.N)
	src.Exec("DROP TABLE IF EXISTS shop."+table, fmt.Sprintf("CREATE TABLE shop.%s (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k))", table))
	var vals []string
	for i := 0; i < rows; i++ {
		vals = append(vals, fmt.Sprintf("(%d, %d, '%s', '%s')", i, i, strings.Repeat("c", 120), strings.Repeat("p", 60)))
	}
	src.Exec(fmt.Sprintf("INSERT INTO shop.%s VALUES %s", table, strings.Join(vals, ",")))
	rdb := replica.DB("")
	start := testQueryString(b, src.DB(""), "SELECT @@gtid_binlog_pos")
	for _, q := range []string{
		"SET GLOBAL gtid_slave_pos = '" + start + "'",
		fmt.Sprintf("CHANGE MASTER TO master_host='127.0.0.1', master_port=%d, master_user='%s', master_password='%s', master_use_gtid=slave_pos", src.Port, mysqltest.User, mysqltest.Password),
		"CREATE DATABASE shop",
		fmt.Sprintf("CREATE TABLE shop.%s (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k))", table),
		fmt.Sprintf("INSERT INTO shop.%s SELECT seq, seq, REPEAT('c', 120), REPEAT('p', 60) FROM shop.seq_0_to_%d", table, rows-1),
		"START SLAVE IO_THREAD",
	} {
		if _, err := rdb.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	// The backlog: b.N single-row transactions, written as fast as one
	// connection can.
	sdb := src.DB("")
	sdb.SetMaxOpenConns(1)
	rng := rand.New(rand.NewPCG(1, 2))
	next := rows
	for i := 0; i < b.N; i++ {
		var err error
		if i%4 == 3 {
			_, err = sdb.Exec(fmt.Sprintf("INSERT INTO shop.%s VALUES (%d, %d, 'new', 'x')", table, next, next))
			next++
		} else {
			_, err = sdb.Exec(fmt.Sprintf("UPDATE shop.%s SET k = k + 1 WHERE id = %d", table, rng.IntN(rows)))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	end := testQueryString(b, sdb, "SELECT @@gtid_binlog_pos")
	// Wait until the relay log holds it all, then time the SQL thread.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var got sql.NullString
		rows, err := rdb.Query("SHOW SLAVE STATUS")
		if err != nil {
			b.Fatal(err)
		}
		cols, _ := rows.Columns()
		cells := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range cells {
			ptrs[i] = &cells[i]
		}
		for rows.Next() {
			rows.Scan(ptrs...)
			for i, c := range cols {
				if c == "Gtid_IO_Pos" {
					got = cells[i]
				}
			}
		}
		rows.Close()
		if got.String == end {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("relay log at %q after 5 min, want %q", got.String, end)
		}
		time.Sleep(10 * time.Millisecond) // polling a real server
	}
	b.ResetTimer()
	t0, cpu := time.Now(), benchServerCPU(b, replica)
	if _, err := rdb.Exec("START SLAVE SQL_THREAD"); err != nil {
		b.Fatal(err)
	}
	if _, err := rdb.Exec("SELECT MASTER_GTID_WAIT(?, 300)", end); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(t0)
	b.ReportMetric(float64((benchServerCPU(b, replica)-cpu).Microseconds())/float64(b.N), "server-cpu-µs/tx")
	b.StopTimer()
	if pos := testQueryString(b, rdb, "SELECT @@gtid_slave_pos"); pos != end {
		b.Fatalf("replica at %q, want %q", pos, end)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tx/s")
}

// benchServerCPU returns the CPU time the server's process has used: on a
// machine shared with other work, CPU per transaction says more than the
// wall clock.
func benchServerCPU(b *testing.B, s *mysqltest.Server) time.Duration {
	pid, err := os.ReadFile(filepath.Join(s.Dir, "pid"))
	if err != nil {
		b.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// sysbenchTxns makes n transactions like sysbench oltp_write_only's on
// 4 tables of 10k rows (update k, update c, delete and insert one row;
// each statement on a random table), wire-encoded as the peer sends them.
func sysbenchTxns(n int) [][]byte {
	wire, _ := sysbenchData(n)
	return wire
}

// sysbenchData is sysbenchTxns, also returning the image each touched row
// of table sbtest<i+1> had before the first transaction (by id), which a
// server's tables must hold for the transactions to apply without
// conflicts.
func sysbenchData(n int) ([][]byte, [4]map[int64][]Value) {
	rng := rand.New(rand.NewPCG(3, 4))
	cols := []Column{{Name: "id", Type: "int"}, {Name: "k", Type: "int"}, {Name: "c", Type: "char(120)", Charset: "utf8mb4"}, {Name: "pad", Type: "char(60)", Charset: "utf8mb4"}}
	var tables [4]testTable
	cur := make([]map[int64][]Value, 4)
	var initial [4]map[int64][]Value
	randText := func(n int) Value {
		b := make([]byte, n)
		for i := range b {
			b[i] = '0' + byte(rng.IntN(10))
		}
		return Value{Kind: Text, B: b}
	}
	for i := range tables {
		tables[i] = testTable{schema: "sbtest", name: fmt.Sprintf("sbtest%d", i+1), cols: cols, key: []int{0}}
		cur[i] = map[int64][]Value{}
		initial[i] = map[int64][]Value{}
	}
	row := func(t int, id int64) []Value {
		if r, ok := cur[t][id]; ok {
			return r
		}
		r := []Value{vI(id), vI(id), randText(120), randText(60)}
		cur[t][id] = r
		initial[t][id] = r
		return r
	}
	// randID picks a row id as sysbench 1.0 does by default
	// (--rand-type=special, sb_rand_special in its sb_rand.c): a quarter
	// of the picks spread around the middle of the table (the mean of 12
	// uniform draws), three quarters on its middle 1% of ids. Many
	// transactions touch the same hot rows: most of a catch-up's
	// transactions depend on one another through some chain of rows.
	// -apply.rand=uniform picks every id alike.
	switch *benchApplyRand {
	case "special", "uniform":
	default:
		panic(fmt.Sprintf("-apply.rand=%q: want special or uniform", *benchApplyRand))
	}
	randID := func() int64 {
		const t = 10000 - 1
		if *benchApplyRand == "uniform" {
			return int64(rng.IntN(10000))
		}
		res := rng.IntN(4 * t)
		if res < t {
			sum := 0.0
			for range 12 {
				sum += rng.Float64()
			}
			return int64(sum * t / 12)
		}
		return int64(res%(t/100) + t/2 - t/200)
	}
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	out := make([][]byte, n)
	for i := range out {
		var rows []Row
		t, id := rng.IntN(4), randID()
		b := row(t, id)
		a := []Value{b[0], vI(b[1].I + 1), b[2], b[3]}
		cur[t][id] = a
		rows = append(rows, tables[t].upd(b, a))
		t, id = rng.IntN(4), randID()
		b = row(t, id)
		a = []Value{b[0], b[1], randText(120), b[3]}
		cur[t][id] = a
		rows = append(rows, tables[t].upd(b, a))
		t, id = rng.IntN(4), randID()
		b = row(t, id)
		rows = append(rows, tables[t].del(b))
		a = []Value{b[0], vI(int64(rng.IntN(10000))), randText(120), randText(60)}
		cur[t][id] = a
		rows = append(rows, tables[t].ins(a))
		out[i] = AppendTxn(nil, testTxn("alpha", uint64(i+1), t0.Add(time.Duration(i)*time.Millisecond), rows...))
	}
	return out, initial
}

// benchApplySysbench measures a catch-up of b.N sysbench oltp_write_only
// transactions (4 rows each, see sysbenchData) as the receiving daemon
// makes it: decoding them off the wire and applying them in calls of
// -apply.call (default: the engine's applyBatch, its most on a catch-up).
// Besides tx/s and the server's CPU it reports this process's own CPU per
// transaction (getrusage), the daemon's share of the machine.
var (
	benchApplyCall    = flag.Int("apply.call", applyBatch, "BenchmarkApply/sysbench: transactions per Apply call")
	benchApplyWorkers = flag.Int("apply.workers", 4, "BenchmarkApply/sysbench: ApplierOptions.Workers")
	benchApplyTxns    = flag.Int("apply.txns", 0, "BenchmarkApply/sysbench: ApplierOptions.BatchTxns (0: the default)")
	benchApplyRand    = flag.String("apply.rand", "special", "BenchmarkApply/sysbench, BenchmarkApplySQL: how rows are picked, \"special\" (sysbench 1.0's default: hot rows) or \"uniform\"")
)

func benchApplySysbench(b *testing.B, s *mysqltest.Server, origin string) {
	const rows = 10000
	wire, initial := sysbenchData(b.N)
	s.Exec("CREATE DATABASE IF NOT EXISTS sbtest")
	for t := range initial {
		table := fmt.Sprintf("sbtest.sbtest%d", t+1)
		s.Exec("DROP TABLE IF EXISTS "+table, "CREATE TABLE "+table+" (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k))")
		var vals []string
		for id := int64(0); id < rows; id++ {
			if r, ok := initial[t][id]; ok {
				vals = append(vals, fmt.Sprintf("(%d, %d, '%s', '%s')", id, r[1].I, r[2].B, r[3].B))
			} else {
				vals = append(vals, fmt.Sprintf("(%d, %d, '%s', '%s')", id, id, strings.Repeat("c", 120), strings.Repeat("p", 60)))
			}
		}
		s.Exec(fmt.Sprintf("INSERT INTO %s VALUES %s", table, strings.Join(vals, ",")))
	}
	// The encoded transactions name origin "alpha": rewrite it, so that
	// each run has its own marker rows. The origin is the frame's second
	// field (after the version byte), so re-encoding is the simple way.
	for i, w := range wire {
		t, err := DecodeTxn(w)
		if err != nil {
			b.Fatal(err)
		}
		t.Origin = origin
		wire[i] = AppendTxn(nil, t)
	}
	// SkipBinlog: the daemon's default (log_applied = false).
	a, _ := testApplier(b, s, "beta", ApplierOptions{Workers: *benchApplyWorkers, BatchTxns: *benchApplyTxns, SkipBinlog: true})
	ctx := context.Background()
	call := *benchApplyCall
	txns := make([]*Txn, 0, call)
	dec := newTxnDecoder() // one stream's, as the engine's receive has
	b.ResetTimer()
	start, cpu, self := time.Now(), benchServerCPU(b, s), benchSelfCPU(b)
	for i := 0; i < len(wire); i += call {
		txns = txns[:0]
		for _, w := range wire[i:min(i+call, len(wire))] {
			t, err := dec.decode(w)
			if err != nil {
				b.Fatal(err)
			}
			txns = append(txns, t)
		}
		if err := a.Apply(ctx, txns); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tx/s")
	b.ReportMetric(float64((benchServerCPU(b, s)-cpu).Microseconds())/float64(b.N), "server-cpu-µs/tx")
	b.ReportMetric(float64((benchSelfCPU(b)-self).Microseconds())/float64(b.N), "daemon-cpu-µs/tx")
	b.StopTimer()
	if n := a.slowApplied.Load(); n != 0 {
		b.Errorf("%d transactions took the slow path", n)
	}
}

// benchSelfCPU returns the CPU time (user and system) this process has
// used.
func benchSelfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkApplySQL measures the applier's own CPU per transaction on a
// catch-up, without a server: decoding sysbench-like transactions off the
// wire (with one stream's decoder), checking them, partitioning them over
// the workers and building the batches' SQL (folded), in Apply calls of
// 512.
func BenchmarkApplySQL(b *testing.B) {
	wire := sysbenchTxns(512)
	a := &Applier{o: ApplierOptions{Node: "beta", Workers: applyDefaultWorkers, BatchTxns: applyDefaultBatchTxns}, session: "SET SESSION time_zone='+00:00'",
		foldable: map[string]bool{}}
	for i := 1; i <= 4; i++ {
		a.foldable[string(rowKeyAppendTable(nil, "sbtest", fmt.Sprintf("sbtest%d", i)))] = true // as loadFoldable finds them
	}
	txns := make([]*Txn, len(wire))
	sqlBytes := 0
	dec := newTxnDecoder() // one stream's, as the engine's receive has
	for b.Loop() {
		for i, w := range wire {
			t, err := dec.decode(w)
			if err != nil {
				b.Fatal(err)
			}
			txns[i] = t
		}
		if err := a.checkTxns(txns); err != nil {
			b.Fatal(err)
		}
		items := make([]*applyItem, len(txns))
		for i, t := range txns {
			items[i] = &applyItem{t: t, prev: t.Seq - 1}
		}
		for _, part := range applyPartition(items, a.o.Workers) {
			for len(part) > 0 {
				n, q, err := a.batchSQL(part, a.o.BatchTxns)
				if err != nil {
					b.Fatal(err)
				}
				sqlBytes += len(q.sql)
				part = part[n:]
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(wire))/1000, "µs/tx")
	b.ReportMetric(float64(sqlBytes)/float64(b.N*len(wire)), "sql-bytes/tx")
}
