package binlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandemhost/tandem/pipe"
)

// The wire form of a Txn, in pipe's codec (varints, length-prefixed
// strings), version 1:
//
//	version    byte (1)
//	origin     string
//	gtid       string
//	seq        uvarint
//	time       varint unix seconds, uvarint nanoseconds
//	ddl        byte 0 | 1 [schema string, statement bytes]
//	rows       uvarint count, then each row:
//	  op       byte (Insert, Update, Delete)
//	  table    uvarint: index of an earlier table definition, or the
//	           number of definitions so far, followed by a new one:
//	           schema string, table string, column count, each column
//	           (name, type, charset strings), key count, key indexes
//	  images   byte: 1 before present | 2 after present, then the
//	           before image's values, then the after image's, each value
//	           a kind byte followed by its field (varint I, uvarint U,
//	           8-byte IEEE bits F, length-prefixed S or B; nothing for Null)
//
// Rows of one table share one definition, so a bulk change costs little
// more than its values.

// Limits on a decoded Txn. A frame beyond them is refused as malformed.
const (
	// MaxTxnBytes bounds one encoded Txn. A source transaction larger than
	// this cannot be replicated; split it on the source.
	MaxTxnBytes  = pipe.LimitMaxFrame - 1024
	maxNameBytes = 1024 // identifiers: 64 characters in MySQL, up to 4 bytes each, with room
	maxTypeBytes = 1024
	maxColumns   = 4096 // MySQL's and MariaDB's limit per table
	maxTables    = 65536
	// maxValues bounds the values of one Txn, so a small frame of NULLs
	// cannot make the decoder allocate gigabytes (a Value is 72 bytes).
	maxValues   = 1 << 24
	wireVersion = 1
	imageBefore = 1
	imageAfter  = 2
)

// AppendTxn appends t's wire form to b and returns the extended slice.
// t must satisfy the Txn contract (see DecodeTxn for what is checked); it
// is not modified or retained.
func AppendTxn(b []byte, t *Txn) []byte {
	w := wireWriter{buf: b}
	w.byte(wireVersion)
	w.str(t.Origin)
	w.str(t.GTID)
	w.uvarint(t.Seq)
	w.varint(t.Time.Unix())
	w.uvarint(uint64(t.Time.Nanosecond()))
	if t.DDL != nil {
		w.byte(1)
		w.str(t.DDL.Schema)
		w.str(t.DDL.Statement)
	} else {
		w.byte(0)
	}
	w.uvarint(uint64(len(t.Rows)))
	// Rows of one table share a definition: found by the identity of its
	// slices (the Tailer shares them), else by content.
	type tableKey struct {
		cols *Column
		n    int
		key  *int
		nkey int
		s, t string
	}
	tables := map[tableKey]int{}
	byContent := map[string]int{}
	var content []byte
	for i := range t.Rows {
		r := &t.Rows[i]
		w.byte(byte(r.Op))
		k := tableKey{n: len(r.Columns), nkey: len(r.Key), s: r.Schema, t: r.Table}
		if len(r.Columns) > 0 {
			k.cols = &r.Columns[0]
		}
		if len(r.Key) > 0 {
			k.key = &r.Key[0]
		}
		idx, ok := tables[k]
		if !ok {
			content = appendTableDef(content[:0], r)
			if idx, ok = byContent[string(content)]; ok {
				tables[k] = idx
			}
		}
		if ok {
			w.uvarint(uint64(idx))
		} else {
			idx = len(byContent)
			tables[k] = idx
			byContent[string(content)] = idx
			w.uvarint(uint64(idx))
			w.buf = append(w.buf, content...)
		}
		var images byte
		if r.Before != nil {
			images |= imageBefore
		}
		if r.After != nil {
			images |= imageAfter
		}
		w.byte(images)
		for _, img := range [2][]Value{r.Before, r.After} {
			for _, v := range img {
				w.value(v)
			}
		}
	}
	return w.buf
}

// appendTableDef appends the wire form of r's table definition.
func appendTableDef(b []byte, r *Row) []byte {
	w := wireWriter{buf: b}
	w.str(r.Schema)
	w.str(r.Table)
	w.uvarint(uint64(len(r.Columns)))
	for _, c := range r.Columns {
		w.str(c.Name)
		w.str(c.Type)
		w.str(c.Charset)
	}
	w.uvarint(uint64(len(r.Key)))
	for _, k := range r.Key {
		w.uvarint(uint64(k))
	}
	return w.buf
}

