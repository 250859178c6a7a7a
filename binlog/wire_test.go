package binlog

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/pipe"
)

// txnDiff describes the first difference between two Txns, "" if equal
// (floats compared by bits, nil and empty byte slices alike).
func txnDiff(a, b *Txn) string {
	if a.Origin != b.Origin || a.GTID != b.GTID || a.Seq != b.Seq || !a.Time.Equal(b.Time) {
		return fmt.Sprintf("header %q %q %d %v vs %q %q %d %v", a.Origin, a.GTID, a.Seq, a.Time, b.Origin, b.GTID, b.Seq, b.Time)
	}
	if (a.DDL == nil) != (b.DDL == nil) || a.DDL != nil && *a.DDL != *b.DDL {
		return fmt.Sprintf("DDL %v vs %v", a.DDL, b.DDL)
	}
	if len(a.Rows) != len(b.Rows) {
		return fmt.Sprintf("%d rows vs %d", len(a.Rows), len(b.Rows))
	}
	for i := range a.Rows {
		ra, rb := &a.Rows[i], &b.Rows[i]
		if ra.Op != rb.Op || ra.Schema != rb.Schema || ra.Table != rb.Table || !slices.Equal(ra.Columns, rb.Columns) || !slices.Equal(ra.Key, rb.Key) {
			return fmt.Sprintf("row %d: %s %s.%s %v key %v vs %s %s.%s %v key %v", i, ra.Op, ra.Schema, ra.Table, ra.Columns, ra.Key, rb.Op, rb.Schema, rb.Table, rb.Columns, rb.Key)
		}
		for _, img := range [][2][]Value{{ra.Before, rb.Before}, {ra.After, rb.After}} {
			if (img[0] == nil) != (img[1] == nil) || len(img[0]) != len(img[1]) {
				return fmt.Sprintf("row %d: image %v vs %v", i, img[0], img[1])
			}
			for j := range img[0] {
				if !valueEqual(img[0][j], img[1][j]) {
					return fmt.Sprintf("row %d column %d: %s vs %s", i, j, fmtValue(img[0][j]), fmtValue(img[1][j]))
				}
			}
		}
	}
	return ""
}

// wireSamples are Txns that exercise the encoding: the golden file's and
// some made by hand.
func wireSamples(t testing.TB) []*Txn {
	cols := []Column{{Name: "id", Type: "int"}, {Name: "v", Type: "varchar(10)", Charset: "utf8mb4"}}
	other := []Column{{Name: "k1", Type: "bigint unsigned"}, {Name: "k2", Type: "double"}, {Name: "é", Type: "json"}}
	hand := []*Txn{
		{Origin: "beta", GTID: "0-2-9", Seq: 9, Time: time.Unix(1700000000, 0).UTC(), DDL: &DDL{Schema: "shop", Statement: "ALTER TABLE t ADD c INT"}},
		{Origin: "b", GTID: "3E11FA47-71CA-11E1-9E33-C80AA9429562:42", Seq: math.MaxUint64, Time: time.Time{}, Rows: []Row{
			{Op: Insert, Schema: "s", Table: "t", Columns: cols, Key: []int{0}, After: []Value{I(math.MinInt64), B(Text, "")}},
			{Op: Update, Schema: "s", Table: "u", Columns: other, Key: []int{1, 0},
				Before: []Value{U(math.MaxUint64), {Kind: Double, F: math.NaN()}, S(JSON, `{"a":1}`)},
				After:  []Value{null, {Kind: Double, F: math.Inf(-1)}, S(JSON, "")}},
			{Op: Delete, Schema: "s", Table: "t", Columns: cols, Key: []int{0}, Before: []Value{I(0), B(Text, "\x00\xff")}},
			{Op: Insert, Schema: "s", Table: "t", Columns: cols, After: []Value{{Kind: Float, F: float64(float32(0.1))}, B(Bytes, "x")}},
		}},
		{Origin: "a", GTID: "0-1-1", Seq: 1, Time: time.Unix(-1, 999999999).UTC(), DDL: &DDL{Statement: "CREATE TABLE s.t SELECT 1"}, Rows: []Row{
			{Op: Insert, Schema: "s", Table: "t", Columns: cols, After: []Value{S(Decimal, "-1.50"), S(Date, "2024-01-01")}},
		}},
	}
	var all []*Txn
	for _, k := range []Kind{DateTime, Timestamp, Time, Enum, Set} {
		hand[2].Rows = append(hand[2].Rows, Row{Op: Insert, Schema: "s", Table: "t", Columns: cols, After: []Value{S(k, k.String()), null}})
	}
	all = append(all, hand...)
	return append(all, parseBinlogFile(t, goldenBinlog)...)
}

