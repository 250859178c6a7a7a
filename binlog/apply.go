package binlog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/tandemhost/tandem/conflict"
)

// ApplierOptions configure an Applier.
type ApplierOptions struct {
	// DSN reaches the local server (go-sql-driver/mysql form, as in
	// Config.DSN). The applier opens its own pool from it, with
	// multi-statements and found-rows counting turned on.
	DSN string
	// Node is this node's name.
	Node string
	// Rule is the row conflict rule, ConflictNewer (default) or
	// ConflictPrimary.
	Rule string
	// Primary returns the name of the current primary, for the "primary"
	// rule. It may be nil, or return "" when no primary is known: then the
	// "newer" rule decides.
	Primary func() string
	// LocalClock tells when this node last wrote a row, for the "newer"
	// rule (see RecentWrites). Nil: never known, see rowIncomingWins.
	LocalClock LocalClock
	// Conflicts receives every row conflict. Nil only in tests: conflicts
	// are then only logged.
	Conflicts *conflict.Log
	Log       *zap.Logger
	// Workers is how many connections apply non-overlapping rows at once
	// (default 4, 1 applies strictly in order).
	Workers int
	// BatchTxns is the most source transactions committed in one local
	// transaction (default 1024).
	BatchTxns int
	// Databases are the replicated schemas ([mysql] databases); empty:
	// all but the system ones. A transaction touching any other schema is
	// refused (see acceptTxn).
	Databases []string
	// SkipBinlog keeps applied transactions out of the local binlog
	// altogether (sql_log_bin=0; the user then needs SUPER, or BINLOG
	// ADMIN on MariaDB). Catch-up is about a fifth faster (measured on
	// MariaDB 10.11), and no tailer can ever see an applied change; but the
	// local binlog then lacks the peer's changes, so neither a binlog
	// replay nor a native replica of this server has them. Off by default:
	// the marker row and skip_replication keep them from echoing.
	SkipBinlog bool
}

// Applier applies a peer's transactions to the local server exactly once.
//
// # The marker table
//
// Every local transaction the Applier commits first inserts one row into
// tandem.applied, for the last source transaction it carries:
//
//	origin, seq      the source transaction (primary key)
//	prev             the seq of the transaction before it in the origin's
//	                 stream, or 0 for the first one the applier ever saw
//	gtid, origin_time, applied_at
//	ddl_pending      0 done, 1 a DDL that may or may not be in (ddl.go),
//	                 2 done, and the others this local transaction carries
//	                 are listed in tandem.applied_batches under the same
//	                 origin and seq (seq, prev and GTID of each: marker.go)
//
// Every source transaction is recorded, not one "highest seq" per origin,
// because batches are committed by several connections at once: after a
// crash, seq 10 may be committed while seq 8 is not. A single "highest
// seq" would then skip 8 for ever. Each one's fate is recorded atomically
// with its rows, and the checkpoint (Applied) is the end of the unbroken
// chain of prev links from the anchor (the newest entry with prev 0):
// every transaction up to it is in. Entries past a break are still
// honoured: when the stream is sent again from the checkpoint, a
// transaction already recorded is skipped. After enough transactions the
// rows below the checkpoint are deleted and the checkpoint gets a row with
// prev 0, the new anchor, so the tables stay small.
//
// One row (and one list) per local transaction rather than a row per
// source transaction: a catch-up batch of 64 inserts 2 rows, not 64, and
// a prune deletes as few (BenchmarkApply/sysbench, A/B 4 runs each:
// 9,300-13,700 -> 12,700-14,900 tx/s, the server's CPU 94-126 -> 73-106
// µs per transaction). The 2 in ddl_pending makes a tandem older than the
// lists fail to read the checkpoint (it reads the column as a boolean)
// instead of misreading it.
//
// This needs the caller to hand Apply each origin's transactions in stream
// order, continuing from Applied() without leaving any out: the Engine does.
//
// # Speed
//
// When several transactions are given at once (the stream is behind), up
// to BatchTxns of them go in one local transaction, sent as one
// multi-statement (marker rows, then the row changes, regrouped into
// multi-row INSERT, UPDATE and DELETE statements where no row's order
// changes: see applyPlan) and committed: on MariaDB all of it is one
// compound statement that commits too (see batchSQL), elsewhere the
// COMMIT takes a second round trip. The next batch's SQL is built
// meanwhile. Successive changes of one row in a batch are folded into one
// (see applyNet): with sysbench's hot rows, and its delete and reinsert of
// a row in every transaction, that leaves about a quarter of a catch-up's
// row changes at 1,024 transactions a batch. Each UPDATE and DELETE
// carries the whole before image in its WHERE, so a batch whose every
// statement found as many rows as it has met no conflict; otherwise it is
// retried in smaller batches and, at the smallest, rolled back and its
// transactions applied one by one through the checked path (SELECT ...
// FOR UPDATE, compare, decide: conflict.go; see runWorker). Transactions
// that share no row (schema, table, key; a table without a key counts as
// one row) are spread over Workers connections; those that share one stay
// on one connection in stream order. DDL is a barrier. If a parallel
// worker fails (a foreign key whose parent row is on another worker, say),
// the rest is applied in stream order on one connection.
//
// sysbench's default row choice links nearly every transaction of a
// catch-up to every other through a few hot rows, so one connection does
// nearly all of it. Spreading such transactions over the workers by
// dependency levels (each waiting only for what it depends on) was tried:
// on two cores it cost the server about 60% more CPU per transaction (far
// smaller batches, InnoDB on hot rows from several connections) and lost
// end to end (docs/benchmarks.md, session 7).
//
// # Limits
//
// Tables without a primary key are matched by their whole before image
// (LIMIT 1); a conflict on such a table cannot always end with both nodes
// identical (there is no row to replace: the winner's image is added).
// Secondary unique keys are not part of the partition or the conflict
// check: a clash on one fails the apply with the server's error, as does
// an update that moves a row onto a key another row holds here. Triggers
// on the target fire for applied rows (unlike native row replication),
// for a batch's folded change of a row once. Tables that are the parent of
// a foreign key are never folded (a delete would cascade), as far as
// information_schema shows this user the keys: a child table in a schema
// it has no privilege on is not seen. Generated columns are left out of
// the statements (the server computes them). Which columns are generated
// and which tables are parents is read from information_schema once per
// table and again after any DDL.
type Applier struct {
	o       ApplierOptions
	db      *sql.DB
	log     *zap.Logger
	mysql   bool   // the server is MySQL, not MariaDB
	session string // the SET statement every connection runs first

	mu      sync.Mutex // serialises Apply and Applied; guards origins, generated and the prune
	origins map[string]*applyOrigin
	// pruning, when not nil, is closed when the marker prune the last
	// Apply started in the background has ended; pruneErr is then its
	// error. See pruneStart.
	pruning  chan struct{}
	pruneErr error
	prunes   sync.WaitGroup // the background prunes, for Close
	// generated caches each table's generated columns (by
	// rowKeyAppendTable's key, to names), which are left out of the
	// statements; cleared by DDL.
	generated map[string]map[string]bool
	// foldable caches whether each table's changes may be folded in a
	// batch (by the same key; see applyNet); cleared by DDL. run fills
	// it for a segment's tables before the workers start, which only read
	// it.
	foldable map[string]bool

	// slowApplied counts transactions applied row by row (a conflict or
	// an error in their batch); tests read it.
	slowApplied atomic.Int64
	// folded counts the row changes batches folded into others
	// (applyNet); tests read it.
	folded atomic.Int64
	// fallbacks counts parallel runs that failed and were finished in
	// order; tests read it.
	fallbacks atomic.Int64
	// clientCounts: the client checks the row statements' counts, as on
	// MySQL, on MariaDB too; tests set it (see batchSQL).
	clientCounts bool
}

