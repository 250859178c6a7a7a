package main

// Database replication end to end: two real MariaDB servers, two real
// daemons (separate processes, real SSH on loopback) with the fault proxy
// between them.

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/internal/faultproxy"
	"github.com/tandemhost/tandem/internal/mysqltest"
)

type rowPair struct {
	nodes   [2]*pairNode
	servers [2]*mysqltest.Server
	dbs     [2]*sql.DB
	proxies map[string]*faultproxy.Proxy
	procs   [2]*daemonProc
}

// rowsSchema is created on both servers before the daemons first start.
var rowsSchema = []string{
	"CREATE DATABASE shop",
	"CREATE TABLE shop.items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL, UNIQUE KEY (name))",
	"CREATE TABLE shop.orders (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, item INT, amount DECIMAL(12,2), at DATETIME(6), note TEXT)",
}

func startRowPair(t *testing.T, oneWay time.Duration, serverArgs ...string) *rowPair {
	t.Helper()
	rp := &rowPair{proxies: map[string]*faultproxy.Proxy{}}
	extra := map[string]string{}
	for i, name := range []string{"alpha", "beta"} {
		args := append([]string{"--auto-increment-increment=2", fmt.Sprintf("--auto-increment-offset=%d", i+1)}, serverArgs...)
		rp.servers[i] = mysqltest.Start(t, mysqltest.Options{ServerID: uint32(i + 1), Args: args})
		rp.servers[i].Exec(rowsSchema...)
		rp.dbs[i] = rp.servers[i].DB("shop")
		extra[name] = fmt.Sprintf("\n[mysql]\ndsn = %q\nserver_id = %d\ndatabases = [\"shop\"]\n", rp.servers[i].DSN(""), 1001+i)
	}
	nodes, err := setupPair(filepath.Join(t.TempDir(), "nodes"), pairOptions{
		Dial:  proxyDial(t, rp.proxies, oneWay),
		SSH:   "heartbeat = \"200ms\"\ntimeout = \"1s\"\n",
		Extra: extra,
	})
	if err != nil {
		t.Fatal(err)
	}
	rp.nodes = nodes
	return rp
}

func (rp *rowPair) start(t *testing.T) {
	t.Helper()
	for i, n := range rp.nodes {
		rp.procs[i] = startDaemon(t, n)
	}
	for _, n := range rp.nodes {
		waitPeer(t, n, "connected", func(p PeerStatus) bool { return p.Connected })
	}
}

func (rp *rowPair) exec(t *testing.T, side int, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if _, err := rp.dbs[side].Exec(q); err != nil {
			t.Fatalf("%s: %s: %v", rp.nodes[side].Name, q, err)
		}
	}
}

// checksums returns CHECKSUM TABLE of every table on one side.
func (rp *rowPair) checksums(side int, tables ...string) string {
	var parts []string
	for _, tb := range tables {
		sum, err := rp.servers[side].Checksum(tb)
		parts = append(parts, fmt.Sprintf("%s=%d/%v", tb, sum, err))
	}
	return strings.Join(parts, " ")
}

