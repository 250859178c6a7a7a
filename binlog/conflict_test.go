package binlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/internal/mysqltest"
)

func TestRowIncomingWins(t *testing.T) {
	t1 := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	t2 := t1.Add(time.Second)
	cases := []struct {
		rule, primary, node, origin string
		in, local                   time.Time
		known                       bool
		want                        bool
	}{
		{ConflictNewer, "", "alpha", "beta", t2, t1, true, true},
		{ConflictNewer, "", "alpha", "beta", t1, t2, true, false},
		{ConflictNewer, "", "alpha", "beta", t1, t1, true, true}, // tie: greater name
		{ConflictNewer, "", "beta", "alpha", t1, t1, true, false},
		{ConflictNewer, "", "alpha", "beta", t1, time.Time{}, false, true}, // unknown local: older
		{ConflictNewer, "alpha", "alpha", "beta", t2, t1, true, true},      // primary ignored by "newer"
		{ConflictPrimary, "alpha", "alpha", "beta", t2, t1, true, false},
		{ConflictPrimary, "alpha", "beta", "alpha", t1, t2, true, true},
		{ConflictPrimary, "", "beta", "alpha", t1, t2, true, false}, // no primary known: newer
		{ConflictPrimary, "gamma", "beta", "alpha", t2, t1, true, true},
	}
	for _, c := range cases {
		// Each node decides with the roles swapped; they must agree.
		got := rowIncomingWins(c.rule, c.primary, c.node, c.origin, c.in, c.local, c.known)
		if got != c.want {
			t.Errorf("rowIncomingWins(%s, primary %q, node %s, origin %s, in %v, local %v known %v) = %v, want %v",
				c.rule, c.primary, c.node, c.origin, c.in.Second(), c.local.Second(), c.known, got, c.want)
		}
		if c.known {
			other := rowIncomingWins(c.rule, c.primary, c.origin, c.node, c.local, c.in, true)
			if other == got {
				t.Errorf("%s/%s: both nodes decide incoming-wins=%v: they would end different", c.node, c.origin, got)
			}
		}
	}
}