// applyOrigin is what the applier knows of one origin's stream.
type applyOrigin struct {
	last       uint64 // the stream is applied up to here (all of it, or in this call)
	lastGTID   string
	ahead      map[uint64]bool // applied past last (left by a crash): skip
	pendingDDL map[uint64]bool // DDL whose marker says "running": may or may not be in
	sincePrune int
}

// applyItem is one source transaction to apply.
type applyItem struct {
	t       *Txn
	prev    uint64
	pending bool // a DDL found pending (see ddl.go)
	done    bool
	keys    [][2]string // of each row of t, see applyRowKeys; filled by rowKeys
}

// rowKeys returns the identities each row of the item's transaction
// touches, computed once for the partition and the batches' plans. They
// are cut from one string: a catch-up computes them for every row, and a
// string each showed in its profiles.
func (it *applyItem) rowKeys() [][2]string {
	if it.keys != nil {
		return it.keys
	}
	rows := it.t.Rows
	// Where each row's keys end in buf: its first ends at mid, its
	// second at end (it starts where the row before ended).
	type bounds struct{ mid, end int }
	var bufSmall [1024]byte
	var boundsSmall [16]bounds
	buf, bs := bufSmall[:0], boundsSmall[:0]
	for i := range rows {
		var mid int
		buf, mid = applyAppendRowKeys(buf, &rows[i])
		bs = append(bs, bounds{mid, len(buf)})
	}
	all := string(buf)
	it.keys = make([][2]string, len(rows))
	start := 0
	for i, b := range bs {
		it.keys[i] = [2]string{all[start:b.mid], all[b.mid:b.end]}
		start = b.end
	}
	return it.keys
}

// applyRowKeys returns the identities of the rows a change touches: its
// table's for a table without a key (it may be any row); else the key of
// its before image and that of its after image, "" for an image its op
// lacks and for an after image whose key is the before image's.
func applyRowKeys(r *Row) (k [2]string) {
	b, mid := applyAppendRowKeys(nil, r)
	s := string(b)
	return [2]string{s[:mid], s[mid:]}
}

// applyAppendRowKeys appends the identities applyRowKeys returns to b
// (each as rowKey and rowTableKey make it), one after the other: the first
// is b[len(b):mid] of the result, the second the rest.
func applyAppendRowKeys(b []byte, r *Row) (_ []byte, mid int) {
	if len(r.Key) == 0 {
		b = append(rowKeyAppendTable(b, r.Schema, r.Table), '*')
		return b, len(b)
	}
	start := len(b)
	if r.Before != nil {
		b = applyAppendKey(b, r, r.Before)
	}
	mid = len(b)
	if r.After != nil {
		b = applyAppendKey(b, r, r.After)
		if string(b[mid:]) == string(b[start:mid]) {
			b = b[:mid]
		}
	}
	return b, mid
}

// applyAppendKey appends the identity of the row img of r's table (one
// with a key): its schema, table and key values.
func applyAppendKey(b []byte, r *Row, img []Value) []byte {
	b = rowKeyAppendTable(b, r.Schema, r.Table)
	for _, k := range r.Key {
		b = rowKeyAppendValue(b, img[k])
	}
	return b
}

const (
	applyDefaultWorkers   = 4
	applyDefaultBatchTxns = 1024
	// applyFirstBatch is the most transactions a worker's first batch
	// takes (see runWorker), applyMinBatch the fewest a failed batch is
	// retried in before they go one by one.
	applyFirstBatch = 64
	applyMinBatch   = 16
	// applyBatchBytes bounds the SQL of one batch, well under the default
	// max_allowed_packet (16 MiB on MariaDB, 64 MiB on MySQL 8).
	applyBatchBytes = 4 << 20
	// applyPruneEvery is how many applied transactions leave marker rows
	// before they are pruned. The prune runs beside the next Apply call
	// (pruneStart), but that call's successor waits for it: small and
	// often keeps that wait short, where 2000 rows at once took 20-60 ms
	// on a busy 2-core machine (cmd/tandem BenchmarkRows with
	// -rows.slowlog).
	applyPruneEvery = 256
	// applySQLMode is strict (no silent truncation) but accepts what a lax
	// source may have stored (zero dates), and takes 0 in an
	// AUTO_INCREMENT column as 0.
	applySQLMode = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
)

