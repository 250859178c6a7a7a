package binlog

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// ErrNoRowMetadata is wrapped by the error for a table map without the
// column names of binlog_row_metadata=FULL: tandem cannot name the columns
// of such rows, so it stops rather than guess.
var ErrNoRowMetadata = errors.New("binlog row metadata missing: set binlog_row_metadata=FULL in the server config ([mysqld] section of my.cnf) and restart it, or SET GLOBAL binlog_row_metadata=FULL; rows written before the change cannot be replicated")

// binaryCollation is the collation id of the binary character set: a
// string column with it holds bytes (BINARY, VARBINARY, BLOB), not text.
const binaryCollation = 63

// decoder turns go-mysql row events into Rows. It caches what it derives
// from each table map. Not safe for concurrent use.
type decoder struct {
	// charsets maps a collation id to its character set name. Filled from
	// the server (information_schema.COLLATIONS) when tailing, and falling
	// back to builtinCharsets.
	charsets map[uint64]string
	tables   map[uint64]*tableDef
	// slow turns the fast decoding (fastrows.go) off, for the tests that
	// compare the two.
	slow bool
}

func newDecoder(charsets map[uint64]string) *decoder {
	return &decoder{charsets: charsets, tables: make(map[uint64]*tableDef)}
}

func (d *decoder) charset(collation uint64) (string, bool) {
	if cs, ok := d.charsets[collation]; ok {
		return cs, true
	}
	cs, ok := builtinCharsets[collation]
	return cs, ok
}

// colDecoder says how one column's go-mysql values become Values.
type colDecoder struct {
	kind    Kind
	fsp     int      // fractional seconds digits of TIME/DATETIME/TIMESTAMP
	padTo   int      // BINARY(n): the binlog drops trailing zero bytes; put them back
	members []string // ENUM/SET member names
}

// tableDef is what a table map tells about its table, ready for decoding.
type tableDef struct {
	schema, table string
	columns       []Column
	key           []int
	dec           []colDecoder

	// fast, if not nil, reads this table's row images without go-mysql
	// (fastrows.go).
	fast []fastCol

	// The table map it came from, to notice a changed definition under a
	// reused table id.
	types []byte
	meta  []uint16
	names [][]byte
}

func (t *tableDef) same(tm *replication.TableMapEvent) bool {
	if t.schema != string(tm.Schema) || t.table != string(tm.Table) ||
		!bytes.Equal(t.types, tm.ColumnType) || len(t.meta) != len(tm.ColumnMeta) || len(t.names) != len(tm.ColumnName) {
		return false
	}
	for i := range t.meta {
		if t.meta[i] != tm.ColumnMeta[i] {
			return false
		}
	}
	for i := range t.names {
		if !bytes.Equal(t.names[i], tm.ColumnName[i]) {
			return false
		}
	}
	return true
}

// table returns the definition for a table map, building it on first use.
func (d *decoder) table(tm *replication.TableMapEvent) (*tableDef, error) {
	if t, ok := d.tables[tm.TableID]; ok && t.same(tm) {
		return t, nil
	}
	t, err := d.newTableDef(tm)
	if err != nil {
		return nil, err
	}
	if len(d.tables) > 4096 { // table ids only grow; forget old ones now and then
		clear(d.tables)
	}
	d.tables[tm.TableID] = t
	return t, nil
}

