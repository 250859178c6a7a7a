package main

// The database torture test: two real MariaDB servers
// (auto_increment_increment=2, offsets 1 and 2), two real daemons, the
// fault proxy between them, a seeded random workload of multi-row
// transactions on both servers and random faults (partitions, resets,
// latency spikes, SIGKILL and restart of either or both daemons). At the end it heals
// everything, waits for quiescence and checks that both servers hold the
// same tables, that nothing was lost or applied twice, and that every
// concurrent write to one row was logged as a conflict. -torture.seed=N
// replays a run; -torture.ops sets its length.

import (
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemhost/tandem/conflict"
)

var tortureUniqueClash = flag.Bool("torture.uniqueclash", true,
	"in the rows torture test, also insert the same secondary unique key on both sides during partitions (settled: the smaller primary key stays, the clash is logged)")

// tortureRowsTables: kv rows are written by both sides (the conflicts);
// items (secondary UNIQUE key on name) and pairs (no primary key) rows
// only by the side that inserted them; audit (no key at all) is append
// only, one row per committed transaction, so that a lost or a repeated
// transaction shows as a missing or an extra row.
var tortureRowsTables = []string{"shop.kv", "shop.items", "shop.pairs", "shop.audit"}

var tortureRowsSchema = []string{
	"CREATE TABLE shop.kv (id INT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(40) NOT NULL)",
	"CREATE TABLE shop.pairs (tag VARCHAR(20) NOT NULL, val INT NOT NULL)",
	"CREATE TABLE shop.audit (origin CHAR(5) NOT NULL, n INT NOT NULL, note VARCHAR(40))",
}

const tortureKVRows = 20

type tortureItem struct {
	name string
	qty  int
}

// rowSide is one server's workload and the model of what it wrote.
type rowSide struct {
	name string
	db   *sql.DB
	rng  *rand.Rand
	ops  map[string]int
	// audit counts the committed transactions: audit rows (name, 1..audit).
	audit int
	items map[int64]tortureItem // this side's items by id
	pairs map[string]int        // this side's pairs by tag
	next  int                   // names new items and pairs
	// kvWrote collects the kv ids written since the last reset (partition).
	kvWrote map[int]bool
}

// rowChange is one statement of a transaction and what it does to the
// model once committed.
type rowChange struct {
	q      string
	args   []any
	commit func(res sql.Result) error
}