func TestRecentWrites(t *testing.T) {
	tb := testTable{schema: "s", name: "t", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v"}}}
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	w := NewRecentWrites(3)
	w.Observe(testTxn("a", 1, at(1), tb.ins([]Value{vI(1), vI(0)})))
	w.Observe(testTxn("a", 2, at(2), tb.upd([]Value{vI(1), vI(0)}, []Value{vI(2), vI(0)}))) // key 1 -> 2
	if got, ok := w.LastWrite("s", "t", []Value{vI(1)}); !ok || !got.Equal(at(2)) {
		t.Errorf("LastWrite(1) = %v %v, want %v true", got, ok, at(2))
	}
	if got, ok := w.LastWrite("s", "t", []Value{vI(2)}); !ok || !got.Equal(at(2)) {
		t.Errorf("LastWrite(2) = %v %v, want %v true", got, ok, at(2))
	}
	if _, ok := w.LastWrite("s", "t", []Value{vU(2)}); ok {
		t.Errorf("LastWrite of a uint 2 found the int 2's write")
	}
	if _, ok := w.LastWrite("s", "u", []Value{vI(2)}); ok {
		t.Errorf("LastWrite found a write in another table")
	}
	w.Observe(testTxn("a", 3, at(3), tb.del([]Value{vI(3), vI(0)})))
	w.Observe(testTxn("a", 4, at(4), tb.ins([]Value{vI(4), vI(0)})))
	if n := w.Len(); n > 3 {
		t.Errorf("Len = %d, want at most 3", n)
	}
	if _, ok := w.LastWrite("s", "t", []Value{vI(4)}); !ok {
		t.Errorf("the newest write is forgotten")
	}
	// Key 1 was written twice (writes 1 and 2); only its second write may
	// count for eviction: it is the oldest remembered now.
	w.Observe(testTxn("a", 5, at(5), tb.ins([]Value{vI(5), vI(0)})))
	if _, ok := w.LastWrite("s", "t", []Value{vI(1)}); ok {
		t.Errorf("key 1 still remembered after 3 newer writes")
	}
}

type conflictSide struct {
	node  string
	srv   *mysqltest.Server
	db    *sql.DB
	clock *RecentWrites
	logs  *conflict.Log
	seq   uint64
}

// testConflictPair makes both servers change the same row, as during a
// partition, then applies each one's transaction on the other.
func testConflictPair(t *testing.T, as, bs *mysqltest.Server) {
	alpha := &conflictSide{node: "alpha", srv: as}
	beta := &conflictSide{node: "beta", srv: bs}
	for _, sd := range []*conflictSide{alpha, beta} {
		sd.srv.Exec("CREATE DATABASE shop", "CREATE TABLE shop.kv (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
		sd.db = sd.srv.DB("")
		sd.clock = NewRecentWrites(1000)
		var err error
		if sd.logs, err = conflict.Open(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		defer sd.logs.Close()
	}
	kv := testTable{schema: "shop", name: "kv", key: []int{0}, cols: []Column{{Name: "id", Type: "int"}, {Name: "v", Type: "varchar(20)", Charset: "utf8mb4"}}}
	ctx := context.Background()
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

	type change struct {
		op Op
		v  string
		at time.Time
	}
	present := func(s string) *string { return &s }
	cases := []struct {
		name          string
		rule, primary string
		initial       *string // nil: no row
		a, b          change
		alphaForgets  bool // alpha's clock does not know its write
		want          *string
		winner        string
	}{
		{"newer/alpha later", ConflictNewer, "", present("x"), change{Update, "A", sec(2)}, change{Update, "B", sec(1)}, false, present("A"), "alpha"},
		{"newer/beta later", ConflictNewer, "", present("x"), change{Update, "A", sec(1)}, change{Update, "B", sec(2)}, false, present("B"), "beta"},
		{"newer/tie by name", ConflictNewer, "", present("x"), change{Update, "A", sec(1)}, change{Update, "B", sec(1)}, false, present("B"), "beta"},
		{"primary/alpha", ConflictPrimary, "alpha", present("x"), change{Update, "A", sec(1)}, change{Update, "B", sec(2)}, false, present("A"), "alpha"},
		{"primary/beta", ConflictPrimary, "beta", present("x"), change{Update, "A", sec(2)}, change{Update, "B", sec(1)}, false, present("B"), "beta"},
		{"primary/unknown falls back to newer", ConflictPrimary, "", present("x"), change{Update, "A", sec(2)}, change{Update, "B", sec(1)}, false, present("A"), "alpha"},
		{"insert on existing key", ConflictNewer, "", nil, change{Insert, "A", sec(2)}, change{Insert, "B", sec(1)}, false, present("A"), "alpha"},
		{"delete of missing", ConflictNewer, "", present("x"), change{Delete, "", sec(1)}, change{Delete, "", sec(2)}, false, nil, "beta"},
		{"update beats older delete", ConflictNewer, "", present("x"), change{Update, "A", sec(2)}, change{Delete, "", sec(1)}, false, present("A"), "alpha"},
		{"newer delete beats update", ConflictNewer, "", present("x"), change{Update, "A", sec(1)}, change{Delete, "", sec(2)}, false, nil, "beta"},
		{"primary delete beats update", ConflictPrimary, "beta", present("x"), change{Update, "A", sec(2)}, change{Delete, "", sec(1)}, false, nil, "beta"},
		{"forgotten local write counts as older", ConflictNewer, "", present("x"), change{Update, "A", sec(1)}, change{Update, "B", sec(2)}, true, present("B"), "beta"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := int64(100 + i)
			img := func(v string) []Value { return []Value{vI(id), vB(Text, v)} }
			if c.initial != nil {
				for _, sd := range []*conflictSide{alpha, beta} {
					sd.srv.Exec(fmt.Sprintf("INSERT INTO shop.kv VALUES (%d, '%s')", id, *c.initial))
				}
			}
			// Each side changes the row locally, as the tailer would
			// report it.
			local := func(sd *conflictSide, ch change) *Txn {
				var q string
				var r Row
				switch ch.op {
				case Insert:
					q, r = fmt.Sprintf("INSERT INTO shop.kv VALUES (%d, '%s')", id, ch.v), kv.ins(img(ch.v))
				case Update:
					q, r = fmt.Sprintf("UPDATE shop.kv SET v = '%s' WHERE id = %d", ch.v, id), kv.upd(img(*c.initial), img(ch.v))
				case Delete:
					q, r = fmt.Sprintf("DELETE FROM shop.kv WHERE id = %d", id), kv.del(img(*c.initial))
				}
				sd.srv.Exec(q)
				sd.seq++
				tx := testTxn(sd.node, sd.seq, ch.at, r)
				if !(sd == alpha && c.alphaForgets) {
					sd.clock.Observe(tx)
				}
				return tx
			}
			ta, tb := local(alpha, c.a), local(beta, c.b)
			primary := func() string { return c.primary }
			for _, p := range []struct {
				sd *conflictSide
				in *Txn
			}{{alpha, tb}, {beta, ta}} {
				a, _ := testApplier(t, p.sd.srv, p.sd.node, ApplierOptions{Rule: c.rule, Primary: primary, LocalClock: p.sd.clock, Conflicts: p.sd.logs})
				if err := a.Apply(ctx, []*Txn{p.in}); err != nil {
					t.Fatalf("%s applying %s's change: %v", p.sd.node, p.in.Origin, err)
				}
			}
			for _, sd := range []*conflictSide{alpha, beta} {
				got := testQueryString(t, sd.db, "SELECT (SELECT v FROM shop.kv WHERE id = ?)", id)
				want := "NULL"
				if c.want != nil {
					want = *c.want
				}
				if got != want {
					t.Errorf("%s has v = %s, want %s", sd.node, got, want)
				}
				es := testConflicts(t, sd.logs)
				if len(es) == 0 {
					t.Fatalf("%s logged no conflict", sd.node)
				}
				e := es[len(es)-1]
				var key map[string]any
				if e.Kind != conflict.KindRow || e.Row == nil || e.Row.Schema != "shop" || e.Row.Table != "kv" || json.Unmarshal(e.Row.Key, &key) != nil || key["id"] != float64(id) {
					t.Fatalf("%s logged %+v, want a row conflict on shop.kv id %d", sd.node, e, id)
				}
				if e.Winner != c.winner {
					t.Errorf("%s logged winner %s, want %s", sd.node, e.Winner, c.winner)
				}
				// The loser's image is in the log: the incoming after image,
				// or the current row this node had.
				if c.a.op != Delete && c.b.op != Delete && (len(e.Row.After) == 0 || len(e.Row.Current) == 0) {
					t.Errorf("%s logged after %s current %s: an image is missing", sd.node, e.Row.After, e.Row.Current)
				}
			}
		})
	}
	for _, sd := range []*conflictSide{alpha, beta} {
		if n := len(testConflicts(t, sd.logs)); n != len(cases) {
			t.Errorf("%s logged %d conflicts for %d cases", sd.node, n, len(cases))
		}
	}
	sa, err := alpha.srv.Checksum("shop.kv")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := beta.srv.Checksum("shop.kv")
	if err != nil {
		t.Fatal(err)
	}
	if sa != sb {
		t.Errorf("CHECKSUM TABLE shop.kv: alpha %d, beta %d", sa, sb)
	}
}
