package binlog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/internal/mysqltest"
)

// testTailedPair writes rows of every type on alpha with SQL; the Tailer
// reads them back, the Applier applies them on beta, and beta's own
// Tailer must then see nothing of them.
func testTailedPair(t *testing.T, alpha, beta *mysqltest.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A first write on each server gives a position to tail from.
	alpha.Exec("CREATE DATABASE IF NOT EXISTS warm")
	beta.Exec("CREATE DATABASE IF NOT EXISTS warm")
	tail := func(s *mysqltest.Server, node string, id uint32) <-chan *Txn {
		tl, err := NewTailer(TailerOptions{DSN: s.DSN(""), ServerID: id, Node: node, Log: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		from := testQueryString(t, s.DB(""), "SELECT @@gtid_binlog_pos")
		out := make(chan *Txn, 100)
		done := make(chan struct{})
		t.Cleanup(func() { cancel(); <-done })
		go func() {
			defer close(done)
			tl.Run(ctx, from, func(tx *Txn) error {
				select {
				case out <- tx:
				case <-ctx.Done():
				}
				return nil
			})
		}()
		return out
	}
	take := func(ch <-chan *Txn, n int) []*Txn {
		t.Helper()
		var txns []*Txn
		deadline := time.After(30 * time.Second)
		for len(txns) < n {
			select {
			case tx := <-ch:
				txns = append(txns, tx)
			case <-deadline:
				t.Fatalf("tailed %d transactions in 30 s, want %d", len(txns), n)
			}
		}
		return txns
	}
	// alpha's tailer names itself differently from the other tests' alpha,
	// whose made-up seqs it would otherwise continue.
	fromAlpha, fromBeta := tail(alpha, "alpha-tailed", 101), tail(beta, "beta", 102)

	var sqls []string
	for _, r := range everyRows {
		sqls = append(sqls, r.sql)
	}
	conn, err := alpha.DB("").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"CREATE DATABASE tailed",
		fmt.Sprintf(everyDDL, "tailed"),
		"SET time_zone = '+05:00'",
		"INSERT INTO tailed.every VALUES " + strings.Join(sqls, ","),
		"UPDATE tailed.every SET ti=0, si=0, mi=0, bi=0, ub=0, fl=3.4028234663852886e38, db=1.7976931348623157e308, de=0.000000000000000000000000000001, vc='', lt='', tx='', ch='', bn='', bl='', bf=X'00000000', d='0000-00-00', dt='0000-00-00 00:00:00', ts='1970-01-01 05:00:01', tm='00:00:00', yr=0, en='a', st='', js='[]', bt=0 WHERE id = 1",
		"UPDATE tailed.every SET id = 4 WHERE id = 3",
		"DELETE FROM tailed.every WHERE id = 2",
		"ALTER TABLE tailed.every ADD COLUMN extra INT NOT NULL DEFAULT 5",
		"UPDATE tailed.every SET extra = 6 WHERE id = 4",
		"CREATE TABLE tailed.gen (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL, s INT AS (a + 1) STORED)",
		"INSERT INTO tailed.gen (id, a) VALUES (1, 10), (2, 20)",
		"UPDATE tailed.gen SET a = 11 WHERE id = 1",
		"DELETE FROM tailed.gen WHERE id = 2",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	txns := take(fromAlpha, 12) // the SET is not a transaction
	a, logs := testApplier(t, beta, "beta", ApplierOptions{})
	if err := a.Apply(ctx, txns); err != nil {
		t.Fatal(err)
	}
	sa, err := alpha.Checksum("tailed.every")
	if err != nil {
		t.Fatal(err)
	}
	if sb, err := beta.Checksum("tailed.every"); err != nil || sa != sb {
		t.Errorf("CHECKSUM TABLE tailed.every: alpha %d, beta %d %v", sa, sb, err)
	}
	sa, err = alpha.Checksum("tailed.gen")
	if err != nil {
		t.Fatal(err)
	}
	if sb, err := beta.Checksum("tailed.gen"); err != nil || sa != sb {
		t.Errorf("CHECKSUM TABLE tailed.gen: alpha %d, beta %d %v", sa, sb, err)
	}
	if n := a.slowApplied.Load(); n != 0 {
		t.Errorf("%d tailed transactions took the slow path: a before image did not match", n)
	}
	if es := testConflicts(t, logs); len(es) != 0 {
		t.Errorf("conflicts logged: %+v", es[0].Row)
	}
	// No echo: the first thing beta's tailer reports is a local write made
	// after everything was applied.
	beta.Exec("CREATE DATABASE sentinel")
	if got := take(fromBeta, 1)[0]; got.DDL == nil || !strings.Contains(got.DDL.Statement, "sentinel") {
		t.Errorf("beta's tailer reported %+v first, want the sentinel: an applied transaction echoed", got)
	}
}
