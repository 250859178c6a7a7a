package binlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	osexec "os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/internal/mysqltest"
)

// BenchmarkTail measures what the sending node spends per transaction on
// a catch-up: a real MariaDB server's binlog holding b.N transactions like
// sysbench oltp_write_only's (update k, update c, delete and insert a row
// of 4 tables of 10k rows) is tailed from before the first one, and each
// Txn is observed for the "newer" rule and wire-encoded, as the Engine's
// sender does. Both figures are per transaction: ns/op is the wall clock,
// cpu-ns/op the CPU this process used (the daemon's share; the server's
// dump thread is not in it).
func BenchmarkTail(b *testing.B) {
	srv := mysqltest.Start(b, mysqltest.Options{ServerID: 21})
	srv.Exec("CREATE DATABASE sbtest")
	for i := 1; i <= 4; i++ {
		srv.Exec(fmt.Sprintf("CREATE TABLE sbtest.sbtest%d (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k))", i),
			fmt.Sprintf("INSERT INTO sbtest.sbtest%d SELECT seq, seq, REPEAT('c', 120), REPEAT('p', 60) FROM sbtest.seq_1_to_10000", i))
	}
	var from string
	if err := srv.DB("").QueryRow("SELECT @@gtid_binlog_pos").Scan(&from); err != nil {
		b.Fatal(err)
	}
	// The backlog, written by the mariadb client: this process's CPU is
	// then the tailing only, in -cpuprofile too.
	rng := rand.New(rand.NewPCG(5, 6))
	var q strings.Builder
	for range b.N {
		t := func() int { return 1 + rng.IntN(4) }
		id := func() int { return 1 + rng.IntN(10000) }
		fmt.Fprintf(&q, "BEGIN;UPDATE sbtest%d SET k=k+1 WHERE id=%d;", t(), id())
		fmt.Fprintf(&q, "UPDATE sbtest%d SET c='%0120d' WHERE id=%d;", t(), rng.Int64(), id())
		dt, did := t(), id()
		fmt.Fprintf(&q, "DELETE FROM sbtest%d WHERE id=%d;", dt, did)
		fmt.Fprintf(&q, "INSERT INTO sbtest%d VALUES (%d,%d,'%0120d','%060d');COMMIT;\n", dt, did, id(), rng.Int64(), rng.Int64())
	}
	client := osexec.Command("mariadb", "--socket="+srv.Socket, "-u"+mysqltest.User, "-p"+mysqltest.Password, "sbtest")
	client.Stdin = strings.NewReader(q.String())
	if out, err := client.CombinedOutput(); err != nil {
		b.Fatalf("mariadb client: %v\n%s", err, out)
	}

	tl, err := NewTailer(TailerOptions{DSN: srv.DSN(""), ServerID: 9901, Node: "alpha", Databases: []string{"sbtest"}, Log: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	clock := NewRecentWrites(1 << 18)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	errEnough := errors.New("all read")
	var buf []byte
	got := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	err = tl.Run(ctx, from, func(t *Txn) error {
		clock.Observe(t)
		buf = AppendTxn(buf[:0], t)
		if len(t.Rows) != 4 {
			return fmt.Errorf("transaction %s has %d rows, want 4", t.GTID, len(t.Rows))
		}
		if got++; got == b.N {
			return errEnough
		}
		return nil
	})
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if !errors.Is(err, errEnough) {
		b.Fatalf("tail ended after %d of %d transactions: %v", got, b.N, err)
	}
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