// wireWriter appends in pipe.Encoder's encoding (encoding/binary
// varints, uvarint-length-prefixed strings, big-endian fixed integers)
// straight to the caller's slice, which pipe.Encoder cannot.
type wireWriter struct{ buf []byte }

func (w *wireWriter) byte(c byte)      { w.buf = append(w.buf, c) }
func (w *wireWriter) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *wireWriter) varint(v int64)   { w.buf = binary.AppendVarint(w.buf, v) }
func (w *wireWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}
func (w *wireWriter) bytes(b []byte) {
	w.uvarint(uint64(len(b)))
	w.buf = append(w.buf, b...)
}

func (w *wireWriter) value(v Value) {
	w.byte(byte(v.Kind))
	switch v.Kind {
	case Int:
		w.varint(v.I)
	case Uint:
		w.uvarint(v.U)
	case Float, Double:
		w.buf = binary.BigEndian.AppendUint64(w.buf, math.Float64bits(v.F))
	case Text, Bytes:
		w.bytes(v.B)
	case Null:
	default:
		w.str(v.S)
	}
}

// DecodeTxn decodes a Txn that AppendTxn encoded. The Txn does not alias
// b. Every malformed input is an error wrapping pipe.ErrMalformed: more
// than MaxTxnBytes, a truncated or trailing field, an unknown version, Op
// or Kind, a name (origin, GTID, schema, table, column) empty, not valid
// UTF-8 or holding NUL, counts beyond the limits or the bytes present, a
// key index or table reference out of range, an image missing or present
// against its Op or with the wrong number of values, a Txn with neither
// rows nor DDL.
//
// It runs for every transaction a catch-up receives, so it allocates
// little: the values of all images share a few backing arrays, and the
// strings of a small frame share one copy of it (see wireReader).
func DecodeTxn(b []byte) (*Txn, error) {
	var dec txnDecoder
	return dec.decode(b)
}

// txnDecoder decodes a stream's Txns (see DecodeTxn), remembering the
// table definitions it has decoded: a stream repeats the same few in
// every transaction, and checking their names and allocating their
// columns again took a good part of a catch-up's decoding. The Txns of
// one decoder share the Columns and Key slices of a table (as the
// Tailer's do); nobody modifies them. The zero txnDecoder remembers
// nothing; newTxnDecoder's does. Not safe for concurrent use.
type txnDecoder struct {
	// tables maps the wire form of a definition (from its schema to its
	// last key index) to it, decoded and checked.
	tables map[string]wireTable
}

func newTxnDecoder() *txnDecoder {
	return &txnDecoder{tables: map[string]wireTable{}}
}

// txnDecoderTables bounds the definitions a txnDecoder remembers; past
// it, it forgets them all (a peer may send endless different ones).
const txnDecoderTables = 256

// wireTable is a table definition decoded off the wire.
type wireTable struct {
	schema, table string
	cols          []Column
	key           []int
}