// waitConverged waits until every table's checksum is equal on both sides
// and both sides are idle (nothing in flight).
func (rp *rowPair) waitConverged(t *testing.T, timeout time.Duration, tables ...string) {
	t.Helper()
	var a, b string
	waitFor(t, "both servers' tables equal", timeout, func() bool {
		a, b = rp.checksums(0, tables...), rp.checksums(1, tables...)
		if a != b || strings.Contains(a, "/table") {
			return false
		}
		for _, n := range rp.nodes {
			st := statusCLI(t, n)
			if st.Rows == nil || st.Rows.InFlight != 0 {
				return false
			}
		}
		return true
	})
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestRowsReplicateBothWaysWithoutEcho(t *testing.T) {
	rp := startRowPair(t, 20*time.Millisecond)
	rp.start(t)
	// Plain writes on both sides, single statements and multi-row
	// transactions.
	rp.exec(t, 0, "INSERT INTO items (name, qty) VALUES ('apple', 1), ('pear', 2)")
	rp.exec(t, 1, "INSERT INTO items (name, qty) VALUES ('plum', 3)")
	rp.exec(t, 0, "BEGIN", "UPDATE items SET qty = qty + 10 WHERE name = 'apple'",
		"INSERT INTO orders (item, amount, at, note) VALUES (1, 12.34, '2026-11-22 03:04:05.123456', 'first')", "COMMIT")
	rp.exec(t, 1, "INSERT INTO orders (item, amount, at, note) VALUES (2, -0.01, '1999-12-31 23:59:59.999999', 'zweite Bestellung ✓')")
	rp.waitConverged(t, 30*time.Second, "shop.items", "shop.orders")
	rp.exec(t, 1, "DELETE FROM items WHERE name = 'pear'")
	rp.exec(t, 0, "UPDATE orders SET note = NULL")
	rp.waitConverged(t, 30*time.Second, "shop.items", "shop.orders")
	if n := count(t, rp.dbs[0], "SELECT COUNT(*) FROM items"); n != 2 {
		t.Errorf("alpha has %d items, want 2", n)
	}

	// No echo: each side sent exactly its own transactions (3 and 3),
	// and applied exactly the peer's, once.
	for i, n := range rp.nodes {
		st := statusCLI(t, n)
		if st.Rows.Acked != st.Rows.Sent {
			t.Errorf("%s: sent %d, acked %d", n.Name, st.Rows.Sent, st.Rows.Acked)
		}
		peer := rp.nodes[1-i].Name
		applied := count(t, rp.dbs[i], "SELECT COUNT(*) FROM tandem.applied WHERE origin = ?", peer)
		if applied < 1 {
			t.Errorf("%s: no marker rows for %s's transactions", n.Name, peer)
		}
		if own := count(t, rp.dbs[i], "SELECT COUNT(*) FROM tandem.applied WHERE origin = ?", n.Name); own != 0 {
			t.Errorf("%s: %d marker rows for its own transactions: they echoed back", n.Name, own)
		}
	}
	// Let any echo have time to show: a few more round trips, then the
	// binlog positions must not move without writes.
	before := [2]Status{statusCLI(t, rp.nodes[0]), statusCLI(t, rp.nodes[1])}
	rp.exec(t, 0, "INSERT INTO items (name, qty) VALUES ('fig', 9)")
	rp.waitConverged(t, 30*time.Second, "shop.items")
	after := [2]Status{statusCLI(t, rp.nodes[0]), statusCLI(t, rp.nodes[1])}
	if got := after[0].Rows.SentTxns - before[0].Rows.SentTxns; got != 1 {
		t.Errorf("alpha sent %d transactions for one insert, want 1", got)
	}
	if got := after[1].Rows.AppliedTxns - before[1].Rows.AppliedTxns; got != 1 {
		t.Errorf("beta applied %d transactions for one insert, want 1", got)
	}
	if after[1].Rows.SentTxns != before[1].Rows.SentTxns {
		t.Errorf("beta sent %d transactions after applying alpha's insert: an echo", after[1].Rows.SentTxns-before[1].Rows.SentTxns)
	}
}

func TestRowsReceiverKilledMidStream(t *testing.T) {
	rp := startRowPair(t, 5*time.Millisecond)
	rp.start(t)
	const total = 1500
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			if _, err := rp.dbs[0].Exec("INSERT INTO orders (item, amount, note) VALUES (?, ?, ?)", i, "1.00", fmt.Sprintf("order %d", i)); err != nil {
				t.Errorf("insert %d: %v", i, err)
				return
			}
			written.Add(1)
		}
	})
	waitFor(t, "some rows on beta", 30*time.Second, func() bool {
		return count(t, rp.dbs[1], "SELECT COUNT(*) FROM orders") > 200
	})
	rp.procs[1].cmd.Process.Kill()
	<-rp.procs[1].done
	waitFor(t, "more writes while beta's daemon is down", 30*time.Second, func() bool { return written.Load() > 800 })
	rp.procs[1] = startDaemon(t, rp.nodes[1])
	wg.Wait()
	rp.waitConverged(t, 60*time.Second, "shop.orders")
	if n := count(t, rp.dbs[1], "SELECT COUNT(*) FROM orders"); n != total {
		t.Errorf("beta has %d orders, want %d", n, total)
	}
	if n := count(t, rp.dbs[1], "SELECT COUNT(DISTINCT note) FROM orders"); n != total {
		t.Errorf("beta has %d distinct orders, want %d: something applied twice or lost", n, total)
	}
	for _, n := range rp.nodes {
		if v, err := conflict.Load(n.StateDir()); err == nil && len(v.List(conflict.Filter{})) > 0 {
			t.Errorf("%s logged conflicts %+v; a restart must not re-apply anything", n.Name, v.List(conflict.Filter{}))
		}
	}
}