// step runs one transaction of one to five statements plus its audit row.
func (s *rowSide) step(t *testing.T, clash string) {
	t.Helper()
	var changes []rowChange
	kv := map[int]bool{}
	used := map[string]bool{} // one change per item or pair per transaction keeps the model simple
	for range 1 + s.rng.IntN(5) {
		op := s.rng.IntN(100)
		switch {
		case op < 30: // a shared row: conflicts when both sides write it
			id := 1 + s.rng.IntN(tortureKVRows)
			kv[id] = true
			changes = append(changes, rowChange{q: "UPDATE kv SET v = ?, note = ? WHERE id = ?",
				args: []any{s.rng.Int64N(1 << 40), fmt.Sprintf("%s %d", s.name, s.next), id}})
			s.next++
			s.ops["kv-update"]++
		case op < 50 || len(s.items) == 0: // insert an item
			name := fmt.Sprintf("%s-%d", s.name, s.next)
			s.next++
			qty := s.rng.IntN(1000)
			changes = append(changes, rowChange{q: "INSERT INTO items (name, qty) VALUES (?, ?)", args: []any{name, qty},
				commit: func(res sql.Result) error {
					id, err := res.LastInsertId()
					s.items[id] = tortureItem{name, qty}
					return err
				}})
			s.ops["item-insert"]++
		case op < 62: // update one of this side's items
			id := pickKey(s.rng, s.items)
			if used[fmt.Sprint("item", id)] {
				continue
			}
			used[fmt.Sprint("item", id)] = true
			qty := s.rng.IntN(1000)
			changes = append(changes, rowChange{q: "UPDATE items SET qty = ? WHERE id = ?", args: []any{qty, id},
				commit: func(sql.Result) error { it := s.items[id]; it.qty = qty; s.items[id] = it; return nil }})
			s.ops["item-update"]++
		case op < 70: // delete one of this side's items
			id := pickKey(s.rng, s.items)
			if used[fmt.Sprint("item", id)] {
				continue
			}
			used[fmt.Sprint("item", id)] = true
			changes = append(changes, rowChange{q: "DELETE FROM items WHERE id = ?", args: []any{id},
				commit: func(sql.Result) error { delete(s.items, id); return nil }})
			s.ops["item-delete"]++
		case op < 82 || len(s.pairs) == 0: // insert a row without a key
			tag := fmt.Sprintf("%s-%d", s.name, s.next)
			s.next++
			val := s.rng.IntN(1000)
			changes = append(changes, rowChange{q: "INSERT INTO pairs (tag, val) VALUES (?, ?)", args: []any{tag, val},
				commit: func(sql.Result) error { s.pairs[tag] = val; return nil }})
			s.ops["pair-insert"]++
		case op < 93:
			tag := pickKey(s.rng, s.pairs)
			if used["pair"+tag] {
				continue
			}
			used["pair"+tag] = true
			val := s.rng.IntN(1000)
			changes = append(changes, rowChange{q: "UPDATE pairs SET val = ? WHERE tag = ?", args: []any{val, tag},
				commit: func(sql.Result) error { s.pairs[tag] = val; return nil }})
			s.ops["pair-update"]++
		default:
			tag := pickKey(s.rng, s.pairs)
			if used["pair"+tag] {
				continue
			}
			used["pair"+tag] = true
			changes = append(changes, rowChange{q: "DELETE FROM pairs WHERE tag = ?", args: []any{tag},
				commit: func(sql.Result) error { delete(s.pairs, tag); return nil }})
			s.ops["pair-delete"]++
		}
	}
	if clash != "" {
		changes = append(changes, rowChange{q: "INSERT INTO items (name, qty) VALUES (?, 0)", args: []any{clash},
			commit: func(sql.Result) error { return nil }})
		s.ops["unique-clash"]++
	}
	changes = append(changes, rowChange{q: "INSERT INTO audit (origin, n, note) VALUES (?, ?, ?)",
		args: []any{s.name, s.audit + 1, fmt.Sprintf("%d statements", len(changes))}})

	tx, err := s.db.Begin()
	if err != nil {
		t.Fatalf("%s: begin: %v", s.name, err)
	}
	results := make([]sql.Result, len(changes))
	for i, c := range changes {
		if results[i], err = tx.Exec(c.q, c.args...); err != nil {
			break
		}
	}
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	var me *mysql.MySQLError
	if err != nil && errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205) {
		// A deadlock or lock wait with the applier: the transaction is
		// rolled back, nothing of it counts.
		s.ops["aborted"]++
		return
	}
	if err != nil {
		t.Fatalf("%s workload: %v", s.name, err)
	}
	s.audit++
	s.ops["txn"]++
	for i, c := range changes {
		if c.commit != nil {
			if err := c.commit(results[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for id := range kv {
		s.kvWrote[id] = true
	}
}

func pickKey[K comparable, V any](r *rand.Rand, m map[K]V) K {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return keys[r.IntN(len(keys))]
}

func TestTortureRows(t *testing.T) {
	seed := *tortureSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("rows torture seed %d (replay with -torture.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	// -torture.ops counts transactions here; by default a run is about
	// half a minute.
	ops := 2000
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "torture.ops" {
			ops = *tortureOps
		}
	})
	if testing.Short() {
		ops = 300
	}
	started := time.Now()

	rp := startRowPair(t, 2*time.Millisecond)
	sides := [2]*rowSide{}
	for i, n := range rp.nodes {
		rp.servers[i].Exec(tortureRowsSchema...)
		for id := 1; id <= tortureKVRows; id++ {
			rp.exec(t, i, fmt.Sprintf("INSERT INTO kv VALUES (%d, 0, 'initial')", id))
		}
		sides[i] = &rowSide{name: n.Name, db: rp.dbs[i], rng: rand.New(rand.NewPCG(seed, uint64(i+12))),
			ops: map[string]int{}, items: map[int64]tortureItem{}, pairs: map[string]int{}, kvWrote: map[int]bool{}}
	}
	rp.start(t)

	faults := map[string]int{}
	running := [2]bool{true, true}
	ensureRunning := func() {
		for i := range running {
			if !running[i] {
				rp.procs[i] = startDaemon(t, rp.nodes[i])
				running[i] = true
			}
		}
	}
	kill := func(i int) {
		if running[i] {
			rp.procs[i].cmd.Process.Kill()
			<-rp.procs[i].done
			running[i] = false
		}
	}
	// mustConflict lists the kv ids both sides wrote in one partition.
	mustConflict := map[int]bool{}
	clashes := 0
	done := 0
	work := func(n int) {
		for range n {
			sides[rng.IntN(2)].step(t, "")
			done++
		}
	}
	for done < ops {
		work(10 + rng.IntN(30))
		switch f := rng.IntN(10); {
		case f < 3:
			for _, p := range rp.proxies {
				p.Blackhole(true)
			}
			for i, nd := range rp.nodes {
				if running[i] {
					waitPeer(t, nd, "link down in the partition", func(p PeerStatus) bool { return !p.Connected })
				}
			}
			for _, s := range sides {
				clear(s.kvWrote)
			}
			work(10 + rng.IntN(30))
			if *tortureUniqueClash {
				clashes++
				for _, s := range sides {
					s.step(t, fmt.Sprintf("clash-%d", clashes))
				}
			}
			for id := range sides[0].kvWrote {
				if sides[1].kvWrote[id] {
					mustConflict[id] = true
				}
			}
			for _, p := range rp.proxies {
				p.Blackhole(false)
			}
			faults["partition"]++
		case f < 5:
			for _, p := range rp.proxies {
				p.Reset()
			}
			faults["reset"]++
		case f < 7:
			i := rng.IntN(2)
			kill(i)
			faults["kill-"+rp.nodes[i].Name]++
			work(5 + rng.IntN(20))
			ensureRunning()
		case f < 8:
			kill(0)
			kill(1)
			faults["kill-both"]++
			work(5 + rng.IntN(10))
			ensureRunning()
		case f < 9:
			for _, p := range rp.proxies {
				p.SetLatency(150 * time.Millisecond)
			}
			work(10 + rng.IntN(20))
			for _, p := range rp.proxies {
				p.SetLatency(2 * time.Millisecond)
			}
			faults["latency"]++
		}
	}

	// Heal and wait for quiescence: equal tables, nothing in flight,
	// everything sent acknowledged and applied.
	ensureRunning()
	for _, p := range rp.proxies {
		p.Blackhole(false)
		p.SetLatency(2 * time.Millisecond)
	}
	var sums [2]string
	var sts [2]Status
	quiet := func() bool {
		sums[0], sums[1] = rp.checksums(0, tortureRowsTables...), rp.checksums(1, tortureRowsTables...)
		if sums[0] != sums[1] {
			return false
		}
		for i, n := range rp.nodes {
			sts[i] = statusCLI(t, n)
		}
		for i, st := range sts {
			peer := sts[1-i]
			if st.Rows == nil || peer.Rows == nil || st.Rows.InFlight != 0 || st.Rows.Acked < st.Rows.Sent ||
				st.Rows.ApplyError != "" || st.Rows.SendError != "" || peer.Rows.Applied < st.Rows.Sent {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !quiet() {
		if time.Now().After(deadline) {
			for i, n := range rp.nodes {
				t.Logf("%s status: %+v rows %+v", n.Name, sts[i], sts[i].Rows)
			}
			t.Fatalf("no quiescence after 2m (seed %d):\nalpha %s\nbeta  %s", seed, sums[0], sums[1])
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Nothing lost, nothing applied twice: every committed transaction's
	// audit row is on both servers exactly once, and nothing else is.
	lost, dups := 0, 0
	for i, n := range rp.nodes {
		got := map[string]map[int]int{}
		rows, err := rp.dbs[i].Query("SELECT origin, n, COUNT(*) FROM audit GROUP BY origin, n")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var origin string
			var num, c int
			if err := rows.Scan(&origin, &num, &c); err != nil {
				t.Fatal(err)
			}
			if got[origin] == nil {
				got[origin] = map[int]int{}
			}
			got[origin][num] = c
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		for _, s := range sides {
			for num := 1; num <= s.audit; num++ {
				switch c := got[s.name][num]; {
				case c == 0:
					lost++
					t.Errorf("%s: %s's transaction %d is missing", n.Name, s.name, num)
				case c > 1:
					dups++
					t.Errorf("%s: %s's transaction %d is there %d times", n.Name, s.name, num, c)
				}
			}
			for num, c := range got[s.name] {
				if num > s.audit {
					dups += c
					t.Errorf("%s: %s's transaction %d is there but was never committed", n.Name, s.name, num)
				}
			}
		}
		// Each side's own rows are exactly its model, on both servers.
		items := map[int64]tortureItem{}
		rows, err = rp.dbs[i].Query("SELECT id, name, qty FROM items")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			var it tortureItem
			if err := rows.Scan(&id, &it.name, &it.qty); err != nil {
				t.Fatal(err)
			}
			items[id] = it
		}
		rows.Close()
		pairs := map[string][]int{}
		rows, err = rp.dbs[i].Query("SELECT tag, val FROM pairs")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var tag string
			var val int
			if err := rows.Scan(&tag, &val); err != nil {
				t.Fatal(err)
			}
			pairs[tag] = append(pairs[tag], val)
		}
		rows.Close()
		for _, s := range sides {
			for id, want := range s.items {
				if got := items[id]; got != want {
					lost++
					t.Errorf("%s: item %d is %+v, want %+v as %s wrote it", n.Name, id, got, want, s.name)
				}
			}
			for tag, want := range s.pairs {
				if got := pairs[tag]; len(got) != 1 || got[0] != want {
					lost++
					t.Errorf("%s: pair %s holds %v, want [%d] as %s wrote it", n.Name, tag, got, want, s.name)
				}
			}
		}
		for id, it := range items {
			owner := sides[0]
			if strings.HasPrefix(it.name, sides[1].name+"-") {
				owner = sides[1]
			}
			if _, ok := owner.items[id]; !ok && !strings.HasPrefix(it.name, "clash-") {
				t.Errorf("%s: item %d %+v exists but %s deleted or never wrote it", n.Name, id, it, owner.name)
			}
		}
		for tag, vals := range pairs {
			owner := sides[0]
			if strings.HasPrefix(tag, sides[1].name+"-") {
				owner = sides[1]
			}
			if _, ok := owner.pairs[tag]; !ok {
				t.Errorf("%s: pair %s %v exists but %s deleted or never wrote it", n.Name, tag, vals, owner.name)
			}
		}
	}

	// Every concurrent write to one row was logged, and only kv rows
	// (the only ones both sides write) had conflicts.
	conflicted := map[int]bool{}
	entries := 0
	for _, n := range rp.nodes {
		v, err := conflict.Load(n.StateDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range v.List(conflict.Filter{}) {
			if e.Kind != conflict.KindRow || e.Row == nil {
				t.Errorf("%s logged a %q conflict in a rows-only test: %+v", n.Name, e.Kind, e)
				continue
			}
			entries++
			if e.Row.Table == "items" && strings.Contains(string(e.Row.Key), `"clash-`) {
				continue // a unique-key clash, settled and logged
			}
			if e.Row.Table != "kv" {
				t.Errorf("%s logged a conflict on %s.%s key %s, which only one side writes", n.Name, e.Row.Schema, e.Row.Table, e.Row.Key)
				continue
			}
			var key struct{ ID int }
			if err := json.Unmarshal(e.Row.Key, &key); err != nil {
				t.Errorf("%s: conflict key %s: %v", n.Name, e.Row.Key, err)
			}
			conflicted[key.ID] = true
		}
	}
	unlogged := 0
	for id := range mustConflict {
		if !conflicted[id] {
			unlogged++
			t.Errorf("kv row %d was written on both sides during a partition, but no conflict was logged for it", id)
		}
	}
	total := map[string]int{}
	for _, s := range sides {
		for k, v := range s.ops {
			total[k] += v
		}
	}
	t.Logf("rows torture seed=%d duration=%v ops=%v faults=%v conflicts logged=%d (rows written on both sides in a partition: %d, unlogged: %d) lost=%d duplicates=%d",
		seed, time.Since(started).Round(time.Second), total, faults, entries, len(mustConflict), unlogged, lost, dups)
}