func (dec *txnDecoder) decode(b []byte) (*Txn, error) {
	if len(b) > MaxTxnBytes {
		return nil, fmt.Errorf("%w: transaction of %d bytes exceeds the %d-byte limit", pipe.ErrMalformed, len(b), MaxTxnBytes)
	}
	b = bytes.Clone(b) // values alias this copy, not the caller's buffer
	var w wireReader
	w.init(b)
	d := &w.d
	if v := d.Uint8(); d.Err() == nil && v != wireVersion {
		d.Fail("transaction wire version %d, want %d (the peer runs another tandem version)", v, wireVersion)
	}
	t := &Txn{}
	t.Origin = w.name("origin")
	t.GTID = w.name("gtid")
	t.Seq = d.Uvarint()
	sec := d.Varint()
	nsec := d.UvarintMax(999_999_999, "nanoseconds")
	if d.Err() == nil {
		t.Time = time.Unix(sec, int64(nsec)).UTC()
	}
	if d.Bool() {
		t.DDL = &DDL{Schema: w.str(maxNameBytes), Statement: w.sub(d.Bytes(MaxTxnBytes))}
		if d.Err() == nil && t.DDL.Statement == "" {
			d.Fail("empty DDL statement")
		}
	}
	// A row takes at least 4 bytes (op, table, images, and a value's kind).
	nrows := d.Int(d.Remaining()/4, "row count")
	if d.Err() == nil && nrows == 0 && t.DDL == nil {
		d.Fail("transaction with neither rows nor DDL")
	}
	if nrows > 0 {
		t.Rows = make([]Row, 0, nrows)
	}
	var tablesSmall [4]wireTable // a transaction touches a table or few
	tables := tablesSmall[:0]
	nvalues := 0
	for i := 0; i < nrows && d.Err() == nil; i++ {
		var r Row
		r.Op = Op(d.Uint8())
		if d.Err() == nil && (r.Op < Insert || r.Op > Delete) {
			d.Fail("row %d: op %d", i, r.Op)
			break
		}
		ref := d.Int(min(len(tables), maxTables), "table reference")
		if d.Err() != nil {
			break
		}
		if ref == len(tables) {
			td, ok := dec.known(&w)
			if !ok {
				start := len(b) - d.Remaining()
				td = w.table()
				if d.Err() == nil {
					dec.remember(b[start:len(b)-d.Remaining()], td)
				}
			}
			tables = append(tables, td)
		}
		if d.Err() != nil {
			break
		}
		td := &tables[ref]
		r.Schema, r.Table, r.Columns, r.Key = td.schema, td.table, td.cols, td.key
		images := d.Uint8()
		want := byte(imageBefore | imageAfter)
		switch r.Op {
		case Insert:
			want = imageAfter
		case Delete:
			want = imageBefore
		}
		if d.Err() == nil && images != want {
			d.Fail("row %d: %s with images %#x, want %#x", i, r.Op, images, want)
			break
		}
		// The images' values come from the txn-wide arrays; a guess of
		// what the rest of the frame needs saves growing them per row.
		nimg := 1
		if r.Op == Update {
			nimg = 2
		}
		hint := nimg * len(r.Columns) * (nrows - i)
		for _, img := range [2]struct {
			bit byte
			dst *[]Value
		}{{imageBefore, &r.Before}, {imageAfter, &r.After}} {
			if images&img.bit == 0 {
				continue
			}
			if nvalues += len(r.Columns); nvalues > maxValues {
				d.Fail("more than %d values in one transaction", maxValues)
				break
			}
			*img.dst = w.values(len(r.Columns), hint)
		}
		t.Rows = append(t.Rows, r)
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("decode transaction: %w", err)
	}
	return t, nil
}

// table reads a table definition (see AppendTxn), checking it.
func (w *wireReader) table() wireTable {
	d := &w.d
	td := wireTable{schema: w.name("schema"), table: w.name("table")}
	ncols := d.Int(min(maxColumns, d.Remaining()/3), "column count")
	if d.Err() == nil && ncols == 0 {
		d.Fail("table %s.%s with no columns", td.schema, td.table)
	}
	td.cols = make([]Column, ncols)
	for c := 0; c < ncols && d.Err() == nil; c++ {
		td.cols[c] = Column{Name: w.name("column name"), Type: w.str(maxTypeBytes), Charset: w.str(maxNameBytes)}
	}
	nkey := d.Int(ncols, "key column count")
	if nkey > 0 {
		td.key = make([]int, 0, nkey)
	}
	// Which columns are already in the key: on the stack for
	// the usual table (a map per table showed in profiles).
	var seenSmall [64]bool
	seen := seenSmall[:]
	if ncols > len(seenSmall) {
		seen = make([]bool, ncols)
	}
	for k := 0; k < nkey && d.Err() == nil; k++ {
		idx := d.Int(ncols-1, "key column index")
		if d.Err() != nil {
			break
		}
		if seen[idx] {
			d.Fail("key column %d twice", idx)
		}
		seen[idx] = true
		td.key = append(td.key, idx)
	}
	return td
}

// known returns the definition w is at when the decoder has decoded the
// same bytes before, having read past them.
func (dec *txnDecoder) known(w *wireReader) (wireTable, bool) {
	if len(dec.tables) == 0 {
		return wireTable{}, false
	}
	start := len(w.buf) - w.d.Remaining()
	n := wireTableLen(w.buf[start:])
	if n < 0 {
		return wireTable{}, false // malformed: decoding it reports why
	}
	td, ok := dec.tables[string(w.buf[start:start+n])]
	if ok {
		w.d.Fixed(n)
	}
	return td, ok
}

// remember keeps td, decoded and checked from the wire form def, for
// known. Its strings are copied: they may be cut from a frame, which the
// decoder should not keep alive.
func (dec *txnDecoder) remember(def []byte, td wireTable) {
	if dec.tables == nil {
		return // the zero decoder
	}
	if len(dec.tables) >= txnDecoderTables {
		clear(dec.tables)
	}
	td.schema, td.table = strings.Clone(td.schema), strings.Clone(td.table)
	cols := make([]Column, len(td.cols))
	for i, c := range td.cols {
		cols[i] = Column{Name: strings.Clone(c.Name), Type: strings.Clone(c.Type), Charset: strings.Clone(c.Charset)}
	}
	td.cols = cols
	dec.tables[string(def)] = td
}

