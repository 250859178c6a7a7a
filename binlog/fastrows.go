package binlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// This file decodes the row images of the most common tables straight from
// the event's bytes into Values, without go-mysql's RowsEvent.DecodeData:
// that one boxes every value in an interface, allocates a map per row
// image and a string per text value, which decode.go then converts and
// copies again. On a catch-up of sysbench-like transactions that was a
// third of the sending daemon's CPU.
//
// Only tables whose every column is an integer, FLOAT, DOUBLE, CHAR,
// VARCHAR, BINARY, VARBINARY, TEXT or BLOB take this path (fastCol); any
// other column type sends the whole event through go-mysql and decode.go,
// as do compressed and partial-update events. Both paths must give the
// same Rows: TestFastRowsSameAsGoMySQL checks that on a real server's
// binlog and FuzzFastRows on arbitrary bytes.

// fastCol says how to read one column's value in a row image.
type fastCol struct {
	typ    byte // the binlog type: mysql.MYSQL_TYPE_*
	kind   Kind // of the Value: Int, Uint, Float, Double, Text or Bytes
	prefix int  // strings: bytes of the length before the value (1-4)
	padTo  int  // BINARY(n): the binlog drops trailing zero bytes; put them back
}

// fastCols returns the fast decoding of t's columns, or nil when one of
// them needs go-mysql.
func fastCols(t *tableDef) []fastCol {
	cols := make([]fastCol, len(t.dec))
	for i := range cols {
		typ, meta, cd := t.types[i], t.meta[i], &t.dec[i]
		c := fastCol{typ: typ, kind: cd.kind}
		switch typ {
		case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
			if cd.kind != Int && cd.kind != Uint {
				return nil
			}
		case mysql.MYSQL_TYPE_FLOAT, mysql.MYSQL_TYPE_DOUBLE:
		case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
			c.prefix = 1
			if meta >= 256 {
				c.prefix = 2
			}
		case mysql.MYSQL_TYPE_STRING:
			if cd.kind != Text && cd.kind != Bytes { // ENUM or SET
				return nil
			}
			// The byte length, as newTableDef computes it (padTo is
			// it for BINARY; CHAR's length is not kept there).
			length := int(meta)
			if meta >= 256 {
				b0, b1 := byte(meta>>8), byte(meta&0xff)
				if b0&0x30 != 0x30 {
					length = int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
				} else {
					length = int(b1)
				}
			}
			c.prefix = 1
			if length >= 256 {
				c.prefix = 2
			}
			c.padTo = cd.padTo
		case mysql.MYSQL_TYPE_BLOB:
			if meta < 1 || meta > 4 {
				return nil
			}
			c.prefix = int(meta)
		default:
			return nil
		}
		cols[i] = c
	}
	return cols
}

// fastEventType reports whether events of type t can be decoded here.
func fastEventType(t replication.EventType) bool {
	switch t {
	case replication.WRITE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv1,
		replication.WRITE_ROWS_EVENTv2, replication.UPDATE_ROWS_EVENTv2, replication.DELETE_ROWS_EVENTv2:
		return true
	}
	return false
}

var errFastShort = errors.New("row image ends early")

// rowsFast is rows for an event left undecoded by the parser, whose row
// images are data (everything after the event's header and column
// bitmaps, checksum removed); t.fast must be set. Every column is in every
// image (the caller checked both bitmaps are full).
func (d *decoder) rowsFast(dst []Row, t *tableDef, data []byte, op Op) ([]Row, error) {
	// One copy of the images for all the event's text values to point
	// into, and one slab of Values for all its images.
	data = append([]byte(nil), data...)
	n := len(t.fast)
	var slab []Value
	image := func() ([]Value, error) {
		if cap(slab)-len(slab) < n { // room for an update's two images, then twice as many each time
			slab = make([]Value, 0, max(2*n, 2*cap(slab)))
		}
		vals := slab[len(slab) : len(slab)+n : len(slab)+n]
		slab = slab[:len(slab)+n]
		rest, err := t.fastImage(vals, data)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.schema, t.table, err)
		}
		data = rest
		return vals, nil
	}
	for len(data) > 0 {
		r := Row{Op: op, Schema: t.schema, Table: t.table, Columns: t.columns, Key: t.key}
		first, err := image()
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
			if len(data) == 0 {
				return dst, fmt.Errorf("update row event for %s.%s has %d images, not pairs", t.schema, t.table, 2*len(dst)+1)
			}
			if r.After, err = image(); err != nil {
				return dst, err
			}
		}
		dst = append(dst, r)
	}
	return dst, nil
}

// fastImage reads one row image from data into vals (len(t.fast) of them)
// and returns what follows it.
func (t *tableDef) fastImage(vals []Value, data []byte) ([]byte, error) {
	n := len(t.fast)
	nulls := (n + 7) / 8
	if len(data) < nulls {
		return nil, errFastShort
	}
	nullBits, data := data[:nulls], data[nulls:]
	for i := range t.fast {
		c := &t.fast[i]
		if nullBits[i/8]&(1<<(i%8)) != 0 {
			vals[i] = Value{Kind: Null}
			continue
		}
		var size int
		switch c.typ {
		case mysql.MYSQL_TYPE_TINY:
			size = 1
		case mysql.MYSQL_TYPE_SHORT:
			size = 2
		case mysql.MYSQL_TYPE_INT24:
			size = 3
		case mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_FLOAT:
			size = 4
		case mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_DOUBLE:
			size = 8
		default: // a string: its length first
			if len(data) < c.prefix {
				return nil, errFastShort
			}
			var l uint64
			for k := c.prefix - 1; k >= 0; k-- {
				l = l<<8 | uint64(data[k])
			}
			if uint64(len(data)-c.prefix) < l {
				return nil, errFastShort
			}
			b := data[c.prefix : c.prefix+int(l) : c.prefix+int(l)]
			data = data[c.prefix+int(l):]
			if len(b) < c.padTo {
				p := make([]byte, c.padTo)
				copy(p, b)
				b = p
			}
			if len(b) == 0 {
				b = []byte{} // as decode.go's copy of an empty string
			}
			vals[i] = Value{Kind: c.kind, B: b}
			continue
		}
		if len(data) < size {
			return nil, errFastShort
		}
		p := data[:size]
		data = data[size:]
		switch c.typ {
		case mysql.MYSQL_TYPE_FLOAT:
			vals[i] = Value{Kind: Float, F: float64(math.Float32frombits(binary.LittleEndian.Uint32(p)))}
			continue
		case mysql.MYSQL_TYPE_DOUBLE:
			vals[i] = Value{Kind: Double, F: math.Float64frombits(binary.LittleEndian.Uint64(p))}
			continue
		}
		var u uint64
		for k := size - 1; k >= 0; k-- {
			u = u<<8 | uint64(p[k])
		}
		if c.kind == Uint {
			vals[i] = Value{Kind: Uint, U: u}
			continue
		}
		shift := 64 - 8*size // sign-extend from size bytes
		vals[i] = Value{Kind: Int, I: int64(u<<shift) >> shift}
	}
	return data, nil
}
