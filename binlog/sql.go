package binlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file renders row changes as SQL text for the applier.
//
// Values are written as literals, not as placeholders, so that a whole
// batch of source transactions (marker row and every row change) goes to
// the server as one multi-statement in one round trip. The literals cannot
// inject anything: strings and bytes are hex literals (X'...') behind a
// character set introducer, numbers are formatted by strconv (decimals are
// checked to be plain decimal numbers), temporal values are checked to hold
// only digits and separators, and identifiers are quoted with backticks.
// Each Kind is written so that it round-trips exactly:
//
//	Null               NULL
//	Int, Uint          decimal integer (BIT as a number, YEAR as a number)
//	Float, Double      shortest exact float64 text with an exponent, which
//	                   MySQL reads as a DOUBLE (without one it would be an
//	                   exact DECIMAL literal)
//	Decimal            the exact decimal text, unquoted: a DECIMAL literal
//	Text               _<charset> X'bytes': the bytes as they are, in the
//	                   column's character set, no conversion on the way
//	Bytes              X'bytes'
//	Date, DateTime,    quoted text; the session's time_zone is '+00:00', so a
//	Timestamp, Time    TIMESTAMP is read as UTC
//	Enum, Set, JSON    _utf8mb4 X'name'; by name, never by index
//
// A hex literal is not used where MySQL would read it as a number (numeric
// and temporal contexts): those kinds have their own forms above.

// applyIdent quotes a schema, table or column name.
func applyIdent(b *strings.Builder, name string) error {
	if err := applyIdentOK(name); err != nil {
		return err
	}
	b.WriteByte('`')
	b.WriteString(strings.ReplaceAll(name, "`", "``"))
	b.WriteByte('`')
	return nil
}

// applyIdentOK reports whether applyIdent can write name.
func applyIdentOK(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if strings.IndexByte(name, 0) >= 0 || !utf8.ValidString(name) {
		return fmt.Errorf("name %q is not valid", name)
	}
	return nil
}

// applyTable writes `schema`.`table`.
func applyTable(b *strings.Builder, schema, table string) error {
	if err := applyIdent(b, schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	b.WriteByte('.')
	if err := applyIdent(b, table); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	return nil
}

// applyHex writes X'..' for p.
func applyHex(b *strings.Builder, p []byte) { applyHexOf(b, p) }

// applyHexString writes X'..' for s.
func applyHexString(b *strings.Builder, s string) { applyHexOf(b, s) }

// applyHexOf writes X'..' for p, in lower case, through a buffer on the
// stack: a WriteByte per digit, or a []byte copy of a string, costs more
// than the encoding.
func applyHexOf[T string | []byte](b *strings.Builder, p T) {
	b.Grow(2*len(p) + 3)
	b.WriteString("X'")
	const digits = "0123456789abcdef"
	var buf [256]byte
	for len(p) > 0 {
		n := min(len(p), len(buf)/2)
		for i := 0; i < n; i++ {
			buf[2*i] = digits[p[i]>>4]
			buf[2*i+1] = digits[p[i]&0x0f]
		}
		b.Write(buf[:2*n])
		p = p[n:]
	}
	b.WriteByte('\'')
}

// applyCharsetOK reports whether cs may follow an introducer's underscore.
func applyCharsetOK(cs string) bool {
	if cs == "" || len(cs) > 32 {
		return false
	}
	for i := 0; i < len(cs); i++ {
		c := cs[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// applyDecimalOK reports whether s is a plain decimal number: an optional
// sign, digits, and optionally a point and more digits.
func applyDecimalOK(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	i := 0
	if s[0] == '-' || s[0] == '+' {
		i++
	}
	digits, point := 0, false
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !point:
			point = true
		default:
			return false
		}
	}
	return digits > 0 && s[len(s)-1] != '.'
}

// applyTemporalOK reports whether s can be a DATE, DATETIME, TIMESTAMP or
// TIME value: digits and the separators - : . and space.
func applyTemporalOK(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '-' || c == ':' || c == '.' || c == ' ') {
			return false
		}
	}
	return true
}