func (d *decoder) newTableDef(tm *replication.TableMapEvent) (*tableDef, error) {
	name := string(tm.Schema) + "." + string(tm.Table)
	n := int(tm.ColumnCount)
	if len(tm.ColumnType) != n || len(tm.ColumnMeta) != n {
		return nil, fmt.Errorf("table map of %s: %d column types for %d columns", name, len(tm.ColumnType), n)
	}
	if len(tm.ColumnName) != n {
		return nil, fmt.Errorf("table %s: %w", name, ErrNoRowMetadata)
	}
	if !wireName(string(tm.Schema)) || !wireName(string(tm.Table)) {
		return nil, fmt.Errorf("table %q: the name is empty, not UTF-8 or holds NUL, so it cannot be sent to the peer", name)
	}
	t := &tableDef{
		schema:  string(tm.Schema),
		table:   string(tm.Table),
		columns: make([]Column, n),
		dec:     make([]colDecoder, n),
		types:   bytes.Clone(tm.ColumnType),
		meta:    append([]uint16(nil), tm.ColumnMeta...),
		names:   make([][]byte, n),
	}
	unsigned := tm.UnsignedMap()
	collations := tm.CollationMap()
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()
	for i := 0; i < n; i++ {
		t.names[i] = bytes.Clone(tm.ColumnName[i])
		col := &t.columns[i]
		col.Name = string(tm.ColumnName[i])
		if col.Name == "" {
			return nil, fmt.Errorf("table %s: column %d has no name: %w", name, i, ErrNoRowMetadata)
		}
		if !wireName(col.Name) {
			return nil, fmt.Errorf("table %s: column %q: the name is not UTF-8 or holds NUL, so it cannot be sent to the peer", name, col.Name)
		}
		cd := &t.dec[i]
		meta := tm.ColumnMeta[i]
		typ := tm.ColumnType[i]
		if typ == mysql.MYSQL_TYPE_STRING && meta >= 256 {
			if rt := byte(meta >> 8); rt == mysql.MYSQL_TYPE_ENUM || rt == mysql.MYSQL_TYPE_SET {
				typ = rt
			}
		}
		uns := ""
		if unsigned[i] {
			uns = " unsigned"
		}
		text := func(textType, binType string, maxBytes int) error {
			coll, ok := collations[i]
			if !ok {
				return fmt.Errorf("table %s column %s: no collation in the table map: %w", name, col.Name, ErrNoRowMetadata)
			}
			if coll == binaryCollation {
				cd.kind = Bytes
				col.Type = binType
				if maxBytes >= 0 {
					col.Type += "(" + strconv.Itoa(maxBytes) + ")"
				}
				return nil
			}
			cs, ok := d.charset(coll)
			if !ok {
				return fmt.Errorf("table %s column %s: unknown collation id %d: the server's information_schema.COLLATIONS does not list it", name, col.Name, coll)
			}
			cd.kind = Text
			col.Charset = cs
			col.Type = textType
			if maxBytes >= 0 {
				col.Type += "(" + strconv.Itoa(maxBytes/charsetMaxLen(cs)) + ")"
			}
			return nil
		}
		switch typ {
		case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
			if _, ok := unsigned[i]; !ok {
				return nil, fmt.Errorf("table %s column %s: no signedness in the table map: %w", name, col.Name, ErrNoRowMetadata)
			}
			col.Type = intTypeNames[typ] + uns
			cd.kind = Int
			if unsigned[i] {
				cd.kind = Uint
			}
		case mysql.MYSQL_TYPE_NEWDECIMAL:
			col.Type = fmt.Sprintf("decimal(%d,%d)%s", meta>>8, meta&0xff, uns)
			cd.kind = Decimal
		case mysql.MYSQL_TYPE_FLOAT:
			col.Type = "float" + uns
			cd.kind = Float
		case mysql.MYSQL_TYPE_DOUBLE:
			col.Type = "double" + uns
			cd.kind = Double
		case mysql.MYSQL_TYPE_BIT:
			col.Type = fmt.Sprintf("bit(%d)", (meta>>8)*8+meta&0xff)
			cd.kind = Uint
		case mysql.MYSQL_TYPE_YEAR:
			col.Type = "year"
			cd.kind = Int
		case mysql.MYSQL_TYPE_DATE:
			col.Type = "date"
			cd.kind = Date
		case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
			cd.kind, cd.fsp = DateTime, fspOf(typ, meta)
			col.Type = withFsp("datetime", cd.fsp)
		case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
			cd.kind, cd.fsp = Timestamp, fspOf(typ, meta)
			col.Type = withFsp("timestamp", cd.fsp)
		case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
			cd.kind, cd.fsp = Time, fspOf(typ, meta)
			col.Type = withFsp("time", cd.fsp)
		case mysql.MYSQL_TYPE_ENUM:
			m, ok := enums[i]
			if !ok {
				return nil, fmt.Errorf("table %s column %s: no ENUM members in the table map: %w", name, col.Name, ErrNoRowMetadata)
			}
			cd.kind, cd.members = Enum, m
			col.Type = "enum"
		case mysql.MYSQL_TYPE_SET:
			m, ok := sets[i]
			if !ok {
				return nil, fmt.Errorf("table %s column %s: no SET members in the table map: %w", name, col.Name, ErrNoRowMetadata)
			}
			if len(m) > 64 {
				return nil, fmt.Errorf("table %s column %s: SET with %d members (at most 64)", name, col.Name, len(m))
			}
			cd.kind, cd.members = Set, m
			col.Type = "set"
		case mysql.MYSQL_TYPE_STRING:
			// Meta packs the real type and the byte length (see
			// Field_string::do_save_field_metadata).
			b0, b1 := byte(meta>>8), byte(meta&0xff)
			length := int(meta)
			if meta >= 256 {
				if b0&0x30 != 0x30 {
					length = int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
				} else {
					length = int(b1)
				}
			}
			if err := text("char", "binary", length); err != nil {
				return nil, err
			}
			if cd.kind == Bytes {
				cd.padTo = length
			}
		case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
			if err := text("varchar", "varbinary", int(meta)); err != nil {
				return nil, err
			}
		case mysql.MYSQL_TYPE_BLOB:
			if meta < 1 || meta > 4 {
				return nil, fmt.Errorf("table %s column %s: blob length size %d", name, col.Name, meta)
			}
			prefix := [...]string{"", "tiny", "", "medium", "long"}[meta]
			if err := text(prefix+"text", prefix+"blob", -1); err != nil {
				return nil, err
			}
		case mysql.MYSQL_TYPE_JSON:
			col.Type = "json"
			cd.kind = JSON
		case mysql.MYSQL_TYPE_GEOMETRY:
			col.Type = "geometry"
			cd.kind = Bytes
		case mysql.MYSQL_TYPE_VECTOR:
			col.Type = "vector"
			cd.kind = Bytes
		case mysql.MYSQL_TYPE_NULL:
			col.Type = "null"
			cd.kind = Null
		default:
			return nil, fmt.Errorf("table %s column %s: binlog column type %d is not supported by tandem", name, col.Name, typ)
		}
	}
	for _, k := range tm.PrimaryKey {
		if k >= uint64(n) {
			return nil, fmt.Errorf("table map of %s: primary key column %d of %d", name, k, n)
		}
		t.key = append(t.key, int(k))
	}
	t.fast = fastCols(t)
	return t, nil
}