func TestWireRoundTrip(t *testing.T) {
	for i, x := range wireSamples(t) {
		b := AppendTxn([]byte("prefix"), x)
		if string(b[:6]) != "prefix" {
			t.Fatalf("AppendTxn overwrote the slice it appends to")
		}
		got, err := DecodeTxn(b[6:])
		if err != nil {
			t.Fatalf("sample %d (%s): DecodeTxn(AppendTxn(x)) = %v", i, x.GTID, err)
		}
		if d := txnDiff(x, got); d != "" {
			t.Errorf("sample %d (%s): round trip differs: %s", i, x.GTID, d)
		}
		clear(b) // the decoded Txn must not alias the buffer
		if d := txnDiff(x, got); d != "" {
			t.Errorf("sample %d (%s): decoded Txn changed with its input buffer: %s", i, x.GTID, d)
		}
		// Every truncation is an error, never a panic or a short Txn.
		enc := AppendTxn(nil, x)
		for n := 0; n < len(enc); n++ {
			if _, err := DecodeTxn(enc[:n]); err == nil {
				t.Fatalf("sample %d: DecodeTxn of the first %d of %d bytes succeeded", i, n, len(enc))
			}
		}
	}
}

// TestTxnDecoderRemembers checks that a stream's decoder, which skips
// checking the table definitions it has seen, decodes every sample (and
// every truncation of one) as DecodeTxn does.
func TestTxnDecoderRemembers(t *testing.T) {
	dec := newTxnDecoder()
	samples := wireSamples(t)
	for round := 0; round < 2; round++ {
		for i, x := range samples {
			enc := AppendTxn(nil, x)
			got, err := dec.decode(enc)
			if err != nil {
				t.Fatalf("round %d sample %d (%s): decode = %v", round, i, x.GTID, err)
			}
			if d := txnDiff(x, got); d != "" {
				t.Errorf("round %d sample %d (%s): round trip differs: %s", round, i, x.GTID, d)
			}
			for n := 0; n < len(enc); n++ {
				_, want := DecodeTxn(enc[:n])
				if _, err := dec.decode(enc[:n]); fmt.Sprint(err) != fmt.Sprint(want) {
					t.Fatalf("round %d sample %d: decode of the first %d of %d bytes = %v, DecodeTxn's = %v", round, i, n, len(enc), err, want)
				}
			}
		}
	}
	if len(dec.tables) == 0 {
		t.Errorf("the decoder remembers no table")
	}
}

func TestWireSize(t *testing.T) {
	// Rows of one table share its definition: 1000 small rows cost about
	// their values, not 1000 copies of the column names.
	cols := []Column{{Name: "id", Type: "int"}, {Name: "name", Type: "varchar(100)", Charset: "utf8mb4"}}
	x := &Txn{Origin: "alpha", GTID: "0-1-5", Seq: 5}
	for i := 0; i < 1000; i++ {
		x.Rows = append(x.Rows, Row{Op: Insert, Schema: "shop", Table: "customers", Columns: cols, Key: []int{0}, After: []Value{I(int64(i)), B(Text, "abc")}})
	}
	if n := len(AppendTxn(nil, x)); n > 12*1000 {
		t.Errorf("1000 two-column rows encode to %d bytes, want at most 12000", n)
	}
}

