package binlog

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// foldInput returns rows' pointers and identities, as batchSQL gives them
// to applyNet.
func foldInput(rows []Row) ([]*Row, [][2]string) {
	ptrs := make([]*Row, len(rows))
	keys := make([][2]string, len(rows))
	for i := range rows {
		ptrs[i] = &rows[i]
		keys[i] = applyRowKeys(&rows[i])
	}
	return ptrs, keys
}

// foldString shows a change as op(before->after) with each image as its
// values' I fields, for comparing applyNet's output.
func foldString(r *Row) string {
	img := func(vs []Value) string {
		if vs == nil {
			return "-"
		}
		var s []string
		for _, v := range vs {
			s = append(s, fmt.Sprint(v.I))
		}
		return strings.Join(s, ",")
	}
	return fmt.Sprintf("%s.%s:%v(%s>%s)", r.Schema, r.Table, r.Op, img(r.Before), img(r.After))
}

func TestApplyNet(t *testing.T) {
	tb := testTable{schema: "s", name: "t", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v"}}}
	other := testTable{schema: "s", name: "fk", key: []int{0}, cols: tb.cols}
	keyless := testTable{schema: "s", name: "nokey", cols: tb.cols}
	renamed := testTable{schema: "s", name: "t", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "w"}}}
	r := func(id, v int64) []Value { return []Value{vI(id), vI(v)} }
	foldable := func(r *Row) bool { return r.Table != "fk" }
	for _, tt := range []struct {
		name string
		rows []Row
		want []string
	}{
		{"updates", []Row{tb.upd(r(1, 1), r(1, 2)), tb.upd(r(1, 2), r(1, 3)), tb.upd(r(1, 3), r(1, 4))},
			[]string{"s.t:update(1,1>1,4)"}},
		{"delete and reinsert", []Row{tb.del(r(1, 1)), tb.ins(r(1, 5))},
			[]string{"s.t:update(1,1>1,5)"}},
		{"insert then updates", []Row{tb.ins(r(1, 1)), tb.upd(r(1, 1), r(1, 2))},
			[]string{"s.t:insert(->1,2)"}},
		{"update then delete", []Row{tb.upd(r(1, 1), r(1, 2)), tb.del(r(1, 2))},
			[]string{"s.t:delete(1,1>-)"}},
		{"an inserted row's delete stays", []Row{tb.ins(r(1, 1)), tb.del(r(1, 1)), tb.ins(r(1, 7))},
			[]string{"s.t:insert(->1,1)", "s.t:update(1,1>1,7)"}},
		{"rows apart, in place of their first change",
			[]Row{tb.upd(r(1, 1), r(1, 2)), tb.upd(r(2, 1), r(2, 2)), tb.upd(r(1, 2), r(1, 3))},
			[]string{"s.t:update(1,1>1,3)", "s.t:update(2,1>2,2)"}},
		{"a before image the stream did not leave", []Row{tb.upd(r(1, 1), r(1, 2)), tb.upd(r(1, 9), r(1, 3))},
			[]string{"s.t:update(1,1>1,2)", "s.t:update(1,9>1,3)"}},
		{"an update of a deleted row", []Row{tb.del(r(1, 1)), tb.upd(r(1, 1), r(1, 2))},
			[]string{"s.t:delete(1,1>-)", "s.t:update(1,1>1,2)"}},
		{"an insert over a row", []Row{tb.upd(r(1, 1), r(1, 2)), tb.ins(r(1, 3))},
			[]string{"s.t:update(1,1>1,2)", "s.t:insert(->1,3)"}},
		{"a key change ends both rows' chains",
			[]Row{tb.upd(r(1, 1), r(1, 2)), tb.upd(r(1, 2), r(2, 2)), tb.upd(r(2, 2), r(2, 3)), tb.upd(r(2, 3), r(2, 4))},
			[]string{"s.t:update(1,1>1,2)", "s.t:update(1,2>2,2)", "s.t:update(2,2>2,4)"}},
		{"a table that is not foldable", []Row{other.upd(r(1, 1), r(1, 2)), other.upd(r(1, 2), r(1, 3))},
			[]string{"s.fk:update(1,1>1,2)", "s.fk:update(1,2>1,3)"}},
		{"a table without a key", []Row{keyless.upd(r(1, 1), r(1, 2)), keyless.upd(r(1, 2), r(1, 3))},
			[]string{"s.nokey:update(1,1>1,2)", "s.nokey:update(1,2>1,3)"}},
		{"other columns (a schema change between)", []Row{tb.upd(r(1, 1), r(1, 2)), renamed.upd(r(1, 2), r(1, 3))},
			[]string{"s.t:update(1,1>1,2)", "s.t:update(1,2>1,3)"}},
		{"the same key in another table", []Row{tb.upd(r(1, 1), r(1, 2)), other.upd(r(1, 2), r(1, 3)), tb.upd(r(1, 2), r(1, 4))},
			[]string{"s.t:update(1,1>1,4)", "s.fk:update(1,2>1,3)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			orig := slices.Clone(tt.rows)
			rows, keys := foldInput(tt.rows)
			out, outKeys := applyNet(rows, keys, foldable)
			var got []string
			for _, r := range out {
				got = append(got, foldString(r))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("folded to\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
			for i, r := range out {
				if k := applyRowKeys(r); len(outKeys) != len(out) || outKeys[i] != k {
					t.Errorf("change %d's identities %q, want %q", i, outKeys[i], k)
				}
			}
			for i := range orig {
				if foldString(&orig[i]) != foldString(&tt.rows[i]) {
					t.Errorf("input row %d changed to %s", i, foldString(&tt.rows[i]))
				}
			}
		})
	}
}

// TestApplyNetModel applies random change streams, folded and not, to a
// model of a table keyed by id that compares before images as the
// applier's statements do: either both meet a conflict or both end in the
// same state. (On a conflict the applier goes through the changes
// unfolded, so only its detection must agree.)
func TestApplyNetModel(t *testing.T) {
	tb := testTable{schema: "s", name: "t", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v"}}}
	type model map[int64]int64 // id -> v
	apply := func(m model, rows []*Row) bool {
		for _, r := range rows {
			if r.Before != nil {
				if v, ok := m[r.Before[0].I]; !ok || v != r.Before[1].I {
					return false
				}
				delete(m, r.Before[0].I)
			}
			if r.After != nil {
				if _, ok := m[r.After[0].I]; ok {
					return false
				}
				m[r.After[0].I] = r.After[1].I
			}
		}
		return true
	}
	rng := rand.New(rand.NewPCG(7, 8))
	folded, conflicts := 0, 0
	for range 20000 {
		start := model{}
		for id := range int64(4) {
			if rng.IntN(2) == 0 {
				start[id] = rng.Int64N(3)
			}
		}
		// A stream mostly consistent with itself, sometimes not (a
		// conflict, or a change here the stream did not make).
		cur := maps.Clone(start)
		var rows []Row
		for range 1 + rng.IntN(8) {
			id := rng.Int64N(4)
			v, ok := cur[id]
			if rng.IntN(10) == 0 {
				v, ok = rng.Int64N(3), rng.IntN(2) == 0
			}
			next := rng.Int64N(3)
			switch {
			case !ok:
				rows = append(rows, tb.ins([]Value{vI(id), vI(next)}))
				cur[id] = next
			case rng.IntN(3) == 0:
				rows = append(rows, tb.del([]Value{vI(id), vI(v)}))
				delete(cur, id)
			case rng.IntN(4) == 0:
				to := rng.Int64N(4) // a key change
				rows = append(rows, tb.upd([]Value{vI(id), vI(v)}, []Value{vI(to), vI(next)}))
				delete(cur, id)
				cur[to] = next
			default:
				rows = append(rows, tb.upd([]Value{vI(id), vI(v)}, []Value{vI(id), vI(next)}))
				cur[id] = next
			}
		}
		ptrs, keys := foldInput(rows)
		out, _ := applyNet(ptrs, keys, func(*Row) bool { return true })
		folded += len(ptrs) - len(out)
		want, got := maps.Clone(start), maps.Clone(start)
		okWant, okGot := apply(want, ptrs), apply(got, out)
		if okWant != okGot || (okWant && fmt.Sprint(want) != fmt.Sprint(got)) {
			var in, o []string
			for _, r := range ptrs {
				in = append(in, foldString(r))
			}
			for _, r := range out {
				o = append(o, foldString(r))
			}
			t.Fatalf("from %v:\n\t%s\napplied: %v, %v\nfolded:\n\t%s\napplied: %v, %v",
				start, strings.Join(in, "\n\t"), okWant, want, strings.Join(o, "\n\t"), okGot, got)
		}
		if !okWant {
			conflicts++
		}
	}
	if folded == 0 || conflicts == 0 {
		t.Fatalf("%d changes folded, %d streams met a conflict: the streams do not test both", folded, conflicts)
	}
}

// TestApplyNetSysbench: folding a catch-up of sysbench transactions (hot
// rows; a delete and reinsert of a row in each) in batches of the default
// size must leave at most 60% of the row changes (about a quarter at
// 1,024 a batch), in far fewer statements.
func TestApplyNetSysbench(t *testing.T) {
	const batches = 20
	wire := sysbenchTxns(applyDefaultBatchTxns * batches)
	var rowsIn, rowsOut, stmtsIn, stmtsOut int
	for start := 0; start < len(wire); start += applyDefaultBatchTxns {
		var rows []*Row
		var keys [][2]string
		for _, w := range wire[start : start+applyDefaultBatchTxns] {
			tx, err := DecodeTxn(w)
			if err != nil {
				t.Fatal(err)
			}
			it := &applyItem{t: tx}
			keys = append(keys, it.rowKeys()...)
			for i := range tx.Rows {
				rows = append(rows, &tx.Rows[i])
			}
		}
		out, outKeys := applyNet(rows, keys, func(*Row) bool { return true })
		rowsIn, rowsOut = rowsIn+len(rows), rowsOut+len(out)
		stmtsIn, stmtsOut = stmtsIn+len(applyPlan(rows, keys)), stmtsOut+len(applyPlan(out, outKeys))
	}
	t.Logf("a batch of %d: %d row changes in %d statements, folded %d in %d", applyDefaultBatchTxns,
		rowsIn/batches, stmtsIn/batches, rowsOut/batches, stmtsOut/batches)
	if rowsOut > rowsIn*6/10 || stmtsOut > stmtsIn/5 {
		t.Errorf("folded to %d of %d row changes, %d of %d statements: want at most 60%% and 20%%", rowsOut, rowsIn, stmtsOut, stmtsIn)
	}
}
