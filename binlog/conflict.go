package binlog

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/conflict"
)

// LocalClock tells when this node's own server last changed a row: the
// commit time (Txn.Time) of the newest local transaction that wrote it,
// and whether it is known at all. The "newer" rule compares it with the
// incoming transaction's time. RecentWrites implements it.
type LocalClock interface {
	LastWrite(schema, table string, key []Value) (time.Time, bool)
}

var _ LocalClock = (*RecentWrites)(nil)

// RecentWrites remembers the commit times of the local server's latest row
// writes, for the "newer" rule: the engine feeds it every local
// transaction the tailer reads (Observe), the applier asks it (LastWrite).
// It holds at most a fixed number of rows; older ones are forgotten first.
//
// What happens when it does not know a row (written before the daemon
// started, or forgotten): the local version counts as older than any
// incoming change, so the incoming change wins. In the common case that is
// what the peer decides too: a row conflict needs a local write the peer
// had not seen when it wrote; a write old enough to be forgotten here was
// long since replicated, so on the peer's side the incoming (our old)
// change is older than its own and it keeps its own, which is also what we
// apply. The gap: after a partition long enough for this node to forget a
// write that is in fact newer than the peer's conflicting one, this node
// takes the peer's version while the peer, which still knows its own
// write's time, takes ours; the nodes then differ on that row. Both
// versions are in both conflict logs, so an operator can settle it; a
// larger capacity narrows the window (each row costs about 100 bytes).
// The same holds across a restart of the daemon, which starts empty.
type RecentWrites struct {
	mu   sync.Mutex // guards the fields below
	max  int
	seed [2]maphash.Seed
	at   map[rowHash]recentWrite
	ring []rowHash // keys in the order written; ring[next] is overwritten next
	next int
	n    uint64
}

// rowHash identifies a row in RecentWrites: two independent 64-bit hashes
// of its rowKey bytes (a wrong match needs both to collide: about 2^-128
// for a pair of rows). Neither it nor recentWrite holds a pointer, so the
// garbage collector does not scan the table, which holds a quarter of a
// million rows: with string keys, scanning it and allocating the keys cost
// the sending daemon 7% of its CPU on a catch-up.
type rowHash [2]uint64

type recentWrite struct {
	sec  int64 // the commit time, as time.Unix(sec, nsec)
	nsec int32
	n    uint64 // which write; the ring slot that holds it forgets it
}

// NewRecentWrites returns a RecentWrites holding up to max rows (at least
// 1).
func NewRecentWrites(max int) *RecentWrites {
	if max < 1 {
		max = 1
	}
	return &RecentWrites{max: max, seed: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, at: map[rowHash]recentWrite{}}
}

// hash returns the identity of the row whose key values (in key order;
// the whole image for a table without a key) are vals.
func (w *RecentWrites) hash(schema, table string, key []int, img []Value) rowHash {
	var buf [256]byte
	b := rowKeyAppendTable(buf[:0], schema, table)
	if len(key) == 0 {
		for _, v := range img {
			b = rowKeyAppendValue(b, v)
		}
	} else {
		for _, k := range key {
			b = rowKeyAppendValue(b, img[k])
		}
	}
	return rowHash{maphash.Bytes(w.seed[0], b), maphash.Bytes(w.seed[1], b)}
}

// Observe records the rows a local transaction wrote, at its commit time.
func (w *RecentWrites) Observe(t *Txn) {
	if t == nil || len(t.Rows) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	at := recentWrite{sec: t.Time.Unix(), nsec: int32(t.Time.Nanosecond())}
	for i := range t.Rows {
		r := &t.Rows[i]
		var before rowHash
		if r.Before != nil {
			before = w.hash(r.Schema, r.Table, r.Key, r.Before)
			w.put(before, at)
		}
		if r.After != nil {
			if after := w.hash(r.Schema, r.Table, r.Key, r.After); r.Before == nil || after != before {
				w.put(after, at)
			}
		}
	}
}

func (w *RecentWrites) put(key rowHash, at recentWrite) {
	w.n++
	at.n = w.n
	w.at[key] = at
	if len(w.ring) < w.max {
		w.ring = append(w.ring, key)
		return
	}
	old := w.ring[w.next]
	if rw, ok := w.at[old]; ok && rw.n == w.n-uint64(w.max) {
		delete(w.at, old)
	}
	w.ring[w.next] = key
	w.next = (w.next + 1) % w.max
}