// wireTableLen returns the length of the table definition b starts with,
// read without checking its names; -1 when it is truncated or a count is
// out of range.
func wireTableLen(b []byte) int {
	d := pipe.NewDecoder(b)
	d.Bytes(maxNameBytes)
	d.Bytes(maxNameBytes)
	ncols := d.Int(maxColumns, "column count")
	for c := 0; c < ncols && d.Err() == nil; c++ {
		d.Bytes(maxNameBytes)
		d.Bytes(maxTypeBytes)
		d.Bytes(maxNameBytes)
	}
	nkey := d.Int(ncols, "key column count")
	for k := 0; k < nkey && d.Err() == nil; k++ {
		d.Uvarint()
	}
	if d.Err() != nil {
		return -1
	}
	return len(b) - d.Remaining()
}

// wireSharedMax is the largest frame whose strings DecodeTxn takes from
// one string copy of the whole frame (one allocation for all of them)
// rather than copying each: that copy doubles what a frame holds in
// memory, which only a small frame (a catch-up's usual transaction) may
// spend.
const wireSharedMax = 64 << 10

// wireReader reads DecodeTxn's fields: a pipe.Decoder over the frame's
// private copy buf, which byte values alias, plus the allocation-saving
// state.
type wireReader struct {
	d   pipe.Decoder
	buf []byte
	// all is string(buf) for a frame up to wireSharedMax, else "": then
	// strings are copied one by one.
	all string
	// vals is the unused tail of the array images' values are cut from.
	vals []Value
}

func (w *wireReader) init(b []byte) {
	w.d, w.buf = *pipe.NewDecoder(b), b
	if len(b) <= wireSharedMax {
		w.all = string(b)
	}
}

// sub returns p, which the decoder just read (it ends at the decoder's
// offset), as a string: a substring of all when there is one.
func (w *wireReader) sub(p []byte) string {
	if w.all == "" || len(p) == 0 {
		return string(p)
	}
	end := len(w.buf) - w.d.Remaining()
	return w.all[end-len(p) : end]
}

// str reads a length-prefixed string of at most max bytes that must be
// valid UTF-8 with no NUL byte: pipe.Decoder.String, with its errors, but
// without copying (see sub).
func (w *wireReader) str(max int) string {
	p := w.d.Bytes(max)
	if w.d.Err() != nil {
		return ""
	}
	if !utf8.Valid(p) {
		w.d.Fail("string is not valid UTF-8")
		return ""
	}
	if bytes.IndexByte(p, 0) >= 0 {
		w.d.Fail("string contains NUL")
		return ""
	}
	return w.sub(p)
}

// name reads a non-empty identifier.
func (w *wireReader) name(what string) string {
	s := w.str(maxNameBytes)
	if w.d.Err() == nil && s == "" {
		w.d.Fail("empty %s", what)
	}
	return s
}

// values reads an image of n values. Its slice is cut from a shared array
// (capped, so that appending to it cannot reach a neighbour); hint is how
// many values the rest of the frame probably needs, for the size of a new
// array.
func (w *wireReader) values(n, hint int) []Value {
	d := &w.d
	if d.Err() != nil || n > d.Remaining() { // a value takes at least its kind byte
		d.Fail("truncated: %d values in %d bytes", n, d.Remaining())
		return nil
	}
	if len(w.vals) < n {
		// Each value takes at least a byte, so the array is at most
		// the frame's size in values, as it was per image.
		w.vals = make([]Value, max(n, min(hint, d.Remaining())))
	}
	vs := w.vals[:n:n]
	w.vals = w.vals[n:]
	for i := range vs {
		v := &vs[i]
		v.Kind = Kind(d.Uint8())
		switch v.Kind {
		case Null:
		case Int:
			v.I = d.Varint()
		case Uint:
			v.U = d.Uvarint()
		case Float, Double:
			v.F = math.Float64frombits(d.Uint64())
		case Text, Bytes:
			v.B = d.Bytes(MaxTxnBytes)
		case Decimal, Date, DateTime, Timestamp, Time, Enum, Set, JSON:
			v.S = w.sub(d.Bytes(MaxTxnBytes))
		default:
			d.Fail("value kind %d", v.Kind)
		}
		if d.Err() != nil {
			return nil
		}
	}
	return vs
}