func TestRowsConflictDuringPartition(t *testing.T) {
	rp := startRowPair(t, 10*time.Millisecond)
	rp.start(t)
	rp.exec(t, 0, "INSERT INTO items (id, name, qty) VALUES (100, 'shared', 1)")
	rp.waitConverged(t, 30*time.Second, "shop.items")

	for _, p := range rp.proxies {
		p.Blackhole(true)
	}
	for _, n := range rp.nodes {
		waitPeer(t, n, "link down in the partition", func(p PeerStatus) bool { return !p.Connected })
	}
	rp.exec(t, 0, "UPDATE items SET qty = 111 WHERE id = 100")
	// Binlog commit times have second precision: make beta's later.
	t0 := time.Now().Unix()
	waitFor(t, "the next second", 3*time.Second, func() bool { return time.Now().Unix() > t0 })
	rp.exec(t, 1, "UPDATE items SET qty = 222 WHERE id = 100")
	for _, p := range rp.proxies {
		p.Blackhole(false)
	}
	rp.waitConverged(t, 30*time.Second, "shop.items")
	for i := range rp.nodes {
		if q := count(t, rp.dbs[i], "SELECT qty FROM items WHERE id = 100"); q != 222 {
			t.Errorf("%s: qty = %d, want beta's later 222", rp.nodes[i].Name, q)
		}
	}
	logged := 0
	for _, n := range rp.nodes {
		v, err := conflict.Load(n.StateDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range v.List(conflict.Filter{}) {
			if e.Row != nil && e.Row.Table == "items" {
				logged++
				if e.Winner != "beta" {
					t.Errorf("%s logged winner %q, want beta", n.Name, e.Winner)
				}
			}
		}
	}
	if logged == 0 {
		t.Error("no row conflict logged on either node")
	}
	out, err := exec.Command(tandemBinary(t), "conflicts", "list", "-c", rp.nodes[0].ConfigPath()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "items") {
		t.Errorf("tandem conflicts list: %v\n%s\nwant the row conflict on items", err, out)
	}
}

func TestRowsDDLWhileWritesFlow(t *testing.T) {
	rp := startRowPair(t, 10*time.Millisecond)
	rp.start(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := rp.dbs[0].Exec("INSERT INTO orders (item, note) VALUES (?, 'before')", i); err != nil {
				t.Errorf("insert: %v", err)
				return
			}
		}
	})
	waitFor(t, "writes flowing to beta", 30*time.Second, func() bool {
		return count(t, rp.dbs[1], "SELECT COUNT(*) FROM orders") > 50
	})
	rp.exec(t, 0, "ALTER TABLE orders ADD COLUMN region VARCHAR(8) DEFAULT 'eu' AFTER item")
	rp.exec(t, 0, "INSERT INTO orders (item, region, note) VALUES (-1, 'us', 'after')")
	rp.exec(t, 1, "CREATE TABLE shop.tags (id INT PRIMARY KEY, tag VARCHAR(10))", "INSERT INTO shop.tags VALUES (1, 'new')")
	rp.exec(t, 0, "CREATE TABLE shop.big_orders (PRIMARY KEY (id)) AS SELECT id, item, note FROM shop.orders WHERE item < 20")
	close(stop)
	wg.Wait()
	rp.waitConverged(t, 60*time.Second, "shop.orders", "shop.tags", "shop.big_orders")
	var region string
	if err := rp.dbs[1].QueryRow("SELECT region FROM orders WHERE item = -1").Scan(&region); err != nil || region != "us" {
		t.Errorf("beta: region of the row written after ALTER = %q, %v; want us", region, err)
	}
}

func TestRowsStatementFormatRefused(t *testing.T) {
	rp := startRowPair(t, 0, "--binlog-format=STATEMENT")
	out, err := exec.Command(tandemBinary(t), "check", "-c", rp.nodes[0].ConfigPath()).CombinedOutput()
	if exitCode(err) != exitFailure || !strings.Contains(string(out), "binlog_format") || !strings.Contains(string(out), "ROW") {
		t.Errorf("tandem check with binlog_format=STATEMENT: exit %d\n%s\nwant exit 1 naming binlog_format and the fix (ROW)", exitCode(err), out)
	}
	cmd := exec.Command(tandemBinary(t), "run", "-c", rp.nodes[0].ConfigPath())
	done := make(chan struct{})
	var runOut []byte
	go func() { runOut, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("tandem run kept running against a STATEMENT-format server:\n%s", runOut)
	}
	if err == nil || !strings.Contains(string(runOut), "binlog_format") {
		t.Errorf("tandem run: %v\n%s\nwant a refusal naming binlog_format", err, runOut)
	}
}