// LastWrite returns when the row with the given key values (in key
// order; the whole row image for a table without a key) was last written
// locally, if that is remembered.
func (w *RecentWrites) LastWrite(schema, table string, key []Value) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rw, ok := w.at[w.hash(schema, table, nil, key)]
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(rw.sec, int64(rw.nsec)).UTC(), true
}

// Len reports how many rows are remembered.
func (w *RecentWrites) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.at)
}

// rowKeyOf returns the values that identify a row in img: the key
// columns, or every column for a table without a key.
func rowKeyOf(key []int, img []Value) []Value {
	if len(key) == 0 {
		return img
	}
	out := make([]Value, len(key))
	for i, k := range key {
		out[i] = img[k]
	}
	return out
}

// rowKeyAppendTable and rowKeyAppendValue build a row's identity in a
// table: bytes that are equal for equal key values (applyAppendKey).
func rowKeyAppendTable(b []byte, schema, table string) []byte {
	b = binary.AppendUvarint(b, uint64(len(schema)))
	b = append(b, schema...)
	b = binary.AppendUvarint(b, uint64(len(table)))
	return append(b, table...)
}

func rowKeyAppendValue(b []byte, v Value) []byte {
	b = append(b, byte(v.Kind))
	switch v.Kind {
	case Null:
	case Int:
		b = binary.AppendVarint(b, v.I)
	case Uint:
		b = binary.AppendUvarint(b, v.U)
	case Float, Double:
		b = binary.AppendUvarint(b, math.Float64bits(v.F))
	case Text, Bytes:
		b = binary.AppendUvarint(b, uint64(len(v.B)))
		b = append(b, v.B...)
	default:
		b = binary.AppendUvarint(b, uint64(len(v.S)))
		b = append(b, v.S...)
	}
	return b
}

// rowIncomingWins decides a row conflict between an incoming change (from
// origin, committed there at in) and the row as this node has it (last
// written locally at local, if localKnown). Both nodes compute it with the
// roles swapped and reach the same winner:
//
//   - rule "primary": the current primary's change wins. When neither node
//     is the primary (or none is known), the "newer" rule decides.
//   - rule "newer": the later commit wins; on equal times the greater node
//     name (byte order) wins, as for files. A local write whose time is not
//     known counts as older than the incoming one (see RecentWrites).
func rowIncomingWins(rule, primary, node, origin string, in time.Time, local time.Time, localKnown bool) bool {
	if rule == ConflictPrimary {
		switch primary {
		case origin:
			return true
		case node:
			return false
		}
	}
	if !localKnown {
		return true
	}
	switch {
	case in.After(local):
		return true
	case in.Before(local):
		return false
	}
	return origin > node
}

