package binlog

import (
	"slices"

	"github.com/tandemhost/tandem/pipe"
)

// MarkerBatchTable holds, for a local transaction that applied several
// source transactions, the ones its marker row does not name (see Applier,
// "The marker table").
const MarkerBatchTable = "applied_batches"

// Values of the marker table's ddl_pending column.
const (
	markerDone    = 0 // applied
	markerPending = 1 // a DDL that may or may not be in (ddl.go)
	// markerBatch: applied, with more source transactions of the same
	// local transaction listed in MarkerBatchTable under the row's seq.
	// A tandem older than this reads the column as a bool and fails on
	// the 2 instead of misreading the checkpoint.
	markerBatch = 2
)

// markerEntry is one source transaction recorded in the marker table.
type markerEntry struct {
	seq, prev uint64
	gtid      string
	pending   bool // a DDL's, ddl_pending = markerPending
}

// markerBatchMax bounds the entries of one encoded list: a local
// transaction carries at most a batch (BatchTxns) of source ones.
const markerBatchMax = 1 << 16

// appendMarkerBatch encodes the entries of items (all but the last, whose
// marker row names it) for MarkerBatchTable: a count, then each seq as a
// delta from the one before, prev and GTID.
func appendMarkerBatch(dst []byte, items []*applyItem) []byte {
	var e pipe.Encoder
	e.Uvarint(uint64(len(items)))
	var last uint64
	for _, it := range items {
		e.Uvarint(it.t.Seq - last)
		e.Uvarint(it.prev)
		e.String(it.t.GTID)
		last = it.t.Seq
	}
	return append(dst, e.Buf()...)
}

// decodeMarkerBatch decodes appendMarkerBatch's encoding. Entries come out
// in increasing seq order; anything else is an error.
func decodeMarkerBatch(b []byte) ([]markerEntry, error) {
	d := pipe.NewDecoder(b)
	// An entry takes at least 3 bytes.
	n := d.Int(min(markerBatchMax, d.Remaining()/3), "entries")
	out := make([]markerEntry, 0, n)
	var seq uint64
	for i := 0; i < n && d.Err() == nil; i++ {
		delta := d.Uvarint()
		prev := d.Uvarint()
		gtid := d.String(255)
		if d.Err() != nil {
			break
		}
		if delta == 0 || seq+delta < seq {
			d.Fail("entry %d: seq does not increase", i)
			break
		}
		seq += delta
		out = append(out, markerEntry{seq: seq, prev: prev, gtid: gtid})
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return out, nil
}

// markerChain sorts entries by seq, an anchor (prev 0) before any other
// entry of the same seq, and drops such duplicates: a prune writes an
// anchor row for a checkpoint that a batch also lists (see Applier.prune).
func markerChain(ms []markerEntry) []markerEntry {
	slices.SortFunc(ms, func(a, b markerEntry) int {
		switch {
		case a.seq != b.seq:
			if a.seq < b.seq {
				return -1
			}
			return 1
		case a.prev == 0 && b.prev != 0:
			return -1
		case b.prev == 0 && a.prev != 0:
			return 1
		}
		return 0
	})
	return slices.CompactFunc(ms, func(a, b markerEntry) bool { return a.seq == b.seq })
}