var intTypeNames = map[byte]string{
	mysql.MYSQL_TYPE_TINY:     "tinyint",
	mysql.MYSQL_TYPE_SHORT:    "smallint",
	mysql.MYSQL_TYPE_INT24:    "mediumint",
	mysql.MYSQL_TYPE_LONG:     "int",
	mysql.MYSQL_TYPE_LONGLONG: "bigint",
}

// wireName reports whether DecodeTxn accepts s as a name.
func wireName(s string) bool {
	return s != "" && len(s) <= maxNameBytes && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func fspOf(typ byte, meta uint16) int {
	switch typ {
	case mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_TIME2:
		return int(min(meta, 6))
	}
	return 0
}

func withFsp(t string, fsp int) string {
	if fsp == 0 {
		return t
	}
	return t + "(" + strconv.Itoa(fsp) + ")"
}

// rows converts one row event into Rows, appending them to dst.
func (d *decoder) rows(dst []Row, ev *replication.RowsEvent, op Op) ([]Row, error) {
	if ev.Table == nil {
		return dst, errors.New("row event without its table map")
	}
	t, err := d.table(ev.Table)
	if err != nil {
		return dst, err
	}
	for _, skipped := range ev.SkippedColumns {
		if len(skipped) > 0 {
			return dst, fmt.Errorf("row event for %s.%s lacks %d columns: set binlog_row_image=FULL in the server config ([mysqld] section of my.cnf) and restart it, or SET GLOBAL binlog_row_image=FULL", t.schema, t.table, len(skipped))
		}
	}
	step := 1
	if op == Update {
		step = 2
		if len(ev.Rows)%2 != 0 {
			return dst, fmt.Errorf("update row event for %s.%s has %d images, not pairs", t.schema, t.table, len(ev.Rows))
		}
	}
	for i := 0; i < len(ev.Rows); i += step {
		r := Row{Op: op, Schema: t.schema, Table: t.table, Columns: t.columns, Key: t.key}
		first, err := t.values(ev.Rows[i])
		if err != nil {
			return dst, err
		}
		switch op {
		case Insert:
			r.After = first
		case Delete:
			r.Before = first
		case Update:
			r.Before = first
			if r.After, err = t.values(ev.Rows[i+1]); err != nil {
				return dst, err
			}
		}
		dst = append(dst, r)
	}
	return dst, nil
}

// values converts one row image.
func (t *tableDef) values(img []any) ([]Value, error) {
	if len(img) != len(t.dec) {
		return nil, fmt.Errorf("row of %s.%s has %d values for %d columns", t.schema, t.table, len(img), len(t.dec))
	}
	vs := make([]Value, len(img))
	for i, raw := range img {
		v, err := t.dec[i].value(raw)
		if err != nil {
			return nil, fmt.Errorf("%s.%s column %s (%s): %w", t.schema, t.table, t.columns[i].Name, t.columns[i].Type, err)
		}
		vs[i] = v
	}
	return vs, nil
}

// value converts one go-mysql value (see replication.RowsEvent for the Go
// types it uses) to a Value of the column's kind.
func (c *colDecoder) value(raw any) (Value, error) {
	if raw == nil {
		return Value{Kind: Null}, nil
	}
	bad := func() (Value, error) {
		return Value{}, fmt.Errorf("binlog value %T %v is not a %s", raw, raw, c.kind)
	}
	switch c.kind {
	case Int:
		switch x := raw.(type) {
		case int8:
			return Value{Kind: Int, I: int64(x)}, nil
		case int16:
			return Value{Kind: Int, I: int64(x)}, nil
		case int32:
			return Value{Kind: Int, I: int64(x)}, nil
		case int64:
			return Value{Kind: Int, I: x}, nil
		case int: // YEAR
			return Value{Kind: Int, I: int64(x)}, nil
		}
	case Uint:
		switch x := raw.(type) {
		case uint8:
			return Value{Kind: Uint, U: uint64(x)}, nil
		case uint16:
			return Value{Kind: Uint, U: uint64(x)}, nil
		case uint32:
			return Value{Kind: Uint, U: uint64(x)}, nil
		case uint64:
			return Value{Kind: Uint, U: x}, nil
		case int64: // BIT, all 64 bits
			return Value{Kind: Uint, U: uint64(x)}, nil
		}
	case Float:
		if x, ok := raw.(float32); ok {
			return Value{Kind: Float, F: float64(x)}, nil
		}
	case Double:
		if x, ok := raw.(float64); ok {
			return Value{Kind: Double, F: x}, nil
		}
	case Decimal:
		if x, ok := raw.(string); ok {
			return Value{Kind: Decimal, S: x}, nil
		}
	case Text, Bytes:
		switch x := raw.(type) {
		case string: // aliases the event buffer: copy
			if len(x) < c.padTo {
				b := make([]byte, c.padTo)
				copy(b, x)
				return Value{Kind: c.kind, B: b}, nil
			}
			return Value{Kind: c.kind, B: []byte(x)}, nil
		case []byte:
			return Value{Kind: c.kind, B: bytes.Clone(x)}, nil
		}
	case Date:
		if x, ok := raw.(string); ok {
			return Value{Kind: Date, S: x}, nil
		}
	case DateTime, Timestamp, Time:
		if x, ok := raw.(string); ok {
			return Value{Kind: c.kind, S: padFraction(x, c.fsp)}, nil
		}
	case Enum:
		if x, ok := raw.(int64); ok {
			switch {
			case x == 0: // the empty string MySQL stores for an invalid member
				return Value{Kind: Enum}, nil
			case x > 0 && x <= int64(len(c.members)):
				return Value{Kind: Enum, S: c.members[x-1]}, nil
			}
			return Value{}, fmt.Errorf("ENUM index %d out of %d members", x, len(c.members))
		}
	case Set:
		if x, ok := raw.(int64); ok {
			bits := uint64(x)
			if len(c.members) < 64 && bits>>len(c.members) != 0 {
				return Value{}, fmt.Errorf("SET bits %#x beyond its %d members", bits, len(c.members))
			}
			var sb strings.Builder
			for i := range c.members {
				if bits&(1<<i) != 0 {
					if sb.Len() > 0 {
						sb.WriteByte(',')
					}
					sb.WriteString(c.members[i])
				}
			}
			return Value{Kind: Set, S: sb.String()}, nil
		}
	case JSON:
		switch x := raw.(type) {
		case string:
			return Value{Kind: JSON, S: strings.Clone(x)}, nil
		case []byte:
			if len(x) == 0 { // an empty document, stored by non-strict inserts
				return Value{Kind: JSON, S: "null"}, nil
			}
			return Value{Kind: JSON, S: string(x)}, nil
		case *replication.JsonDiff:
			return Value{}, errors.New("partial JSON update in the binlog: set binlog_row_value_options='' (the default) in the server config and restart it")
		}
	case Null:
		return bad()
	}
	return bad()
}

// padFraction writes a temporal value with exactly fsp fraction digits, as
// the server prints it (go-mysql drops a zero fraction of TIME).
func padFraction(s string, fsp int) string {
	dot := strings.IndexByte(s, '.')
	if fsp == 0 || dot >= 0 && len(s)-dot-1 == fsp {
		return s
	}
	if dot < 0 {
		return s + "." + strings.Repeat("0", fsp)
	}
	frac := s[dot+1:]
	if len(frac) > fsp {
		return s[:dot+1+fsp]
	}
	return s + strings.Repeat("0", fsp-len(frac))
}

// charsetMaxLen is the most bytes a character takes in a character set,
// to turn a column's byte length back into its declared length.
func charsetMaxLen(cs string) int {
	switch cs {
	case "utf8mb4", "utf16", "utf16le", "utf32", "gb18030":
		return 4
	case "utf8", "utf8mb3", "ujis", "eucjpms":
		return 3
	case "ucs2", "big5", "sjis", "cp932", "gbk", "gb2312", "euckr":
		return 2
	}
	return 1
}

// builtinCharsets maps the common collation ids (shared by MySQL and
// MariaDB) to their character sets, for decoding without a server (golden
// files) and as a fallback.
var builtinCharsets = func() map[uint64]string {
	m := map[uint64]string{
		1: "big5", 3: "dec8", 4: "cp850", 6: "hp8", 7: "koi8r", 8: "latin1", 9: "latin2",
		10: "swe7", 11: "ascii", 12: "ujis", 13: "sjis", 14: "cp1251", 15: "latin1", 16: "hebrew",
		18: "tis620", 19: "euckr", 20: "latin7", 21: "latin2", 22: "koi8u", 23: "cp1251", 24: "gb2312",
		25: "greek", 26: "cp1250", 27: "latin2", 28: "gbk", 29: "cp1257", 30: "latin5", 31: "latin1",
		32: "armscii8", 33: "utf8mb3", 34: "cp1250", 35: "ucs2", 36: "cp866", 37: "keybcs2",
		38: "macce", 39: "macroman", 40: "cp852", 41: "latin7", 42: "latin7", 43: "macce",
		44: "cp1250", 45: "utf8mb4", 46: "utf8mb4", 47: "latin1", 48: "latin1", 49: "latin1",
		50: "cp1251", 51: "cp1251", 52: "cp1251", 53: "macroman", 54: "utf16", 55: "utf16",
		56: "utf16le", 57: "cp1256", 58: "cp1257", 59: "cp1257", 60: "utf32", 61: "utf32",
		62: "utf16le", 63: "binary", 64: "armscii8", 65: "ascii", 66: "cp1250", 67: "cp1256",
		68: "cp866", 69: "dec8", 70: "greek", 71: "hebrew", 72: "hp8", 73: "keybcs2",
		74: "koi8r", 75: "koi8u", 76: "utf8mb3", 77: "latin2", 78: "latin5", 79: "latin7",
		80: "cp850", 81: "cp852", 82: "swe7", 83: "utf8mb3", 84: "big5", 85: "euckr",
		86: "gb2312", 87: "gbk", 88: "sjis", 89: "tis620", 90: "ucs2", 91: "ujis", 92: "geostd8",
		93: "geostd8", 94: "latin1", 95: "cp932", 96: "cp932", 97: "eucjpms", 98: "eucjpms",
		248: "gb18030", 249: "gb18030", 250: "gb18030",
	}
	for id := uint64(128); id <= 159; id++ {
		m[id] = "ucs2"
	}
	for id := uint64(160); id <= 183; id++ {
		m[id] = "utf32"
	}
	for id := uint64(192); id <= 215; id++ {
		m[id] = "utf8mb3"
	}
	for id := uint64(224); id <= 247; id++ {
		m[id] = "utf8mb4"
	}
	for id := uint64(255); id <= 323; id++ { // MySQL 8 utf8mb4_0900_*
		m[id] = "utf8mb4"
	}
	return m
}()

// decodeRowsEvent decodes a row event as go-mysql does, after the checks
// that keep a malformed one from hanging its decoder (an image of no
// columns never ends its loop) or crashing it (a panic becomes an error).
// It is the parser's RowsEventDecodeFunc.
func decodeRowsEvent(e *replication.RowsEvent, data []byte) error {
	_, err := decodeRowsEventUnless(e, data, nil)
	return err
}

// rowsDecision is what the parser does with a row event's images, once its
// header is read and checked.
type rowsDecision int

const (
	rowsDecode rowsDecision = iota // go-mysql decodes them into e.Rows
	rowsSkip                       // nobody reads them: e.Rows stays nil
	rowsRaw                        // the caller keeps the bytes for rowsFast: e.Rows stays nil
)

// decodeRowsEventUnless is decodeRowsEvent, except that decide (if not
// nil), given the event with its header read and checked and the bytes of
// its row images, says whether go-mysql decodes them; it returns what
// decide said.
func decodeRowsEventUnless(e *replication.RowsEvent, data []byte, decide func(e *replication.RowsEvent, rows []byte) rowsDecision) (got rowsDecision, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed row event: %v", r)
		}
	}()
	pos, err := e.DecodeHeader(data)
	if err != nil {
		return rowsDecode, err
	}
	n := int(e.ColumnCount)
	if e.Table == nil || n == 0 || e.ColumnCount != e.Table.ColumnCount {
		return rowsDecode, fmt.Errorf("malformed row event: %d columns for a table map of %d", n, tableColumns(e.Table))
	}
	full := func(bm []byte) bool {
		if len(bm) < (n+7)/8 {
			return false
		}
		for i := 0; i < n; i++ {
			if bm[i/8]&(1<<(i%8)) == 0 {
				return false
			}
		}
		return true
	}
	if !full(e.ColumnBitmap1) || e.Type() == replication.EnumRowsEventTypeUpdate && !full(e.ColumnBitmap2) {
		return rowsDecode, fmt.Errorf("row event for %s.%s lacks columns: set binlog_row_image=FULL in the server config ([mysqld] section of my.cnf) and restart it, or SET GLOBAL binlog_row_image=FULL", e.Table.Schema, e.Table.Table)
	}
	if decide != nil {
		if got = decide(e, data[pos:]); got != rowsDecode {
			return got, nil
		}
	}
	return rowsDecode, e.DecodeData(pos, data)
}

func tableColumns(tm *replication.TableMapEvent) uint64 {
	if tm == nil {
		return 0
	}
	return tm.ColumnCount
}