// applyLiteral writes v, a value of column c, as a SQL literal. mysql is
// true for a MySQL (not MariaDB) server, whose JSON type needs a cast.
func applyLiteral(b *strings.Builder, c *Column, v Value, mysql bool) error {
	if err := applyLiteralOK(c, v); err != nil {
		return err
	}
	switch v.Kind {
	case Null:
		b.WriteString("NULL")
	case Int:
		var buf [24]byte
		b.Write(strconv.AppendInt(buf[:0], v.I, 10))
	case Uint:
		var buf [24]byte
		b.Write(strconv.AppendUint(buf[:0], v.U, 10))
	case Float, Double:
		var buf [32]byte
		b.Write(strconv.AppendFloat(buf[:0], v.F, 'e', -1, 64))
	case Decimal:
		b.WriteString(v.S)
	case Text:
		if c.Charset != "" {
			// Without one the bytes go as a binary string, which the
			// server stores in the column's set unchanged.
			b.WriteString("_")
			b.WriteString(c.Charset)
			b.WriteByte(' ')
		}
		applyHex(b, v.B)
	case Bytes:
		applyHex(b, v.B)
	case Date, DateTime, Timestamp, Time:
		b.WriteByte('\'')
		b.WriteString(v.S)
		b.WriteByte('\'')
	case Enum, Set:
		b.WriteString("_utf8mb4 ")
		applyHexString(b, v.S)
	case JSON:
		if mysql {
			b.WriteString("CAST(_utf8mb4 ")
			applyHexString(b, v.S)
			b.WriteString(" AS JSON)")
		} else {
			b.WriteString("_utf8mb4 ")
			applyHexString(b, v.S)
		}
	}
	return nil
}

// applyLiteralOK reports whether applyLiteral can write v, a value of
// column c, without writing it: the applier checks every value of a call
// this way before it writes anything.
func applyLiteralOK(c *Column, v Value) error {
	switch v.Kind {
	case Null, Int, Uint, Bytes:
	case Float, Double:
		if math.IsNaN(v.F) || math.IsInf(v.F, 0) {
			return fmt.Errorf("%v is not a value MySQL can store", v.F)
		}
	case Decimal:
		if !applyDecimalOK(v.S) {
			return fmt.Errorf("decimal %q is not a decimal number", applyAbbrev(v.S))
		}
	case Text:
		if c.Charset != "" && !applyCharsetOK(c.Charset) {
			return fmt.Errorf("character set %q is not a character set name", applyAbbrev(c.Charset))
		}
	case Date, DateTime, Timestamp, Time:
		if !applyTemporalOK(v.S) {
			return fmt.Errorf("%s %q is not a %s value", v.Kind, applyAbbrev(v.S), v.Kind)
		}
	case Enum, Set:
		if !utf8.ValidString(v.S) {
			return fmt.Errorf("%s member %q is not UTF-8", v.Kind, applyAbbrev(v.S))
		}
	case JSON:
		if !json.Valid([]byte(v.S)) {
			return fmt.Errorf("json %q is not a JSON document", applyAbbrev(v.S))
		}
	default:
		return fmt.Errorf("value of unknown kind %d", v.Kind)
	}
	return nil
}