// applyRow applies one row of t inside conn's open transaction, checking
// the target row first. It returns the conflict entry to log, if the row
// was a conflict.
func (a *Applier) applyRow(ctx context.Context, conn *sql.Conn, t *Txn, r *Row) (*conflict.Entry, error) {
	if len(r.Key) == 0 && r.Op == Insert {
		// Without a key nothing can clash with an insert.
		return nil, a.rowExec(ctx, conn, func(b *strings.Builder) error { return applyInsertSQL(b, r, false, a.mysql) })
	}
	probe := r.Before
	if r.Op == Insert {
		probe = r.After
	}
	cur, sameBefore, sameAfter, err := a.rowLock(ctx, conn, r, probe)
	if err != nil {
		return nil, err
	}
	switch {
	case r.Op == Insert && cur == nil:
		return a.rowExecUnique(ctx, conn, t, r, func(b *strings.Builder) error { return applyInsertSQL(b, r, false, a.mysql) })
	case r.Op == Insert && sameAfter:
		return nil, nil // the same row is there already: nothing differs
	case r.Op == Update && cur != nil && sameBefore:
		return a.rowExecUnique(ctx, conn, t, r, func(b *strings.Builder) error { return applyUpdateSQL(b, r, false, a.mysql) })
	case r.Op == Update && cur != nil && sameAfter && rowSameKey(r):
		return nil, nil // already updated the same way
	case r.Op == Delete && cur != nil && sameBefore:
		return nil, a.rowExec(ctx, conn, func(b *strings.Builder) error { return applyDeleteSQL(b, r, r.Before, false, a.mysql) })
	}

	// A conflict: the target row is missing, present, or different from
	// what the incoming change expects.
	primary := ""
	if a.o.Primary != nil {
		primary = a.o.Primary()
	}
	var local time.Time
	known := false
	if a.o.LocalClock != nil {
		local, known = a.o.LocalClock.LastWrite(r.Schema, r.Table, rowKeyOf(r.Key, probe))
	}
	incoming := rowIncomingWins(a.o.Rule, primary, a.o.Node, t.Origin, t.Time, local, known)
	if incoming {
		if err := a.rowForce(ctx, conn, r, cur != nil); err != nil {
			return nil, err
		}
	}
	winner := a.o.Node
	if incoming {
		winner = t.Origin
	}
	e := &conflict.Entry{
		Kind:   conflict.KindRow,
		Local:  conflict.Version{Node: a.o.Node},
		Remote: conflict.Version{Node: t.Origin},
		Winner: winner,
		Row: &conflict.Row{
			Schema:  r.Schema,
			Table:   r.Table,
			Key:     rowKeyJSON(r, probe),
			Before:  rowImageJSON(r, r.Before),
			After:   rowImageJSON(r, r.After),
			Current: rowRawJSON(r, cur),
		},
	}
	a.log.Warn("row conflict",
		zap.String("schema", r.Schema), zap.String("table", r.Table), zap.Stringer("op", r.Op),
		zap.String("origin", t.Origin), zap.String("gtid", t.GTID), zap.String("winner", winner),
		zap.Bool("local_time_known", known), zap.String("rule", a.o.Rule))
	return e, nil
}

// rowForce makes the incoming change's result hold whatever the target
// row is: the after image upserted (and, when an update moved the key,
// the row at the old key deleted), or the row deleted.
func (a *Applier) rowForce(ctx context.Context, conn *sql.Conn, r *Row, exists bool) error {
	switch r.Op {
	case Delete:
		if !exists {
			return nil
		}
		return a.rowExec(ctx, conn, func(b *strings.Builder) error { return applyDeleteSQL(b, r, r.Before, false, a.mysql) })
	case Update:
		if exists && !rowSameKey(r) {
			if err := a.rowExec(ctx, conn, func(b *strings.Builder) error { return applyDeleteSQL(b, r, r.Before, false, a.mysql) }); err != nil {
				return err
			}
		}
	}
	// Without a key there is no row to replace: the after image is added.
	upsert := len(r.Key) > 0
	return a.rowExec(ctx, conn, func(b *strings.Builder) error { return applyInsertSQL(b, r, upsert, a.mysql) })
}

// rowSameKey reports whether an update keeps the row's key.
func rowSameKey(r *Row) bool {
	if len(r.Key) == 0 {
		return false
	}
	var bb, ab [64]byte
	for _, k := range r.Key {
		if string(rowKeyAppendValue(bb[:0], r.Before[k])) != string(rowKeyAppendValue(ab[:0], r.After[k])) {
			return false
		}
	}
	return true
}

// rowExec builds and runs one statement.
func (a *Applier) rowExec(ctx context.Context, conn *sql.Conn, build func(*strings.Builder) error) error {
	var b strings.Builder
	if err := build(&b); err != nil {
		return err
	}
	_, err := applyExec(ctx, conn, b.String())
	return err
}