// NewApplier connects to the local server and creates the marker table
// when it is missing.
func NewApplier(ctx context.Context, o ApplierOptions) (*Applier, error) {
	if o.Node == "" {
		return nil, errors.New("applier: no node name")
	}
	switch o.Rule {
	case "":
		o.Rule = ConflictNewer
	case ConflictNewer, ConflictPrimary:
	default:
		return nil, fmt.Errorf("applier: conflict rule %q: want %q or %q", o.Rule, ConflictNewer, ConflictPrimary)
	}
	if o.Workers <= 0 {
		o.Workers = applyDefaultWorkers
	}
	if o.BatchTxns <= 0 {
		o.BatchTxns = applyDefaultBatchTxns
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	cfg, err := mysql.ParseDSN(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("applier: dsn: %w", err)
	}
	cfg.MultiStatements = true
	cfg.ClientFoundRows = true
	cfg.ParseTime = false
	cfg.InterpolateParams = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("applier: dsn: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(o.Workers + 2)
	a := &Applier{o: o, db: db, log: o.Log.Named("applier"), origins: map[string]*applyOrigin{}, generated: map[string]map[string]bool{}, foldable: map[string]bool{}}
	if err := a.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("applier: %w", err)
	}
	return a, nil
}

func (a *Applier) init(ctx context.Context) error {
	var version string
	if err := a.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return fmt.Errorf("reach the server: %w", err)
	}
	a.mysql = !strings.Contains(strings.ToLower(version), "mariadb")
	set := "SET SESSION time_zone='+00:00', sql_mode='" + applySQLMode + "'"
	if !a.mysql {
		// The marker row keeps the peer's tailer from sending our applied
		// transactions back; skip_replication keeps them from any native
		// replica of this server too.
		set += ", skip_replication=1"
	}
	if a.o.SkipBinlog {
		set += ", sql_log_bin=0"
	}
	a.session = set
	q := a.session + ";" +
		"CREATE DATABASE " + DDLMarker + " IF NOT EXISTS `" + MarkerSchema + "`;" +
		"CREATE TABLE " + DDLMarker + " IF NOT EXISTS `" + MarkerSchema + "`.`" + MarkerTable + "` (" +
		"origin VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL," +
		"seq BIGINT UNSIGNED NOT NULL," +
		"prev BIGINT UNSIGNED NOT NULL," +
		"gtid VARCHAR(255) CHARACTER SET ascii NOT NULL," +
		"origin_time DATETIME(6) NULL," +
		"applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)," +
		"ddl_pending TINYINT NOT NULL DEFAULT 0," +
		"PRIMARY KEY (origin, seq)) ENGINE=InnoDB;" +
		"CREATE TABLE " + DDLMarker + " IF NOT EXISTS `" + MarkerSchema + "`.`" + MarkerBatchTable + "` (" +
		"origin VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL," +
		"seq BIGINT UNSIGNED NOT NULL," +
		// A BLOB holds 64 KiB; a long batch of long GTIDs may need more.
		"txns MEDIUMBLOB NOT NULL," +
		"PRIMARY KEY (origin, seq)) ENGINE=InnoDB"
	if _, err := a.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("create %s.%s and %s.%s (the user needs CREATE on %s.*): %w", MarkerSchema, MarkerTable, MarkerSchema, MarkerBatchTable, MarkerSchema, err)
	}
	return nil
}

// Close waits for a marker prune still running, then closes the
// applier's connections. A prune cut short is done again later.
func (a *Applier) Close() error {
	a.prunes.Wait()
	return a.db.Close()
}

// Applied returns the checkpoint for origin: the seq and GTID of the last
// transaction up to which the origin's whole stream is applied; 0 and ""
// when nothing is. The origin's stream resumes right after it.
func (a *Applier) Applied(ctx context.Context, origin string) (seq uint64, gtid string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.pruneWait(); err != nil {
		return 0, "", err
	}
	st, err := a.load(ctx, origin)
	if err != nil {
		return 0, "", err
	}
	return st.last, st.lastGTID, nil
}

// load reads origin's marker rows and sets up its state.
func (a *Applier) load(ctx context.Context, origin string) (*applyOrigin, error) {
	marks, err := a.marks(ctx, origin, 0, math.MaxInt64)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint of %s: %w", origin, err)
	}
	st := &applyOrigin{ahead: map[uint64]bool{}, pendingDDL: map[uint64]bool{}}
	anchor := -1
	for i, m := range marks {
		if m.prev == 0 && !m.pending {
			anchor = i
		}
	}
	next := 0
	if anchor >= 0 {
		st.last, st.lastGTID = marks[anchor].seq, marks[anchor].gtid
		for next = anchor + 1; next < len(marks); next++ {
			m := marks[next]
			if m.pending || m.prev != st.last {
				break
			}
			st.last, st.lastGTID = m.seq, m.gtid
		}
	}
	for _, m := range marks {
		switch {
		case m.seq <= st.last:
		case m.pending:
			st.pendingDDL[m.seq] = true
		default:
			st.ahead[m.seq] = true
		}
	}
	st.sincePrune = len(marks)
	a.origins[origin] = st
	return st, nil
}

// Apply applies txns (in stream order; several origins may follow each
// other) to the local server. Transactions already applied are skipped.
// Each is applied atomically with its marker row; when several are given,
// they are grouped into fewer local transactions and applied by several
// connections where their rows do not overlap. DDL waits for everything
// before it and holds back everything after it.
//
// Every transaction is checked before anything is written: a malformed one
// fails the call and nothing of the call is applied. On any other error
// part of the call may be applied; calling again with the same
// transactions (or resuming from Applied) applies the rest, exactly once.
func (a *Applier) Apply(ctx context.Context, txns []*Txn) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.pruneWait(); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if err := a.checkTxns(txns); err != nil {
		return err
	}
	for start := 0; start < len(txns); {
		origin := txns[start].Origin
		end := start + 1
		for end < len(txns) && txns[end].Origin == origin {
			end++
		}
		if err := a.applyStream(ctx, origin, txns[start:end]); err != nil {
			delete(a.origins, origin) // reload from the marker rows next time
			return err
		}
		start = end
	}
	return nil
}

// checkTxns rejects malformed input before anything is written.
func (a *Applier) checkTxns(txns []*Txn) error {
	last := map[string]uint64{}
	for i, t := range txns {
		if t == nil {
			return fmt.Errorf("apply: transaction %d is nil", i)
		}
		if err := a.checkTxn(t); err != nil {
			return fmt.Errorf("apply: transaction %s from %s: %w", t.GTID, t.Origin, err)
		}
		if l, ok := last[t.Origin]; ok && t.Seq <= l {
			return fmt.Errorf("apply: transaction %s from %s: seq %d after %d: out of order", t.GTID, t.Origin, t.Seq, l)
		}
		last[t.Origin] = t.Seq
	}
	return nil
}