// applyAbbrev shortens s for an error message.
func applyAbbrev(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// rowImage is a row image bound to its columns, for building statements.
type rowImage struct {
	row    *Row
	values []Value
}

// applyMatch writes a WHERE condition selecting the row whose image is
// img: by its key columns when the table has a key, else by every column
// (NULL-safe). With all set, every column is compared even when there is a
// key: the condition then holds only for a row identical to img. The
// comparison of the columns outside the key is wrapped in IF(), which no
// index can serve: otherwise the optimizer may prefer a secondary index
// that also holds the key (and take gap locks there, which make parallel
// appliers deadlock) over the primary key.
func applyMatch(b *strings.Builder, img rowImage, all, mysql bool) error {
	r := img.row
	inKey := make([]bool, len(r.Columns))
	for i, k := range r.Key {
		inKey[k] = true
		if i > 0 {
			b.WriteString(" AND ")
		}
		if err := applyCompare(b, &r.Columns[k], img.values[k], mysql); err != nil {
			return err
		}
	}
	if len(r.Key) > 0 && !all {
		return nil
	}
	wrap := len(r.Key) > 0
	n := 0
	for i := range r.Columns {
		if inKey[i] {
			continue
		}
		switch {
		case n > 0:
			b.WriteString(" AND ")
		case wrap:
			b.WriteString(" AND IF(")
		}
		n++
		if err := applyCompare(b, &r.Columns[i], img.values[i], mysql); err != nil {
			return err
		}
	}
	if wrap && n > 0 {
		b.WriteString(", 1, 0) = 1")
	}
	return nil
}

// applyCompare writes `col` <=> literal (= for a key value that is not
// NULL, which every index can use).
func applyCompare(b *strings.Builder, c *Column, v Value, mysql bool) error {
	if err := applyIdent(b, c.Name); err != nil {
		return fmt.Errorf("column: %w", err)
	}
	b.WriteString(" <=> ")
	if err := applyLiteral(b, c, v, mysql); err != nil {
		return fmt.Errorf("column %s: %w", c.Name, err)
	}
	return nil
}

// applyColumnList writes (`a`,`b`,...).
func applyColumnList(b *strings.Builder, r *Row) error {
	b.WriteByte('(')
	for i := range r.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := applyIdent(b, r.Columns[i].Name); err != nil {
			return fmt.Errorf("column: %w", err)
		}
	}
	b.WriteByte(')')
	return nil
}

// applyValueList writes (v1,v2,...).
func applyValueList(b *strings.Builder, r *Row, vals []Value, mysql bool) error {
	b.WriteByte('(')
	for i := range r.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := applyLiteral(b, &r.Columns[i], vals[i], mysql); err != nil {
			return fmt.Errorf("column %s: %w", r.Columns[i].Name, err)
		}
	}
	b.WriteByte(')')
	return nil
}