// rowLock locks and reads the row identified by img (by key; by the whole
// image without one). cur holds its columns (nil when there is no such
// row; a nil cell is NULL); sameBefore and sameAfter tell whether it
// equals r's before and after images.
func (a *Applier) rowLock(ctx context.Context, conn *sql.Conn, r *Row, img []Value) (cur [][]byte, sameBefore, sameAfter bool, err error) {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i := range r.Columns {
		applyIdent(&b, r.Columns[i].Name) // checked by applyCheckRow
		b.WriteByte(',')
	}
	for _, im := range [][]Value{r.Before, r.After} {
		if im == nil {
			b.WriteString("0,")
			continue
		}
		b.WriteByte('(')
		if err := applyMatch(&b, rowImage{r, im}, true, a.mysql); err != nil {
			return nil, false, false, err
		}
		b.WriteString("),")
	}
	b.WriteString("1 FROM ")
	if err := applyTable(&b, r.Schema, r.Table); err != nil {
		return nil, false, false, err
	}
	b.WriteString(" WHERE ")
	if err := applyMatch(&b, rowImage{r, img}, false, a.mysql); err != nil {
		return nil, false, false, err
	}
	b.WriteString(" LIMIT 1 FOR UPDATE")
	rows, err := conn.QueryContext(ctx, b.String())
	if err != nil {
		return nil, false, false, fmt.Errorf("lock target row: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, false, false, rows.Err()
	}
	cells := make([]sql.RawBytes, len(r.Columns)+3)
	dst := make([]any, len(cells))
	for i := range cells {
		dst[i] = &cells[i]
	}
	if err := rows.Scan(dst...); err != nil {
		return nil, false, false, fmt.Errorf("read target row: %w", err)
	}
	cur = make([][]byte, len(r.Columns))
	for i := range r.Columns {
		if cells[i] != nil {
			cur[i] = append([]byte{}, cells[i]...)
		}
	}
	sameBefore = string(cells[len(r.Columns)]) == "1"
	sameAfter = string(cells[len(r.Columns)+1]) == "1"
	return cur, sameBefore, sameAfter, rows.Err()
}

// logConflict records e in the conflict log.
func (a *Applier) logConflict(e conflict.Entry) error {
	if a.o.Conflicts == nil {
		return nil
	}
	if _, err := a.o.Conflicts.Append(e); err != nil {
		return fmt.Errorf("log row conflict on %s.%s: %w", e.Row.Schema, e.Row.Table, err)
	}
	return nil
}

// The images in the conflict log are JSON objects, column name to value in
// column order: null, a number for integers and floats, a string for text
// (when it is valid UTF-8), decimals, dates, times, enums, sets and JSON,
// and {"hex": "..."} for bytes and other text.

func rowImageJSON(r *Row, img []Value) json.RawMessage {
	if img == nil {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, v := range img {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(r.Columns[i].Name)
		b.Write(name)
		b.WriteByte(':')
		rowValueJSON(&b, v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func rowKeyJSON(r *Row, img []Value) json.RawMessage {
	if len(r.Key) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range r.Key {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(r.Columns[k].Name)
		b.Write(name)
		b.WriteByte(':')
		rowValueJSON(&b, img[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

func rowValueJSON(b *bytes.Buffer, v Value) {
	str := func(s string) {
		q, _ := json.Marshal(s)
		b.Write(q)
	}
	switch v.Kind {
	case Null:
		b.WriteString("null")
	case Int:
		b.WriteString(strconv.FormatInt(v.I, 10))
	case Uint:
		b.WriteString(strconv.FormatUint(v.U, 10))
	case Float, Double:
		if math.IsNaN(v.F) || math.IsInf(v.F, 0) {
			str(strconv.FormatFloat(v.F, 'g', -1, 64))
		} else {
			b.WriteString(strconv.FormatFloat(v.F, 'g', -1, 64))
		}
	case Text:
		if utf8.Valid(v.B) {
			str(string(v.B))
		} else {
			b.WriteString(`{"hex":"` + hex.EncodeToString(v.B) + `"}`)
		}
	case Bytes:
		b.WriteString(`{"hex":"` + hex.EncodeToString(v.B) + `"}`)
	default:
		str(v.S)
	}
}

// rowRawJSON encodes a row read from the server (as text cells).
func rowRawJSON(r *Row, cur [][]byte) json.RawMessage {
	if cur == nil {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range cur {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(r.Columns[i].Name)
		b.Write(name)
		b.WriteByte(':')
		switch {
		case c == nil:
			b.WriteString("null")
		case utf8.Valid(c):
			q, _ := json.Marshal(string(c))
			b.Write(q)
		default:
			b.WriteString(`{"hex":"` + hex.EncodeToString(c) + `"}`)
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}