func (a *Applier) checkTxn(t *Txn) error {
	switch {
	case t.Origin == "":
		return errors.New("no origin")
	case t.Origin == a.o.Node:
		return fmt.Errorf("it comes from this node (%s): an echo", a.o.Node)
	case t.Seq == 0:
		return errors.New("seq 0")
	case len(t.GTID) > 255:
		return errors.New("gtid over 255 bytes")
	case t.DDL != nil && slices.ContainsFunc(t.Rows, func(r Row) bool { return r.Op != Insert }):
		return errors.New("DDL with rows other than inserts (only CREATE TABLE ... SELECT has rows)")
	case t.DDL != nil && strings.TrimSpace(t.DDL.Statement) == "":
		return errors.New("empty DDL statement")
	}
	for i := range t.Rows {
		if err := applyCheckRow(&t.Rows[i]); err != nil {
			return fmt.Errorf("row %d (%s.%s): %w", i, t.Rows[i].Schema, t.Rows[i].Table, err)
		}
	}
	return acceptTxn(t, a.o.Databases)
}

func (a *Applier) applyStream(ctx context.Context, origin string, txns []*Txn) error {
	st := a.origins[origin]
	if st == nil {
		var err error
		if st, err = a.load(ctx, origin); err != nil {
			return err
		}
	}
	items := make([]*applyItem, 0, len(txns))
	// The items themselves, one allocation for all (never grown, so the
	// pointers stay valid).
	store := make([]applyItem, 0, len(txns))
	cur, curGTID := st.last, st.lastGTID
	for _, t := range txns {
		if t.Seq <= cur {
			continue // applied before
		}
		if st.ahead[t.Seq] {
			cur, curGTID = t.Seq, t.GTID // applied before a crash, its prev recorded then
			continue
		}
		store = append(store, applyItem{t: t, prev: cur, pending: st.pendingDDL[t.Seq]})
		items = append(items, &store[len(store)-1])
		cur, curGTID = t.Seq, t.GTID
	}
	if err := a.run(ctx, origin, items); err != nil {
		return err
	}
	for s := range st.ahead {
		if s <= cur {
			delete(st.ahead, s)
		}
	}
	for s := range st.pendingDDL {
		if s <= cur {
			delete(st.pendingDDL, s)
		}
	}
	st.last, st.lastGTID = cur, curGTID
	st.sincePrune += len(items)
	if st.sincePrune >= applyPruneEvery && len(st.ahead) == 0 && len(st.pendingDDL) == 0 {
		if err := a.pruneStart(ctx, origin, st.last, st.lastGTID); err != nil {
			return err
		}
		st.sincePrune = 0
	}
	return nil
}

// run applies items: row transactions in parallel segments, DDL between
// them one at a time.
func (a *Applier) run(ctx context.Context, origin string, items []*applyItem) error {
	var seg []*applyItem
	flush := func() error {
		if len(seg) == 0 {
			return nil
		}
		for _, it := range seg {
			t, err := a.withoutGenerated(ctx, it.t)
			if err != nil {
				return err
			}
			it.t = t
			for i := range t.Rows {
				if err := a.loadFoldable(ctx, t.Rows[i].Schema, t.Rows[i].Table); err != nil {
					return err
				}
			}
		}
		err := a.runRows(ctx, origin, seg)
		seg = nil
		return err
	}
	for _, it := range items {
		if it.t.DDL == nil {
			seg = append(seg, it)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		err := a.applyDDL(ctx, it)
		clear(a.generated) // the DDL may have changed any table
		clear(a.foldable)
		if err != nil {
			return err
		}
	}
	return flush()
}

// errApplyStopped ends a worker when another one failed.
var errApplyStopped = errors.New("stopped")

// runRows applies row transactions, in parallel where they do not
// overlap. If a worker fails, the others stop after their current batch
// and whatever is left is applied by one connection in stream order: the
// parallel plan is only a speed-up, in-order apply is the reference.
func (a *Applier) runRows(ctx context.Context, origin string, items []*applyItem) error {
	parts := applyPartition(items, a.o.Workers)
	if len(parts) == 1 {
		return a.runWorker(ctx, parts[0], nil)
	}
	var stop atomic.Bool
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = a.runWorker(ctx, p, &stop); errs[i] != nil {
				stop.Store(true)
			}
		}()
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		if err != nil && !errors.Is(err, errApplyStopped) {
			first = err
			break
		}
	}
	if first == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.log.Warn("parallel apply failed; applying the rest in order", zap.String("origin", origin), zap.Error(first))
	a.fallbacks.Add(1)
	// A worker's COMMIT may have failed without telling whether it took
	// effect: ask the marker rows.
	if err := a.refreshDone(ctx, origin, items); err != nil {
		return err
	}
	var rest []*applyItem
	for _, it := range items {
		if !it.done {
			rest = append(rest, it)
		}
	}
	return a.runWorker(ctx, rest, nil)
}

