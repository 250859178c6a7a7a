package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/tandemhost/tandem/conflict"
)

// Unique-key clashes. Both nodes may insert, during a partition, two
// different rows (different primary keys) with the same value of a
// secondary UNIQUE key. Each node's applier then fails the peer's insert
// with a duplicate-key error; left alone, that stops replication in both
// directions for good.
//
// The rule, computed the same way on both nodes with no clock: the row
// with the smaller primary key stays, the other goes (on the node that had
// it; the other node never applies it), and the clash is logged as a row
// conflict with both rows' images, so nothing is lost from the record. Each
// node sees the same two rows, one as local and one as incoming, so both
// keep the same one.

// errUniqueClash is errorNumber 1062 (ER_DUP_ENTRY).
const errDupEntry = 1062

// uniqueClash reports the index named by a duplicate-key error, if err is
// one.
func uniqueClash(err error) (index string, ok bool) {
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != errDupEntry {
		return "", false
	}
	// "Duplicate entry 'x' for key 'name'" (MySQL 8: 'table.name').
	msg := me.Message
	end := strings.LastIndexByte(msg, '\'')
	if end <= 0 {
		return "", false
	}
	start := strings.LastIndexByte(msg[:end], '\'')
	if start < 0 {
		return "", false
	}
	name := msg[start+1 : end]
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return name, name != ""
}

// indexColumns returns the columns of index in schema.table, in order.
func indexColumns(ctx context.Context, conn *sql.Conn, schema, table, index string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = ? ORDER BY SEQ_IN_INDEX", schema, table, index)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// rowExecUnique runs an insert or update of r; when it clashes on a
// secondary unique key with a different local row, it settles the clash
// (see above) and returns the conflict to log.
func (a *Applier) rowExecUnique(ctx context.Context, conn *sql.Conn, t *Txn, r *Row, build func(*strings.Builder) error) (*conflict.Entry, error) {
	err := a.rowExec(ctx, conn, build)
	index, clash := uniqueClash(err)
	if !clash || index == "PRIMARY" || r.After == nil || len(r.Key) == 0 {
		return nil, err
	}
	cols, qerr := indexColumns(ctx, conn, r.Schema, r.Table, index)
	if qerr != nil || len(cols) == 0 {
		return nil, err
	}
	u := *r
	u.Key = nil
	for _, c := range cols {
		i := -1
		for j := range r.Columns {
			if strings.EqualFold(r.Columns[j].Name, c) {
				i = j
			}
		}
		if i < 0 {
			return nil, err
		}
		u.Key = append(u.Key, i)
	}
	cur, _, _, lerr := a.rowLock(ctx, conn, &u, r.After)
	if lerr != nil || cur == nil {
		return nil, err
	}
	keepLocal := pkLess(r, cur, r.After)
	winner := a.o.Node
	if !keepLocal {
		winner = t.Origin
		if err := a.rowExec(ctx, conn, func(b *strings.Builder) error { return applyDeleteSQL(b, &u, r.After, false, a.mysql) }); err != nil {
			return nil, fmt.Errorf("remove the local row that clashes on %s: %w", index, err)
		}
		if err := a.rowExec(ctx, conn, build); err != nil {
			return nil, err
		}
	}
	a.log.Warn("unique key clash", zap.String("schema", r.Schema), zap.String("table", r.Table), zap.String("index", index),
		zap.String("origin", t.Origin), zap.String("gtid", t.GTID), zap.String("winner", winner))
	return &conflict.Entry{
		Kind:   conflict.KindRow,
		Local:  conflict.Version{Node: a.o.Node},
		Remote: conflict.Version{Node: t.Origin},
		Winner: winner,
		Row: &conflict.Row{
			Schema:  r.Schema,
			Table:   r.Table,
			Key:     rowKeyJSON(&u, r.After),
			Before:  rowImageJSON(r, r.Before),
			After:   rowImageJSON(r, r.After),
			Current: rowRawJSON(r, cur),
		},
	}, nil
}

// pkLess reports whether the local row cur has the smaller primary key
// than the incoming image in: numbers compare as numbers, the rest as
// bytes, column by column.
func pkLess(r *Row, cur [][]byte, in []Value) bool {
	for _, k := range r.Key {
		l := cur[k]
		var b strings.Builder
		v := in[k]
		switch v.Kind {
		case Int:
			fmt.Fprint(&b, v.I)
		case Uint:
			fmt.Fprint(&b, v.U)
		case Decimal, Date, DateTime, Timestamp, Time, Enum, Set, JSON:
			b.WriteString(v.S)
		default:
			b.Write(v.B)
		}
		rs := b.String()
		if c := compareKeyPart(string(l), rs); c != 0 {
			return c < 0
		}
	}
	return false
}

func compareKeyPart(a, b string) int {
	x, okA := new(big.Rat).SetString(a)
	y, okB := new(big.Rat).SetString(b)
	if okA && okB {
		return x.Cmp(y)
	}
	return strings.Compare(a, b)
}