// applyInsertSQL writes INSERT INTO t (cols) VALUES (after). With upsert
// set it becomes an upsert: an existing row with the same key takes the
// after image.
func applyInsertSQL(b *strings.Builder, r *Row, upsert, mysql bool) error {
	b.WriteString("INSERT INTO ")
	if err := applyTable(b, r.Schema, r.Table); err != nil {
		return err
	}
	b.WriteByte(' ')
	if err := applyColumnList(b, r); err != nil {
		return err
	}
	b.WriteString(" VALUES ")
	if err := applyValueList(b, r, r.After, mysql); err != nil {
		return err
	}
	if upsert {
		b.WriteString(" ON DUPLICATE KEY UPDATE ")
		for i := range r.Columns {
			if i > 0 {
				b.WriteByte(',')
			}
			applyIdent(b, r.Columns[i].Name) // checked by applyColumnList
			b.WriteByte('=')
			if err := applyLiteral(b, &r.Columns[i], r.After[i], mysql); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyUpdateSQL writes UPDATE t SET (after) WHERE (before). With all set
// the WHERE compares every column of the before image, so the statement
// changes nothing (0 rows matched) when the target row differs from it.
func applyUpdateSQL(b *strings.Builder, r *Row, all, mysql bool) error {
	b.WriteString("UPDATE ")
	if err := applyTable(b, r.Schema, r.Table); err != nil {
		return err
	}
	b.WriteString(" SET ")
	n := 0
	for i := range r.Columns {
		// Once the WHERE has matched the whole before image, only the
		// columns that change need setting (less for the server to parse).
		// Temporal ones are always set: one with ON UPDATE
		// CURRENT_TIMESTAMP would otherwise take the local time.
		if all && n > 0 && !applyChanged(r.Before[i], r.After[i]) {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		if err := applyIdent(b, r.Columns[i].Name); err != nil {
			return fmt.Errorf("column: %w", err)
		}
		b.WriteByte('=')
		if err := applyLiteral(b, &r.Columns[i], r.After[i], mysql); err != nil {
			return fmt.Errorf("column %s: %w", r.Columns[i].Name, err)
		}
	}
	b.WriteString(" WHERE ")
	if err := applyMatch(b, rowImage{r, r.Before}, all, mysql); err != nil {
		return err
	}
	if len(r.Key) == 0 {
		b.WriteString(" LIMIT 1")
	}
	return nil
}

// applyChanged reports whether an update must set a column: its value
// changes, or it is temporal.
func applyChanged(before, after Value) bool {
	switch after.Kind {
	case DateTime, Timestamp:
		return true
	}
	if before.Kind != after.Kind || before.I != after.I || before.U != after.U || before.S != after.S || string(before.B) != string(after.B) {
		return true
	}
	return math.Float64bits(before.F) != math.Float64bits(after.F)
}

// applyDeleteSQL writes DELETE FROM t WHERE (img); all as for
// applyUpdateSQL.
func applyDeleteSQL(b *strings.Builder, r *Row, img []Value, all, mysql bool) error {
	b.WriteString("DELETE FROM ")
	if err := applyTable(b, r.Schema, r.Table); err != nil {
		return err
	}
	b.WriteString(" WHERE ")
	if err := applyMatch(b, rowImage{r, img}, all, mysql); err != nil {
		return err
	}
	if len(r.Key) == 0 {
		b.WriteString(" LIMIT 1")
	}
	return nil
}

// applyCheckRow reports whether a row is well formed: op, names, as many
// values as columns in the images its op needs, key indexes in range, and
// every value renderable.
func applyCheckRow(r *Row) error {
	switch r.Op {
	case Insert, Update, Delete:
	default:
		return fmt.Errorf("unknown op %d", r.Op)
	}
	if r.Schema == "" || r.Table == "" {
		return errors.New("no schema or table")
	}
	if len(r.Columns) == 0 {
		return errors.New("no columns")
	}
	need := func(name string, img []Value, want bool) error {
		switch {
		case want && len(img) != len(r.Columns):
			return fmt.Errorf("%s image has %d values for %d columns", name, len(img), len(r.Columns))
		case !want && len(img) != 0:
			return fmt.Errorf("%s has a %s image", r.Op, name)
		}
		return nil
	}
	if err := need("before", r.Before, r.Op != Insert); err != nil {
		return err
	}
	if err := need("after", r.After, r.Op != Delete); err != nil {
		return err
	}
	for i, k := range r.Key {
		// A key has a column or two: a scan of the ones before beats a
		// map per row (and is checked against a map for long keys).
		if k < 0 || k >= len(r.Columns) || (len(r.Key) <= 16 && slices.Contains(r.Key[:i], k)) {
			return fmt.Errorf("key column index %d out of range or repeated", k)
		}
	}
	if len(r.Key) > 16 {
		seen := make(map[int]bool, len(r.Key))
		for _, k := range r.Key {
			if seen[k] {
				return fmt.Errorf("key column index %d out of range or repeated", k)
			}
			seen[k] = true
		}
	}
	for _, img := range [2][]Value{r.Before, r.After} {
		for i, v := range img {
			if err := applyLiteralOK(&r.Columns[i], v); err != nil {
				return fmt.Errorf("column %s: %w", r.Columns[i].Name, err)
			}
		}
	}
	// The names, as applyTable and applyColumnList check them.
	if err := applyIdentOK(r.Schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if err := applyIdentOK(r.Table); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	for i := range r.Columns {
		if err := applyIdentOK(r.Columns[i].Name); err != nil {
			return fmt.Errorf("column: %w", err)
		}
	}
	return nil
}

// A batch's row changes are regrouped into fewer statements: changes of
// one table with the same op and columns become one multi-row INSERT,
// UPDATE (CASE by key) or DELETE. A change joins an earlier statement only
// if no statement between them touches the same row, so every row sees its
// changes in stream order and the batch ends in the same state as in
// stream order; each statement must still affect exactly as many rows as
// it has changes, or the batch goes through the checked path in order.
// Only tables with a one-column key are regrouped (a key list then serves
// the WHERE), and never an update that changes the key.

// applyMaxGroup bounds the rows of one merged statement.
const applyMaxGroup = 256

// applyGroup is one statement of a batch: one row change, or several of
// one table and op.
type applyGroup struct {
	op   Op
	rows []*Row
}

// applyPlan groups rows (a batch's changes, in stream order) into
// statements. keys holds each row's identities (applyRowKeys).
func applyPlan(rows []*Row, keys [][2]string) []*applyGroup {
	groups := make([]*applyGroup, 0, len(rows))
	// The groups themselves, one allocation for all: there are at most
	// as many as rows, so it never grows and the pointers stay valid.
	store := make([]applyGroup, 0, len(rows))
	open := map[string]int{}                  // table, op and columns -> the group that may take more
	last := make(map[string]int, 2*len(rows)) // row identity -> the last group that touches it
	var shapeSmall [256]byte
	shape := shapeSmall[:0]
	for i, r := range rows {
		mergeable := len(r.Key) == 1 && (r.Op != Update || keys[i][1] == "")
		if mergeable {
			shape = applyShape(shape[:0], r)
			if gi, ok := open[string(shape)]; ok && len(groups[gi].rows) < applyMaxGroup {
				free := true
				for _, k := range keys[i] {
					if li, seen := last[k]; seen && li >= gi {
						free = false
					}
				}
				if free {
					groups[gi].rows = append(groups[gi].rows, r)
					for _, k := range keys[i] {
						if k != "" {
							last[k] = gi
						}
					}
					continue
				}
			}
		}
		// A group's rows start as the one element of rows, capped: a
		// merge's append copies them out rather than writing over the
		// next row.
		store = append(store, applyGroup{op: r.Op, rows: rows[i : i+1 : i+1]})
		groups = append(groups, &store[len(store)-1])
		gi := len(groups) - 1
		if mergeable {
			open[string(shape)] = gi
		}
		for _, k := range keys[i] {
			if k != "" {
				last[k] = gi
			}
		}
	}
	return groups
}

// applyShape appends to b what rows must share to be merged: table, op,
// columns and key.
func applyShape(b []byte, r *Row) []byte {
	b = append(b, r.Schema...)
	b = append(b, 0)
	b = append(b, r.Table...)
	b = append(b, 0, byte(r.Op))
	for _, c := range r.Columns {
		b = append(b, 0)
		b = append(b, c.Name...)
	}
	b = append(b, 0)
	return strconv.AppendInt(b, int64(r.Key[0]), 10)
}

// applyGroupSQL writes g's statement. Every row of it must match exactly
// one target row (UPDATE and DELETE compare the whole before image).
func applyGroupSQL(b *strings.Builder, g *applyGroup, mysql bool) error {
	first := g.rows[0]
	if len(g.rows) == 1 {
		switch g.op {
		case Insert:
			return applyInsertSQL(b, first, false, mysql)
		case Update:
			return applyUpdateSQL(b, first, true, mysql)
		default:
			return applyDeleteSQL(b, first, first.Before, true, mysql)
		}
	}
	switch g.op {
	case Insert:
		if err := applyInsertSQL(b, first, false, mysql); err != nil {
			return err
		}
		for _, r := range g.rows[1:] {
			b.WriteByte(',')
			if err := applyValueList(b, r, r.After, mysql); err != nil {
				return err
			}
		}
		return nil
	case Update:
		b.WriteString("UPDATE ")
		if err := applyTable(b, first.Schema, first.Table); err != nil {
			return err
		}
		b.WriteString(" SET ")
		k := first.Key[0]
		n := 0
		for c := range first.Columns {
			if c == k {
				continue
			}
			changed := false
			for _, r := range g.rows {
				changed = changed || applyChanged(r.Before[c], r.After[c])
			}
			if !changed {
				continue
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			if err := applyIdent(b, first.Columns[c].Name); err != nil {
				return err
			}
			b.WriteString("=CASE")
			for _, r := range g.rows {
				if !applyChanged(r.Before[c], r.After[c]) {
					continue
				}
				b.WriteString(" WHEN ")
				if err := applyCompare(b, &r.Columns[k], r.Before[k], mysql); err != nil {
					return err
				}
				b.WriteString(" THEN ")
				if err := applyLiteral(b, &r.Columns[c], r.After[c], mysql); err != nil {
					return fmt.Errorf("column %s: %w", r.Columns[c].Name, err)
				}
			}
			b.WriteString(" ELSE ")
			applyIdent(b, first.Columns[c].Name)
			b.WriteString(" END")
		}
		if n == 0 { // nothing changes: the statement only counts the rows
			applyIdent(b, first.Columns[k].Name)
			b.WriteByte('=')
			applyIdent(b, first.Columns[k].Name)
		}
	default:
		b.WriteString("DELETE FROM ")
		if err := applyTable(b, first.Schema, first.Table); err != nil {
			return err
		}
	}
	// WHERE key IN (...) AND (row 1's whole image OR row 2's ...): the
	// list keeps the search on the primary key.
	k := first.Key[0]
	b.WriteString(" WHERE ")
	if err := applyIdent(b, first.Columns[k].Name); err != nil {
		return err
	}
	b.WriteString(" IN (")
	for i, r := range g.rows {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := applyLiteral(b, &r.Columns[k], r.Before[k], mysql); err != nil {
			return err
		}
	}
	b.WriteString(") AND ")
	if applyTupleOK(g) {
		return applyTupleMatch(b, g, mysql)
	}
	b.WriteByte('(')
	for i, r := range g.rows {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteByte('(')
		if err := applyMatch(b, rowImage{r, r.Before}, true, mysql); err != nil {
			return err
		}
		b.WriteByte(')')
	}
	b.WriteByte(')')
	return nil
}

// applyTupleOK reports whether a merged group's before images can be
// matched as one row IN list: every value is an integer or a string (IN
// compares with =, under which NULL matches nothing, and the comparison
// type of temporal, floating, JSON and other values in a row IN list is
// not worth the doubt; those groups keep the per-row arms).
func applyTupleOK(g *applyGroup) bool {
	for _, r := range g.rows {
		for _, v := range r.Before {
			switch v.Kind {
			case Int, Uint, Text, Bytes:
			default:
				return false
			}
		}
	}
	return true
}

// applyTupleMatch writes IF((key, other columns...) IN ((row 1's before
// image), (row 2's), ...), 1, 0) = 1: a target row matches when it is
// identical to one of the images, as with applyMatch's per-row arms, but
// the server evaluates one sorted IN list per row instead of every arm,
// and builds far fewer items for it. IF() keeps it from any index, as in
// applyMatch.
func applyTupleMatch(b *strings.Builder, g *applyGroup, mysql bool) error {
	first := g.rows[0]
	order := make([]int, 0, len(first.Columns))
	order = append(order, first.Key...)
	for c := range first.Columns {
		if !slices.Contains(first.Key, c) {
			order = append(order, c)
		}
	}
	b.WriteString("IF((")
	for i, c := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := applyIdent(b, first.Columns[c].Name); err != nil {
			return fmt.Errorf("column: %w", err)
		}
	}
	b.WriteString(") IN (")
	for i, r := range g.rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j, c := range order {
			if j > 0 {
				b.WriteByte(',')
			}
			if err := applyLiteral(b, &r.Columns[c], r.Before[c], mysql); err != nil {
				return fmt.Errorf("column %s: %w", r.Columns[c].Name, err)
			}
		}
		b.WriteByte(')')
	}
	b.WriteString("), 1, 0) = 1")
	return nil
}

// A batch is one local transaction, so only the state it ends in is ever
// seen here: applyNet folds the successive changes of one row within it
// into one change, from the first one's before image to the last one's
// after image (an update, or an insert or delete when the row is new or
// gone at the end). sysbench's hot rows are changed many times in a batch,
// and every transaction deletes and reinserts a row: folding takes a
// batch of 256 such transactions from 1,024 row changes in 87 statements
// to about 480 in 4, and one of 1,024 from 4,096 in 327 to about 1,100 in
// 7 (TestApplyNetSysbench). The server's time per transaction fell by
// 22-25% at 64 transactions a batch and by 38% at 256 (docs/benchmarks.md,
// session 8).
//
// A change is folded into the one before it on the same row only when the
// stream itself links them: its before image is exactly (byte for byte,
// not by collation) that one's after image, or it reinserts the row that
// one deleted. The target row is then compared with the first before
// image, which is the comparison the first change would have made, and
// the ones in between would have compared with what the batch itself had
// just written: a batch that folds meets a conflict exactly when it would
// have met one unfolded, and goes through the checked path, unfolded, the
// same way. An insert of a row the batch later deletes is not folded into
// nothing: the insert must still fail if the row exists here.
//
// Folding changes which statements the server runs, not the state they
// end in, as long as nothing on the server reacts to each statement: the
// tables of the rows folded must not be the parent of a foreign key (a
// delete and reinsert would cascade to the children, an update would
// not); the applier asks the server which are (loadFoldable). Triggers on the
// target fire once for the folded change (see Applier, "Limits"). A
// constraint that an intermediate order would have kept (a unique
// secondary key handed from one row to another) fails the statement and
// sends the batch down the checked path.

// applyNet folds rows (a batch's changes, in stream order, with their
// identities keys as applyRowKeys makes them) as described above and
// returns the changes to apply and their identities; each folded change
// takes the place of its first one. foldable reports whether changes of
// r's table may be folded. rows and keys are not modified; a folded
// change is a new Row.
func applyNet(rows []*Row, keys [][2]string, foldable func(r *Row) bool) ([]*Row, [][2]string) {
	out := make([]*Row, 0, len(rows))
	outKeys := make([][2]string, 0, len(rows))
	open := make(map[string]int, len(rows)) // row identity -> its last change in out, which the next may join
	// The folded rows, one allocation for all: there are fewer than rows,
	// so it never grows and the pointers stay valid.
	var store []Row
	for i, r := range rows {
		k := keys[i]
		// A change that moves a row to another key, or of a table
		// without one, is never folded: it ends the chains of both keys.
		if len(r.Key) == 0 || (k[0] != "" && k[1] != "") || !foldable(r) {
			for _, id := range k {
				if id != "" {
					delete(open, id)
				}
			}
			out = append(out, r)
			outKeys = append(outKeys, k)
			continue
		}
		id := k[0]
		if id == "" {
			id = k[1] // an insert
		}
		if j, ok := open[id]; ok && applyNetJoins(out[j], r) {
			if store == nil {
				store = make([]Row, 0, len(rows))
			}
			f := *out[j]
			f.After = r.After
			switch {
			case f.Before == nil:
				f.Op = Insert
			case f.After == nil:
				f.Op = Delete
			default:
				f.Op = Update
			}
			store = append(store, f)
			out[j] = &store[len(store)-1]
			continue
		}
		open[id] = len(out)
		out = append(out, r)
		outKeys = append(outKeys, k)
	}
	return out, outKeys
}

// applyNetJoins reports whether r, the next change of the row whose
// changes so far fold into p, may be folded into p too.
func applyNetJoins(p, r *Row) bool {
	if !applySameColumns(p, r) {
		return false
	}
	switch {
	case p.After != nil && r.Before != nil:
		// An update or delete of what p left, unless it deletes a row
		// p inserted.
		return (p.Before != nil || r.After != nil) && applySameImage(p.After, r.Before)
	case p.After == nil && r.Op == Insert:
		return true // reinserts the row p deleted: an update
	}
	return false
}

// applySameColumns reports whether two changes of one table have the same
// columns and key (they do unless a schema change came between them).
func applySameColumns(p, r *Row) bool {
	if len(p.Columns) != len(r.Columns) || !slices.Equal(p.Key, r.Key) {
		return false
	}
	if len(p.Columns) > 0 && &p.Columns[0] == &r.Columns[0] {
		return true // one decoded table definition
	}
	for i := range p.Columns {
		if p.Columns[i] != r.Columns[i] {
			return false
		}
	}
	return true
}

// applySameImage reports whether two row images hold exactly the same
// values.
func applySameImage(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Kind != y.Kind || x.I != y.I || x.U != y.U || math.Float64bits(x.F) != math.Float64bits(y.F) || x.S != y.S || string(x.B) != string(y.B) {
			return false
		}
	}
	return true
}