// marks reads origin's marker rows with seq in [lo, hi] and the batch
// lists of those that have one, and returns every source transaction they
// record, sorted by seq, without duplicates (markerChain).
func (a *Applier) marks(ctx context.Context, origin string, lo, hi uint64) ([]markerEntry, error) {
	rows, err := a.db.QueryContext(ctx, "SELECT seq, prev, gtid, ddl_pending FROM `"+MarkerSchema+"`.`"+MarkerTable+"` WHERE origin = ? AND seq BETWEEN ? AND ? ORDER BY seq", origin, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []markerEntry
	batches := map[uint64]bool{} // the seqs of rows with a list
	for rows.Next() {
		var m markerEntry
		var state int
		if err := rows.Scan(&m.seq, &m.prev, &m.gtid, &state); err != nil {
			return nil, err
		}
		switch state {
		case markerDone:
		case markerPending:
			m.pending = true
		case markerBatch:
			batches[m.seq] = true
		default:
			return nil, fmt.Errorf("marker row %d: ddl_pending %d (written by a newer tandem?)", m.seq, state)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(batches) > 0 {
		brows, err := a.db.QueryContext(ctx, "SELECT seq, txns FROM `"+MarkerSchema+"`.`"+MarkerBatchTable+"` WHERE origin = ? AND seq BETWEEN ? AND ?", origin, lo, hi)
		if err != nil {
			return nil, err
		}
		defer brows.Close()
		for brows.Next() {
			var seq uint64
			var txns []byte
			if err := brows.Scan(&seq, &txns); err != nil {
				return nil, err
			}
			if !batches[seq] {
				// Its marker row is gone (a prune keeps the lists at or
				// above its checkpoint; a seed drops them all): it
				// records nothing the chain needs.
				continue
			}
			es, err := decodeMarkerBatch(txns)
			if err != nil {
				return nil, fmt.Errorf("%s.%s row %d: %w", MarkerSchema, MarkerBatchTable, seq, err)
			}
			out = append(out, es...)
		}
		if err := brows.Err(); err != nil {
			return nil, err
		}
	}
	return markerChain(out), nil
}

// refreshDone marks the items whose marker row is committed.
func (a *Applier) refreshDone(ctx context.Context, origin string, items []*applyItem) error {
	// A batch's marker row has the batch's last seq, and a batch holds
	// only items of this call: the call's range finds them all.
	lo, hi := items[0].t.Seq, items[len(items)-1].t.Seq
	marks, err := a.marks(ctx, origin, lo, hi)
	if err != nil {
		return fmt.Errorf("read markers of %s: %w", origin, err)
	}
	in := map[uint64]bool{}
	for _, m := range marks {
		if !m.pending {
			in[m.seq] = true
		}
	}
	for _, it := range items {
		it.done = in[it.t.Seq]
	}
	return nil
}

// applyPartition splits items into at most n lists with no row key in
// common between lists, each in stream order. Transactions touching the
// same row (by schema, table and key; a table without a key counts as one
// row) end up in the same list, so their order is kept.
func applyPartition(items []*applyItem, n int) [][]*applyItem {
	if n <= 1 || len(items) < 2 {
		return [][]*applyItem{items}
	}
	parent := make([]int, len(items))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := make(map[string]int, 2*len(items))
	claim := func(i int, key string) {
		if j, ok := owner[key]; ok {
			if ri, rj := find(i), find(j); ri != rj {
				parent[ri] = rj
			}
			return
		}
		owner[key] = i
	}
	for i, it := range items {
		for _, keys := range it.rowKeys() {
			for _, k := range keys {
				if k != "" {
					claim(i, k)
				}
			}
		}
	}
	// The worker of each set, by its root's index; -1: none yet.
	worker := make([]int, len(items))
	for i := range worker {
		worker[i] = -1
	}
	load := make([]int, n)
	parts := make([][]*applyItem, n)
	for i, it := range items {
		root := find(i)
		w := worker[root]
		if w < 0 {
			w = 0
			for k := 1; k < n; k++ {
				if load[k] < load[w] {
					w = k
				}
			}
			worker[root] = w
		}
		load[w] += len(it.t.Rows) + 1
		parts[w] = append(parts[w], it)
	}
	out := parts[:0]
	for _, p := range parts {
		if len(p) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// runWorker applies items in order on one connection, in batches. While
// the server runs one batch, the next one's SQL is built beside it: on a
// catch-up whose transactions all depend on one another (one connection
// does it all), building took about 6% of the time the server then waited.
//
// Batches start small, so that the server starts soon (the first build is
// not overlapped), and grow fourfold after each one applied, up to
// BatchTxns (doubling kept a 2,048-transaction call in small batches
// nearly to its end: BenchmarkApply$/sysbench 24,000-26,400 tx/s, against
// 27,700-30,800 fourfold and 28,900-30,200 without the small start). A
// batch that meets a conflict or an error is rolled back and its
// transactions retried in batches a quarter its size, down to
// applyMinBatch, below which they go one by one through the checked path:
// one conflict among a thousand transactions costs a few small batches,
// not a thousand checked transactions.
func (a *Applier) runWorker(ctx context.Context, items []*applyItem, stop *atomic.Bool) error {
	if len(items) == 0 {
		return nil
	}
	limit := min(applyFirstBatch, a.o.BatchTxns)
	n, q, err := a.batchSQL(items, limit)
	var next chan applyBuilt
	wait := func() applyBuilt {
		b := <-next
		next = nil
		return b
	}
	defer func() {
		// Not left reading items (and filling their rowKeys) after the
		// return: the caller may go on with them.
		if next != nil {
			wait()
		}
	}()
	for {
		if err != nil {
			return err
		}
		if stop != nil && stop.Load() {
			return errApplyStopped
		}
		batch, rest := items[:n], items[n:]
		grown := min(4*limit, a.o.BatchTxns)
		if len(rest) > 0 {
			ch := make(chan applyBuilt, 1)
			next = ch
			go func() {
				n, q, err := a.batchSQL(rest, grown)
				ch <- applyBuilt{n, q, err}
			}()
		}
		ok, err := a.applyFast(ctx, batch, q)
		if err != nil {
			return err
		}
		switch {
		case ok:
			limit = grown
		case n > applyMinBatch:
			// Retry these in smaller batches; what was built for the
			// rest is built again after them.
			if next != nil {
				wait()
			}
			limit = max(n/4, applyMinBatch)
			n, q, err = a.batchSQL(items, limit)
			continue
		default:
			for _, it := range batch {
				if err := a.applySlow(ctx, it); err != nil {
					return err
				}
			}
		}
		if len(rest) == 0 {
			return nil
		}
		items = rest
		b := wait()
		n, q, err = b.n, b.q, b.err
	}
}

// applyBuilt is what batchSQL returned, from another goroutine.
type applyBuilt struct {
	n   int
	q   *applyBatchQuery
	err error
}

// batchSQL builds the fast-path statements for as many of items as fit in
// one batch of at most limit: the marker rows, then every row change with
// a WHERE that matches only an identical target row. It returns how many
// items it took.
func (a *Applier) batchSQL(items []*applyItem, limit int) (int, *applyBatchQuery, error) {
	// size is the measure the batch is cut by; capacity estimates the
	// SQL, for the builder.
	nrows, size, capacity, n := 0, 0, 0, 0
	for n < len(items) && n < limit && (n == 0 || size < applyBatchBytes) {
		t := items[n].t
		capacity += applyMarkerSQLSize + 2*(len(t.Origin)+len(t.GTID))
		for i := range t.Rows {
			r := &t.Rows[i]
			capacity += applyRowSQLSize + 2*(len(r.Schema)+len(r.Table))
			for _, img := range [][]Value{r.Before, r.After} {
				for c, v := range img {
					size += len(v.B)*2 + len(v.S) + 8
					// A value is written once or less (the SET
					// of an UPDATE holds only what changes), as
					// hex or shorter, after its column's name.
					capacity += 2*(len(v.B)+len(v.S)) + len(r.Columns[c].Name) + 16
				}
			}
		}
		nrows += len(t.Rows)
		n++
	}
	rows := make([]*Row, 0, nrows)
	keys := make([][2]string, 0, nrows)
	for _, it := range items[:n] {
		keys = append(keys, it.rowKeys()...)
		for i := range it.t.Rows {
			rows = append(rows, &it.t.Rows[i])
		}
	}
	var b strings.Builder
	// One allocation for the whole batch when the estimate holds (a
	// builder that outgrows it copies everything written so far).
	b.Grow(capacity + len(a.session) + 200)
	b.WriteString(a.session)
	// On MariaDB the statements go in one compound statement that
	// checks each one's count itself (SIGNAL ends it, the transaction
	// still open) and commits: the server then answers the batch with one
	// packet, not one per statement, which cost both sides a send or a
	// read each, and the COMMIT takes no round trip of its own
	// (BenchmarkApply$/sysbench, A/B 3 pairs: 12,700-13,600 ->
	// 15,100-16,100 tx/s, the daemon's CPU 25-28 -> 14-16 µs per
	// transaction, the server's 65-71 -> 56-59; the COMMIT inside then
	// took the daemon from 15-16 to 14-15 µs, the rate within the noise).
	// MySQL has no compound statements outside stored programs: there
	// the client compares the counts and commits.
	compound := !a.mysql && !a.clientCounts
	if compound {
		b.WriteString(";BEGIN NOT ATOMIC START TRANSACTION;")
	} else {
		b.WriteString(";START TRANSACTION;")
	}
	markers := a.markerSQL(&b, items[:n], false)
	before := len(rows)
	rows, keys = applyNet(rows, keys, a.isFoldable)
	a.folded.Add(int64(before - len(rows)))
	groups := applyPlan(rows, keys)
	want := make([]int64, len(groups))
	for i, g := range groups {
		b.WriteByte(';')
		if err := applyGroupSQL(&b, g, a.mysql); err != nil {
			return 0, nil, fmt.Errorf("transaction from %s in %s..%s: %w", items[0].t.Origin, items[0].t.GTID, items[n-1].t.GTID, err)
		}
		want[i] = int64(len(g.rows))
		if compound {
			// ROW_COUNT() is the rows found, as the client's count
			// (the DSN asks for found rows).
			var buf [24]byte
			b.WriteString(";IF ROW_COUNT()<>")
			b.Write(strconv.AppendInt(buf[:0], int64(len(g.rows)), 10))
			b.WriteString(" THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT='" + applyCountMismatch + "'; END IF")
		}
	}
	if compound {
		b.WriteString(";COMMIT;END")
	}
	return n, &applyBatchQuery{sql: b.String(), markers: markers, want: want, compound: compound}, nil
}

// applyMarkerSQLSize is about the most a marker row takes in markerSQL,
// beside the hex of its origin and GTID.
const applyMarkerSQLSize = 100

// applyRowSQLSize is about what a row change takes in a batch's SQL
// beside its values and names: keywords, the key's repetitions in a merged
// statement.
const applyRowSQLSize = 64

// applyCountMismatch is the message of the error a batch's compound
// statement raises when a row statement did not find as many rows as it
// has (see batchSQL).
const applyCountMismatch = "tandem: a row statement found another number of rows"

// applyBatchQuery is a batch's SQL and the rows each of its row statements
// must affect.
type applyBatchQuery struct {
	// compound: after the SET, one BEGIN NOT ATOMIC ... END starts the
	// transaction, checks the counts itself (failing on a mismatch) and
	// commits (MariaDB); else the client checks them and commits.
	compound bool
	sql      string
	markers  int // statements of markerSQL's, each inserting one row
	want     []int64
}

// markerSQL writes the statements that record items in the marker table
// and returns how many it wrote (each inserts one row): one marker row for
// the last item, and when there are more, the others' list in
// MarkerBatchTable under the same seq (see Applier, "The marker table").
// pending marks a DDL's row, which is always alone.
func (a *Applier) markerSQL(b *strings.Builder, items []*applyItem, pending bool) int {
	if pending && len(items) > 1 {
		panic("binlog: a pending DDL marker for more than one transaction")
	}
	state := markerDone
	switch {
	case pending:
		state = markerPending
	case len(items) > 1:
		state = markerBatch
	}
	last := items[len(items)-1]
	a.markerRowSQL(b, last, state)
	if len(items) == 1 {
		return 1
	}
	b.WriteString(";INSERT INTO `" + MarkerSchema + "`.`" + MarkerBatchTable + "` (origin,seq,txns) VALUES (_utf8mb4 ")
	applyHexString(b, last.t.Origin)
	var buf [24]byte
	b.WriteByte(',')
	b.Write(strconv.AppendUint(buf[:0], last.t.Seq, 10))
	b.WriteByte(',')
	applyHex(b, appendMarkerBatch(nil, items[:len(items)-1]))
	b.WriteByte(')')
	return 2
}

// markerRowSQL writes the INSERT of the marker row for it.
func (a *Applier) markerRowSQL(b *strings.Builder, it *applyItem, state int) {
	b.WriteString("INSERT INTO `" + MarkerSchema + "`.`" + MarkerTable + "` (origin,seq,prev,gtid,origin_time,ddl_pending) VALUES (_utf8mb4 ")
	// Numbers and times are formatted into buf, not into strings of
	// their own: this runs for every batch of a catch-up.
	var buf [64]byte
	applyHexString(b, it.t.Origin)
	b.WriteByte(',')
	b.Write(strconv.AppendUint(buf[:0], it.t.Seq, 10))
	b.WriteByte(',')
	b.Write(strconv.AppendUint(buf[:0], it.prev, 10))
	b.WriteString(",_ascii ")
	applyHexString(b, it.t.GTID)
	b.WriteByte(',')
	if it.t.Time.IsZero() {
		b.WriteString("NULL")
	} else {
		b.WriteByte('\'')
		b.Write(it.t.Time.UTC().AppendFormat(buf[:0], "2006-01-02 15:04:05.999999"))
		b.WriteByte('\'')
	}
	b.WriteByte(',')
	b.Write(strconv.AppendInt(buf[:0], int64(state), 10))
	b.WriteByte(')')
}

// applyFast runs a batch as one local transaction whose every row change
// must hit exactly one row. It reports false (having rolled back) when one
// did not, or when the server refused a statement: the batch then goes
// through applySlow, transaction by transaction, which finds the conflict
// or reports the error precisely.
func (a *Applier) applyFast(ctx context.Context, batch []*applyItem, q *applyBatchQuery) (bool, error) {
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	counts, err := applyExec(ctx, conn, q.sql)
	if err != nil {
		a.rollback(conn)
		var me *mysql.MySQLError
		if errors.As(err, &me) && ctx.Err() == nil {
			if me.Message != applyCountMismatch { // a mismatch is a conflict, found row by row
				a.log.Debug("batch refused; applying one by one", zap.Error(err))
			}
			return false, nil
		}
		return false, fmt.Errorf("apply %d transaction(s) from %s: %w", len(batch), batch[0].t.GTID, err)
	}
	if q.compound {
		// SET, then the compound statement, which checked the counts
		// and committed.
		if len(counts) != 2 {
			return false, fmt.Errorf("apply %d transaction(s) from %s: %d results for 2 statements", len(batch), batch[0].t.GTID, len(counts))
		}
		for _, it := range batch {
			it.done = true
		}
		return true, nil
	}
	// SET, START TRANSACTION, the marker statements and the row changes.
	ok := len(counts) == 2+q.markers+len(q.want)
	for i := 0; ok && i < q.markers; i++ {
		ok = counts[2+i] == 1
	}
	for i := 0; ok && i < len(q.want); i++ {
		ok = counts[2+q.markers+i] == q.want[i]
	}
	if !ok {
		if err := a.rollback(conn); err != nil {
			return false, err
		}
		return false, nil
	}
	if _, err := applyExec(ctx, conn, "COMMIT"); err != nil {
		a.rollback(conn)
		return false, fmt.Errorf("commit %d transaction(s) from %s: %w", len(batch), batch[0].t.GTID, err)
	}
	for _, it := range batch {
		it.done = true
	}
	return true, nil
}

// rollback ends conn's transaction; a connection that cannot is dropped
// from the pool, so no later user finds a transaction open.
func (a *Applier) rollback(conn *sql.Conn) error {
	// Not the caller's context: it may be what ended the transaction.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := applyExec(ctx, conn, "ROLLBACK"); err != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// applyExec runs q (one or more statements) and returns the rows each
// statement affected (matched, for UPDATE: the DSN asks for found rows).
func applyExec(ctx context.Context, conn *sql.Conn, q string) ([]int64, error) {
	var counts []int64
	err := conn.Raw(func(dc any) error {
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			return errors.New("the mysql driver cannot execute statements directly")
		}
		res, err := ex.ExecContext(ctx, q, nil)
		if err != nil {
			return err
		}
		if r, ok := res.(mysql.Result); ok {
			counts = r.AllRowsAffected()
		}
		return nil
	})
	return counts, err
}

// pruneStart starts pruning origin's marker rows below upTo in the
// background (after waiting for the prune before, if one runs), so that
// the next Apply call does not wait for it: in the stream, with the
// server's binlog write of every deleted row, it stalled the catch-up
// every 512 transactions. It runs on its own connection, beside the next
// call's workers, which write only marker rows above upTo (and take no
// lock the prune's range takes), and is done before anything else reads
// or rewrites the marker rows: Apply, Applied and FinishLoad wait for it
// first (pruneWait), and return its error. Called with mu held.
func (a *Applier) pruneStart(ctx context.Context, origin string, upTo uint64, gtid string) error {
	if err := a.pruneWait(); err != nil {
		return err
	}
	done := make(chan struct{})
	a.pruning = done
	// Not ended by the end of the call (or of the stream): a prune cut
	// short is only work to do again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	a.prunes.Go(func() {
		defer close(done)
		defer cancel()
		a.pruneErr = a.prune(ctx, origin, upTo, gtid)
	})
	return nil
}

// pruneWait waits for the background prune, if one was started, and
// returns its error. Called with mu held.
func (a *Applier) pruneWait() error {
	if a.pruning == nil {
		return nil
	}
	<-a.pruning
	err := a.pruneErr
	a.pruning, a.pruneErr = nil, nil
	return err
}

// prune deletes origin's marker rows (and batch lists) below the
// checkpoint upTo, whose row becomes the chain's anchor: upTo's own marker
// row when it has one, else (upTo is in a batch list, under a later seq) a
// new row written for it.
func (a *Applier) prune(ctx context.Context, origin string, upTo uint64, gtid string) error {
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("prune markers: connect: %w", err)
	}
	defer conn.Close()
	var b strings.Builder
	// READ COMMITTED: the DELETEs lock the rows they delete, not the gaps
	// above them, where the next call's workers insert meanwhile (a list
	// at seq upTo need not exist, so the gap above the last one below
	// would otherwise be locked).
	b.WriteString(a.session + ";SET TRANSACTION ISOLATION LEVEL READ COMMITTED;START TRANSACTION;")
	tbl := "`" + MarkerSchema + "`.`" + MarkerTable + "`"
	o := "_utf8mb4 X'" + fmt.Sprintf("%x", origin) + "'"
	s := strconv.FormatUint(upTo, 10)
	b.WriteString("INSERT INTO " + tbl + " (origin,seq,prev,gtid,ddl_pending) VALUES (" + o + "," + s + ",0,_ascii X'" + fmt.Sprintf("%x", gtid) + "',0) ON DUPLICATE KEY UPDATE prev = 0;")
	b.WriteString("DELETE FROM " + tbl + " WHERE origin = " + o + " AND seq < " + s + ";")
	b.WriteString("DELETE FROM `" + MarkerSchema + "`.`" + MarkerBatchTable + "` WHERE origin = " + o + " AND seq < " + s)
	if _, err := applyExec(ctx, conn, b.String()); err != nil {
		a.rollback(conn)
		return fmt.Errorf("prune markers of %s: %w", origin, err)
	}
	if _, err := applyExec(ctx, conn, "COMMIT"); err != nil {
		a.rollback(conn)
		return fmt.Errorf("prune markers of %s: %w", origin, err)
	}
	return nil
}

// applySlow applies one source transaction in one local transaction, row
// by row: each target row is locked and compared with the incoming image,
// and a mismatch is a conflict decided by the rule (conflict.go). A
// deadlock or lock wait timeout (another worker, or a local client) is
// retried a few times.
func (a *Applier) applySlow(ctx context.Context, it *applyItem) error {
	for attempt := 1; ; attempt++ {
		err := a.applySlowOnce(ctx, it)
		var me *mysql.MySQLError
		if err == nil || attempt == 3 || !errors.As(err, &me) || (me.Number != 1213 && me.Number != 1205) || ctx.Err() != nil {
			return err
		}
		a.log.Info("retrying after a lock conflict", zap.String("gtid", it.t.GTID), zap.Error(err))
	}
}

func (a *Applier) applySlowOnce(ctx context.Context, it *applyItem) error {
	t := it.t
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	var b strings.Builder
	b.WriteString(a.session + ";START TRANSACTION;")
	a.markerSQL(&b, []*applyItem{it}, false)
	if _, err := applyExec(ctx, conn, b.String()); err != nil {
		a.rollback(conn)
		return fmt.Errorf("apply transaction %s from %s: marker: %w", t.GTID, t.Origin, err)
	}
	var found []conflict.Entry
	for i := range t.Rows {
		e, err := a.applyRow(ctx, conn, t, &t.Rows[i])
		if err != nil {
			a.rollback(conn)
			return fmt.Errorf("apply transaction %s from %s: row %d (%s %s.%s): %w", t.GTID, t.Origin, i, t.Rows[i].Op, t.Rows[i].Schema, t.Rows[i].Table, err)
		}
		if e != nil {
			found = append(found, *e)
		}
	}
	// The conflicts are logged before the commit: if the commit fails the
	// transaction is applied again and logged twice, but a loser's image
	// is never lost.
	for _, e := range found {
		if err := a.logConflict(e); err != nil {
			a.rollback(conn)
			return fmt.Errorf("apply transaction %s from %s: %w", t.GTID, t.Origin, err)
		}
	}
	if _, err := applyExec(ctx, conn, "COMMIT"); err != nil {
		a.rollback(conn)
		return fmt.Errorf("commit transaction %s from %s: %w", t.GTID, t.Origin, err)
	}
	it.done = true
	a.slowApplied.Add(1)
	return nil
}

// withoutGenerated returns t with the generated columns (VIRTUAL or STORED,
// whose values the server computes and refuses to be given) left out of
// its rows; t itself when it has none. Key columns are kept.
func (a *Applier) withoutGenerated(ctx context.Context, t *Txn) (*Txn, error) {
	var out *Txn
	for i := range t.Rows {
		r := &t.Rows[i]
		gen, err := a.generatedColumns(ctx, r.Schema, r.Table)
		if err != nil {
			return nil, err
		}
		if len(gen) == 0 {
			continue
		}
		inKey := map[int]bool{}
		for _, k := range r.Key {
			inKey[k] = true
		}
		p := Row{Op: r.Op, Schema: r.Schema, Table: r.Table}
		newIndex := make([]int, len(r.Columns))
		for c := range r.Columns {
			newIndex[c] = -1
			if gen[r.Columns[c].Name] && !inKey[c] {
				continue
			}
			newIndex[c] = len(p.Columns)
			p.Columns = append(p.Columns, r.Columns[c])
			if r.Before != nil {
				p.Before = append(p.Before, r.Before[c])
			}
			if r.After != nil {
				p.After = append(p.After, r.After[c])
			}
		}
		for _, k := range r.Key {
			p.Key = append(p.Key, newIndex[k])
		}
		if len(p.Columns) == len(r.Columns) {
			continue
		}
		if out == nil {
			cp := *t
			cp.Rows = append([]Row(nil), t.Rows...)
			out = &cp
		}
		out.Rows[i] = p
	}
	if out == nil {
		return t, nil
	}
	return out, nil
}

// loadFoldable puts in a.foldable whether the changes of a table may be
// folded in a batch (applyNet): not when it is the parent of a foreign key,
// whose actions a delete sets off and a folded update would not. A table
// that does not exist has no children.
func (a *Applier) loadFoldable(ctx context.Context, schema, table string) error {
	var buf [256]byte
	if _, ok := a.foldable[string(rowKeyAppendTable(buf[:0], schema, table))]; ok {
		return nil // asked for every row of a catch-up: no allocation
	}
	var children int
	err := a.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.referential_constraints WHERE unique_constraint_schema = ? AND referenced_table_name = ?", schema, table).Scan(&children)
	if err != nil {
		return fmt.Errorf("read the foreign keys that refer to %s.%s: %w", schema, table, err)
	}
	a.foldable[string(rowKeyAppendTable(nil, schema, table))] = children == 0
	return nil
}

// isFoldable reports what loadFoldable found for r's table (false if it
// did not look).
func (a *Applier) isFoldable(r *Row) bool {
	var buf [256]byte
	return a.foldable[string(rowKeyAppendTable(buf[:0], r.Schema, r.Table))] // no allocation for the lookup
}

// generatedColumns returns the generated columns of a table (none for a
// table that does not exist).
func (a *Applier) generatedColumns(ctx context.Context, schema, table string) (map[string]bool, error) {
	var buf [256]byte
	if gen, ok := a.generated[string(rowKeyAppendTable(buf[:0], schema, table))]; ok {
		return gen, nil // asked for every row of a catch-up: no allocation
	}
	key := string(rowKeyAppendTable(nil, schema, table))
	rows, err := a.db.QueryContext(ctx, "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND IFNULL(generation_expression, '') <> ''", schema, table)
	if err != nil {
		return nil, fmt.Errorf("read generated columns of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	gen := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("read generated columns of %s.%s: %w", schema, table, err)
		}
		gen[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read generated columns of %s.%s: %w", schema, table, err)
	}
	a.generated[key] = gen
	return gen, nil
}