func TestRowsSeedEmptyPeer(t *testing.T) {
	rp := startRowPair(t, 10*time.Millisecond)
	// beta's server starts empty: no shop.
	rp.servers[1].Exec("DROP DATABASE shop", "RESET MASTER")
	for i := range 300 {
		rp.exec(t, 0, fmt.Sprintf("INSERT INTO items (name, qty) VALUES ('item %d', %d)", i, i))
	}
	rp.exec(t, 0, "INSERT INTO orders (item, amount, at, note) VALUES (1, 9.99, '2026-01-02 03:04:05.5', 'before the seed')")
	rp.start(t)
	out, err := exec.Command(tandemBinary(t), "db", "seed", "-c", rp.nodes[1].ConfigPath()).CombinedOutput()
	if err != nil {
		t.Fatalf("tandem db seed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "seeded from alpha") {
		t.Errorf("tandem db seed printed %q, want it to say it seeded from alpha", out)
	}
	rp.dbs[1] = rp.servers[1].DB("shop")
	rp.waitConverged(t, 30*time.Second, "shop.items", "shop.orders")
	// Writes after the seed flow both ways, once.
	rp.exec(t, 0, "INSERT INTO items (name, qty) VALUES ('after', 1)")
	rp.exec(t, 1, "UPDATE items SET qty = 1000 WHERE name = 'item 7'")
	rp.waitConverged(t, 30*time.Second, "shop.items", "shop.orders")
	if n := count(t, rp.dbs[1], "SELECT COUNT(*) FROM items"); n != 301 {
		t.Errorf("beta has %d items after the seed and one insert, want 301", n)
	}
	for _, n := range rp.nodes {
		if v, err := conflict.Load(n.StateDir()); err == nil && len(v.List(conflict.Filter{})) > 0 {
			t.Errorf("%s logged conflicts %+v; a seed must not echo or overlap", n.Name, v.List(conflict.Filter{}))
		}
	}
}

// TestRowsLogApplied: by default (log_applied = false) the peer's
// transactions are applied outside the binlog: the receiving server's
// binlog position does not move for them; with log_applied = true it does,
// and nothing echoes. Both converge.
func TestRowsLogApplied(t *testing.T) {
	for _, logApplied := range []bool{false, true} {
		t.Run(fmt.Sprintf("log_applied=%t", logApplied), func(t *testing.T) {
			rp := startRowPair(t, 0)
			if logApplied {
				for _, n := range rp.nodes {
					data, err := os.ReadFile(n.ConfigPath())
					if err != nil {
						t.Fatal(err)
					}
					if i := strings.LastIndex(string(data), "\n["); i < 0 || !strings.HasPrefix(string(data[i+1:]), "[mysql]") {
						t.Fatalf("%s's config does not end with its [mysql] section:\n%s", n.Name, data)
					}
					if err := os.WriteFile(n.ConfigPath(), append(data, "log_applied = true\n"...), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			rp.start(t)
			rp.exec(t, 1, "INSERT INTO items (name, qty) VALUES ('plum', 3)")
			rp.waitConverged(t, 30*time.Second, "shop.items")
			binlogPos := func(db *sql.DB) string {
				var pos string
				if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
					t.Fatal(err)
				}
				return pos
			}
			before, sentBefore := binlogPos(rp.dbs[1]), statusCLI(t, rp.nodes[1]).Rows.SentTxns
			rp.exec(t, 0, "INSERT INTO items (name, qty) VALUES ('apple', 1), ('pear', 2)")
			rp.exec(t, 0, "UPDATE items SET qty = 7 WHERE name = 'plum'")
			rp.waitConverged(t, 30*time.Second, "shop.items")
			after := binlogPos(rp.dbs[1])
			if moved := after != before; moved != logApplied {
				t.Errorf("beta's binlog went from %q to %q while it only applied alpha's transactions; with log_applied = %t it should move: %t", before, after, logApplied, logApplied)
			}
			if n := count(t, rp.dbs[1], "SELECT COUNT(*) FROM tandem.applied WHERE origin = 'alpha'"); n < 1 {
				t.Errorf("beta has no marker rows for alpha's transactions")
			}
			if sent := statusCLI(t, rp.nodes[1]).Rows.SentTxns; sent != sentBefore {
				t.Errorf("beta sent %d transactions while only applying alpha's: an echo", sent-sentBefore)
			}
			// beta's own writes still reach alpha.
			rp.exec(t, 1, "DELETE FROM items WHERE name = 'pear'")
			rp.waitConverged(t, 30*time.Second, "shop.items")
			if n := count(t, rp.dbs[0], "SELECT COUNT(*) FROM items"); n != 2 {
				t.Errorf("alpha has %d items, want 2", n)
			}
		})
	}
}