func TestDecodeTxnMalformed(t *testing.T) {
	// header writes a valid header; rows follow.
	header := func(w *wireWriter, origin, gtid string) {
		w.byte(wireVersion)
		w.str(origin)
		w.str(gtid)
		w.uvarint(1)
		w.varint(0)
		w.uvarint(0)
		w.byte(0)
	}
	table := func(w *wireWriter, ncols int, names ...string) {
		w.str("s")
		w.str("t")
		w.uvarint(uint64(ncols))
		for i := 0; i < ncols; i++ {
			n := "c" + fmt.Sprint(i)
			if i < len(names) {
				n = names[i]
			}
			w.str(n)
			w.str("int")
			w.str("")
		}
	}
	build := func(f func(w *wireWriter)) []byte {
		var w wireWriter
		f(&w)
		return w.buf
	}
	oneRow := func(mod func(w *wireWriter, part string) bool) []byte {
		return build(func(w *wireWriter) {
			header(w, "a", "0-1-1")
			w.uvarint(1)
			if !mod(w, "op") {
				w.byte(byte(Insert))
			}
			if !mod(w, "table") {
				w.uvarint(0)
				table(w, 1)
			}
			if !mod(w, "key") {
				w.uvarint(1)
				w.uvarint(0)
			}
			if !mod(w, "images") {
				w.byte(imageAfter)
			}
			if !mod(w, "value") {
				w.byte(byte(Int))
				w.varint(5)
			}
			mod(w, "end")
		})
	}
	valid := oneRow(func(*wireWriter, string) bool { return false })
	if _, err := DecodeTxn(valid); err != nil {
		t.Fatalf("the valid base case fails: %v", err)
	}
	cases := []struct {
		name, want string
		in         []byte
	}{
		{"empty", "truncated", nil},
		{"version", "wire version 9", []byte{9}},
		{"too large", "exceeds the", make([]byte, MaxTxnBytes+1)},
		{"empty origin", "empty origin", build(func(w *wireWriter) { header(w, "", "g") })},
		{"origin not UTF-8", "UTF-8", build(func(w *wireWriter) { header(w, "\xff", "g") })},
		{"NUL in gtid", "NUL", build(func(w *wireWriter) { header(w, "a", "0\x001") })},
		{"nothing", "neither rows nor DDL", build(func(w *wireWriter) { header(w, "a", "g"); w.uvarint(0) })},
		{"nanoseconds", "nanoseconds", build(func(w *wireWriter) {
			w.byte(wireVersion)
			w.str("a")
			w.str("g")
			w.uvarint(1)
			w.varint(0)
			w.uvarint(1e9)
		})},
		{"ddl flag", "bool out of range", build(func(w *wireWriter) {
			w.byte(wireVersion)
			w.str("a")
			w.str("g")
			w.uvarint(1)
			w.varint(0)
			w.uvarint(0)
			w.byte(2)
		})},
		{"empty ddl", "empty DDL", build(func(w *wireWriter) {
			w.byte(wireVersion)
			w.str("a")
			w.str("g")
			w.uvarint(1)
			w.varint(0)
			w.uvarint(0)
			w.byte(1)
			w.str("")
			w.str("")
			w.uvarint(0)
		})},
		{"row count beyond bytes", "row count", build(func(w *wireWriter) { header(w, "a", "g"); w.uvarint(1 << 40) })},
		{"op", "op 4", oneRow(func(w *wireWriter, p string) bool {
			if p == "op" {
				w.byte(4)
			}
			return p == "op"
		})},
		{"table reference", "table reference", oneRow(func(w *wireWriter, p string) bool {
			if p == "table" {
				w.uvarint(1)
			}
			return p == "table" || p == "key"
		})},
		{"no columns", "no columns", oneRow(func(w *wireWriter, p string) bool {
			if p == "table" {
				w.uvarint(0)
				table(w, 0)
			}
			return p == "table"
		})},
		{"empty column name", "empty column name", oneRow(func(w *wireWriter, p string) bool {
			if p == "table" {
				w.uvarint(0)
				table(w, 1, "")
			}
			return p == "table"
		})},
		{"too many columns", "column count", oneRow(func(w *wireWriter, p string) bool {
			if p == "table" {
				w.uvarint(0)
				w.str("s")
				w.str("t")
				w.uvarint(maxColumns + 1)
			}
			return p == "table"
		})},
		{"key index", "key column index", oneRow(func(w *wireWriter, p string) bool {
			if p == "key" {
				w.uvarint(1)
				w.uvarint(1)
			}
			return p == "key"
		})},
		{"key twice", "key column count", oneRow(func(w *wireWriter, p string) bool {
			if p == "key" {
				w.uvarint(2)
				w.uvarint(0)
				w.uvarint(0)
			}
			return p == "key"
		})},
		{"images against op", "insert with images 0x3", oneRow(func(w *wireWriter, p string) bool {
			if p == "images" {
				w.byte(imageBefore | imageAfter)
			}
			return p == "images"
		})},
		{"kind", "value kind 15", oneRow(func(w *wireWriter, p string) bool {
			if p == "value" {
				w.byte(15)
			}
			return p == "value"
		})},
		{"trailing", "1 trailing bytes", oneRow(func(w *wireWriter, p string) bool {
			if p == "end" {
				w.byte(0)
			}
			return p == "end"
		})},
		{"value beyond bytes", "exceeds", oneRow(func(w *wireWriter, p string) bool {
			if p == "value" {
				w.byte(byte(Text))
				w.uvarint(100)
			}
			return p == "value"
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, err := DecodeTxn(c.in)
			if err == nil {
				t.Fatalf("DecodeTxn = %+v, want an error containing %q", x, c.want)
			}
			if !errors.Is(err, pipe.ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("DecodeTxn error = %v, want pipe.ErrMalformed containing %q", err, c.want)
			}
		})
	}
}

func FuzzDecodeTxn(f *testing.F) {
	for _, x := range wireSamples(f) {
		f.Add(AppendTxn(nil, x))
	}
	// A stream's decoder that has seen some tables, and b's own, must
	// decode b alike: the first samples prime it (the golden file's would
	// slow the fuzzing down).
	var primers [][]byte
	for _, x := range wireSamples(f)[:3] {
		primers = append(primers, AppendTxn(nil, x))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeTxn(b)
		dec := newTxnDecoder()
		for _, p := range primers {
			if _, err := dec.decode(p); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			y, yerr := dec.decode(b)
			if fmt.Sprint(yerr) != fmt.Sprint(err) {
				t.Fatalf("stream decoder: %v, DecodeTxn: %v", yerr, err)
			}
			if err == nil {
				if d := txnDiff(x, y); d != "" {
					t.Fatalf("stream decoder differs: %s", d)
				}
			}
		}
		if err != nil {
			if !errors.Is(err, pipe.ErrMalformed) {
				t.Fatalf("DecodeTxn error %v does not wrap pipe.ErrMalformed", err)
			}
			return
		}
		again, err := DecodeTxn(AppendTxn(nil, x))
		if err != nil {
			t.Fatalf("DecodeTxn(AppendTxn(DecodeTxn(b))) = %v", err)
		}
		if d := txnDiff(x, again); d != "" {
			t.Fatalf("round trip differs: %s", d)
		}
	})
}
