package binlog

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/mysqltest"
	"github.com/tandemhost/tandem/pipe"
)

func TestMarkerBatchRoundTrip(t *testing.T) {
	var items []*applyItem
	for _, it := range []struct {
		seq, prev uint64
		gtid      string
	}{{5, 3, "0-1-5"}, {6, 5, "0-1-6"}, {9, 8, "0-1-9"}, {1 << 40, 9, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1"}} {
		items = append(items, &applyItem{t: &Txn{Seq: it.seq, GTID: it.gtid}, prev: it.prev})
	}
	got, err := decodeMarkerBatch(appendMarkerBatch(nil, items))
	if err != nil {
		t.Fatal(err)
	}
	var want []markerEntry
	for _, it := range items {
		want = append(want, markerEntry{seq: it.t.Seq, prev: it.prev, gtid: it.t.GTID})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
}

func TestMarkerBatchRefusesBadInput(t *testing.T) {
	var e pipe.Encoder
	e.Uvarint(2)
	e.Uvarint(5) // seq 5
	e.Uvarint(4)
	e.String("0-1-5")
	e.Uvarint(0) // seq 5 again
	e.Uvarint(5)
	e.String("0-1-5")
	repeated := e.Buf()
	for name, b := range map[string][]byte{
		"a repeated seq": repeated,
		"trailing bytes": append(appendMarkerBatch(nil, []*applyItem{{t: &Txn{Seq: 1, GTID: "g"}}}), 0),
		"truncated":      appendMarkerBatch(nil, []*applyItem{{t: &Txn{Seq: 1, GTID: "0-1-1"}}})[:4],
		"a huge count":   {0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if es, err := decodeMarkerBatch(b); !errors.Is(err, pipe.ErrMalformed) {
			t.Errorf("%s: %+v, %v; want ErrMalformed", name, es, err)
		}
	}
}

func TestMarkerChain(t *testing.T) {
	got := markerChain([]markerEntry{{seq: 7, prev: 6}, {seq: 5, prev: 4}, {seq: 5, prev: 0}, {seq: 6, prev: 5}})
	want := []markerEntry{{seq: 5, prev: 0}, {seq: 6, prev: 5}, {seq: 7, prev: 6}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("markerChain = %+v, want %+v (the anchor kept, its duplicate dropped)", got, want)
	}
}

// FuzzMarkerBatch: whatever the batch table holds, decoding returns an
// error or entries that encode back to the same bytes.
func FuzzMarkerBatch(f *testing.F) {
	f.Add(appendMarkerBatch(nil, []*applyItem{{t: &Txn{Seq: 3, GTID: "0-1-3"}, prev: 2}, {t: &Txn{Seq: 4, GTID: "0-1-4"}, prev: 3}}))
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeMarkerBatch(b)
		if err != nil {
			if !errors.Is(err, pipe.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		var items []*applyItem
		for i, e := range es {
			if i > 0 && e.seq <= es[i-1].seq {
				t.Fatalf("entries out of order: %+v", es)
			}
			items = append(items, &applyItem{t: &Txn{Seq: e.seq, GTID: e.gtid}, prev: e.prev})
		}
		again, err := decodeMarkerBatch(appendMarkerBatch(nil, items))
		if err != nil || !reflect.DeepEqual(again, es) {
			t.Fatalf("re-encoding %+v decodes to %+v, %v", es, again, err)
		}
	})
}

// TestMarkerBatches: a batch of source transactions applied in one local
// transaction records them in one marker row and one list; a new Applier
// reads the same checkpoint back, also after a prune whose checkpoint is
// inside a list (it gets an anchor row of its own).
func TestMarkerBatches(t *testing.T) {
	s := mysqltest.Start(t, mysqltest.Options{ServerID: 1})
	s.Exec("CREATE DATABASE shop", "CREATE TABLE shop.kv (id INT PRIMARY KEY, v VARCHAR(20))")
	kv := testTable{schema: "shop", name: "kv", key: []int{0}, cols: []Column{{Name: "id"}, {Name: "v", Charset: "utf8mb4"}}}
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	var txns []*Txn
	for i := int64(1); i <= 10; i++ {
		txns = append(txns, testTxn("alpha", uint64(i), t0, kv.ins([]Value{vI(i), vB(Text, "v")})))
	}
	ctx := context.Background()
	db := s.DB("")
	a, _ := testApplier(t, s, "beta", ApplierOptions{Workers: 1, BatchTxns: 4})
	if err := a.Apply(ctx, txns); err != nil {
		t.Fatal(err)
	}
	// Batches of 4, 4 and 2: three marker rows, three lists.
	if got := testQueryString(t, db, "SELECT GROUP_CONCAT(CONCAT(seq, '/', ddl_pending) ORDER BY seq) FROM tandem.applied WHERE origin = 'alpha'"); got != "4/2,8/2,10/2" {
		t.Errorf("marker rows (seq/ddl_pending) = %s, want 4/2,8/2,10/2", got)
	}
	if got := testQueryInt(t, db, "SELECT COUNT(*) FROM tandem.applied_batches WHERE origin = 'alpha'"); got != 3 {
		t.Errorf("%d batch lists, want 3", got)
	}
	applied := func(want uint64, wantGTID string) {
		t.Helper()
		b, _ := testApplier(t, s, "beta", ApplierOptions{})
		seq, gtid, err := b.Applied(ctx, "alpha")
		if err != nil || seq != want || gtid != wantGTID {
			t.Errorf("a new applier's Applied = %d, %q, %v; want %d, %q", seq, gtid, err, want, wantGTID)
		}
	}
	applied(10, txns[9].GTID)
	// A tandem older than the lists reads ddl_pending into a bool: the 2
	// must make that fail, not pass for "done".
	var old bool
	if err := db.QueryRow("SELECT ddl_pending FROM tandem.applied WHERE origin = 'alpha' AND seq = ?", 4).Scan(&old); err == nil {
		t.Errorf("a batch row's ddl_pending scanned into a bool (%v): an older tandem would misread the checkpoint", old)
	}

	// A prune at seq 6, which only the second batch's list names.
	if err := a.prune(ctx, "alpha", 6, txns[5].GTID); err != nil {
		t.Fatal(err)
	}
	if got := testQueryString(t, db, "SELECT GROUP_CONCAT(CONCAT(seq, '/', prev) ORDER BY seq) FROM tandem.applied WHERE origin = 'alpha'"); got != "6/0,8/7,10/9" {
		t.Errorf("marker rows (seq/prev) after the prune = %s, want 6/0,8/7,10/9", got)
	}
	applied(10, txns[9].GTID)
	// Without the list of the batch ending at 8 (7 and the 6 it also
	// names), the chain stops at the anchor: 8 and 10 are ahead of it.
	s.Exec("DELETE FROM tandem.applied_batches WHERE origin = 'alpha' AND seq = 8")
	applied(6, txns[5].GTID)
}
