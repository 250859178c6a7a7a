package snapshot

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"go.uber.org/zap"

	_ "github.com/go-sql-driver/mysql" // the driver the DSNs are for
)

// Position is where a dump stands in the database's history.
type Position struct {
	GTID string // the GTID position of the consistent snapshot ("" when unknown)
	File string // binlog file
	Pos  uint64 // binlog offset
}

// TableInfo is one table's dump in a snapshot.
type TableInfo struct {
	Database string `json:"database"`
	Table    string `json:"table"`
	// File is the dump, relative to the snapshot's db directory.
	File string `json:"file"`
	// Checksum is CHECKSUM TABLE's answer, "" when it had none (NULL).
	Checksum string `json:"checksum"`
	// DefHash is the BLAKE3 of SHOW CREATE TABLE.
	DefHash string `json:"def_hash"`
	Rows    int64  `json:"rows"`
	// Hash and Size are the compressed file's, for verify.
	Hash string `json:"hash"`
	Size int64  `json:"size"`
	// Linked says the file is the previous snapshot's (the table was
	// unchanged).
	Linked bool `json:"linked,omitempty"`
}

// systemSchemas are never dumped unless named.
var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true, "tandem": true}

// Dumper dumps databases consistently, one zstd-compressed SQL file per
// table.
type Dumper struct {
	dsn       string
	databases []string
	log       *zap.Logger
	// afterStart, when set (tests), runs once the snapshot transaction
	// has started.
	afterStart func()
}

// NewDumper returns a dumper for the server at dsn (a go-sql-driver/mysql
// DSN) and the databases named (nil: all but the system schemas and
// tandem's own).
func NewDumper(dsn string, databases []string, log *zap.Logger) *Dumper {
	if log == nil {
		log = zap.NewNop()
	}
	return &Dumper{dsn: dsn, databases: databases, log: log.Named("dump")}
}

// insertBatch is the size of SQL text after which an INSERT is cut.
const insertBatch = 1 << 20

// Dump writes every table of the databases into dir, all read inside one
// consistent-snapshot transaction, and returns the position of that
// snapshot, the tables and the bytes written anew. A table whose checksum
// and definition equal its entry in prev (the previous snapshot's tables,
// whose files are under prevDir) is hard-linked from there instead.
func (d *Dumper) Dump(ctx context.Context, dir, prevDir string, prev []TableInfo) (Position, []TableInfo, int64, error) {
	var pos Position
	db, err := sql.Open("mysql", d.dsn)
	if err != nil {
		return pos, nil, 0, fmt.Errorf("dsn: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return pos, nil, 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	for _, q := range []string{
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return pos, nil, 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	if d.afterStart != nil {
		d.afterStart()
	}
	if pos, err = snapshotPosition(ctx, conn); err != nil {
		return pos, nil, 0, err
	}
	dbs := d.databases
	if len(dbs) == 0 {
		if dbs, err = listDatabases(ctx, conn); err != nil {
			return pos, nil, 0, err
		}
	}
	prevBy := map[[2]string]TableInfo{}
	for _, t := range prev {
		prevBy[[2]string{t.Database, t.Table}] = t
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return pos, nil, 0, err
	}
	var tables []TableInfo
	var written int64
	for _, schema := range dbs {
		names, err := queryStrings(ctx, conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", schema)
		if err != nil {
			return pos, nil, 0, fmt.Errorf("tables of %s: %w", schema, err)
		}
		if len(names) == 0 {
			// Keep an empty database visible in the snapshot.
			d.log.Info("database has no tables", zap.String("database", schema))
		}
		if err := os.MkdirAll(filepath.Join(dir, nameDir(schema)), 0o700); err != nil {
			return pos, nil, 0, err
		}
		for _, name := range names {
			t, err := d.table(ctx, conn, dir, prevDir, schema, name, prevBy)
			if err != nil {
				return pos, nil, 0, fmt.Errorf("table %s.%s: %w", schema, name, err)
			}
			if !t.Linked {
				written += t.Size
			}
			tables = append(tables, t)
		}
		if err := syncDir(filepath.Join(dir, nameDir(schema))); err != nil {
			return pos, nil, 0, err
		}
	}
	if err := syncDir(dir); err != nil {
		return pos, nil, 0, err
	}
	return pos, tables, written, nil
}

// snapshotPosition reads the binlog position of the transaction's snapshot
// (MariaDB's binlog_snapshot_file/position) and its GTID.
func snapshotPosition(ctx context.Context, conn *sql.Conn) (Position, error) {
	var pos Position
	rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return pos, fmt.Errorf("binlog snapshot position: %w", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return pos, err
		}
		switch strings.ToLower(k) {
		case "binlog_snapshot_file":
			pos.File = v
		case "binlog_snapshot_position":
			pos.Pos, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return pos, err
	}
	if pos.File == "" {
		return pos, nil // no binlog (or not MariaDB): no position to record
	}
	var gtid sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", pos.File, pos.Pos).Scan(&gtid); err != nil {
		return pos, fmt.Errorf("BINLOG_GTID_POS: %w", err)
	}
	pos.GTID = gtid.String
	return pos, nil
}

func listDatabases(ctx context.Context, conn *sql.Conn) ([]string, error) {
	all, err := queryStrings(ctx, conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	var out []string
	for _, s := range all {
		if !systemSchemas[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

func queryStrings(ctx context.Context, conn *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// nameDir is a database or table name as a file name.
func nameDir(name string) string { return rootDirName(name) }

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (d *Dumper) table(ctx context.Context, conn *sql.Conn, dir, prevDir, schema, name string, prevBy map[[2]string]TableInfo) (TableInfo, error) {
	t := TableInfo{Database: schema, Table: name, File: nameDir(schema) + "/" + nameDir(name) + ".sql.zst"}
	qname := quoteIdent(schema) + "." + quoteIdent(name)
	var tn, create string
	if err := conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+qname).Scan(&tn, &create); err != nil {
		return t, fmt.Errorf("SHOW CREATE TABLE: %w", err)
	}
	dh := blake3.Sum256([]byte(create))
	t.DefHash = hex.EncodeToString(dh[:])
	var sum sql.NullString
	if err := conn.QueryRowContext(ctx, "CHECKSUM TABLE "+qname).Scan(&tn, &sum); err != nil {
		return t, fmt.Errorf("CHECKSUM TABLE: %w", err)
	}
	t.Checksum = sum.String
	dst := filepath.Join(dir, filepath.FromSlash(t.File))
	if p, ok := prevBy[[2]string{schema, name}]; ok && prevDir != "" && sum.Valid && p.Checksum == t.Checksum && p.DefHash == t.DefHash && p.File == t.File {
		if err := os.Link(filepath.Join(prevDir, filepath.FromSlash(p.File)), dst); err == nil {
			t.Rows, t.Hash, t.Size, t.Linked = p.Rows, p.Hash, p.Size, true
			return t, nil
		}
	}
	cols, err := tableColumns(ctx, conn, schema, name)
	if err != nil {
		return t, err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return t, err
	}
	defer f.Close()
	h := blake3.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return t, err
	}
	bw := bufio.NewWriterSize(zw, 256<<10)
	fmt.Fprintf(bw, "-- tandem dump of %s\n%s;\n", qname, create)
	if t.Rows, err = dumpRows(ctx, conn, bw, qname, quoteIdent(name), cols); err != nil {
		zw.Close()
		return t, err
	}
	if err := bw.Flush(); err != nil {
		return t, err
	}
	if err := zw.Close(); err != nil {
		return t, err
	}
	if err := f.Sync(); err != nil {
		return t, err
	}
	if err := f.Close(); err != nil {
		return t, err
	}
	t.Hash, t.Size = hex.EncodeToString(h.Sum(nil)), cw.n
	return t, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type column struct {
	name string
	kind byte // 'n' number, 'b' binary (hex), 's' string
}

// tableColumns lists the columns an INSERT must give: all but generated
// ones, with how to write their values.
func tableColumns(ctx context.Context, conn *sql.Conn, schema, name string) ([]column, error) {
	rows, err := conn.QueryContext(ctx, "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", schema, name)
	if err != nil {
		return nil, fmt.Errorf("columns: %w", err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		var typ, extra string
		if err := rows.Scan(&c.name, &typ, &extra); err != nil {
			return nil, err
		}
		if strings.Contains(strings.ToUpper(extra), "GENERATED") {
			continue
		}
		switch strings.ToLower(typ) {
		case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float", "double", "real", "year":
			c.kind = 'n'
		case "bit", "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point", "linestring", "polygon",
			"multipoint", "multilinestring", "multipolygon", "geometrycollection":
			c.kind = 'b'
		default:
			c.kind = 's'
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, errors.New("no columns to dump")
	}
	return cols, nil
}

// dumpRows writes INSERT statements for every row of qname, each at most
// about insertBatch bytes, and returns the number of rows.
func dumpRows(ctx context.Context, conn *sql.Conn, w *bufio.Writer, qname, table string, cols []column) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c.name)
	}
	list := strings.Join(names, ",")
	rows, err := conn.QueryContext(ctx, "SELECT "+list+" FROM "+qname)
	if err != nil {
		return 0, fmt.Errorf("select: %w", err)
	}
	defer rows.Close()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	head := "INSERT INTO " + table + " (" + list + ") VALUES "
	var n int64
	var stmt []byte
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		if len(stmt) == 0 {
			stmt = append(stmt, head...)
		} else {
			stmt = append(stmt, ',')
		}
		stmt = append(stmt, '(')
		for i, v := range vals {
			if i > 0 {
				stmt = append(stmt, ',')
			}
			stmt = appendValue(stmt, cols[i].kind, v)
		}
		stmt = append(stmt, ')')
		n++
		if len(stmt) >= insertBatch {
			stmt = append(stmt, ";\n"...)
			if _, err := w.Write(stmt); err != nil {
				return n, err
			}
			stmt = stmt[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if len(stmt) > 0 {
		stmt = append(stmt, ";\n"...)
		if _, err := w.Write(stmt); err != nil {
			return n, err
		}
	}
	return n, nil
}

// appendValue appends v as an SQL literal: NULL, a number as the server
// gave it, binary data in hex, anything else as an escaped string.
func appendValue(b []byte, kind byte, v sql.RawBytes) []byte {
	switch {
	case v == nil:
		return append(b, "NULL"...)
	case kind == 'n':
		return append(b, v...)
	case kind == 'b' && len(v) == 0:
		return append(b, "''"...)
	case kind == 'b':
		b = append(b, "0x"...)
		return hex.AppendEncode(b, v)
	}
	b = append(b, '\'')
	for _, c := range v {
		switch c {
		case 0:
			b = append(b, '\\', '0')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0x1a:
			b = append(b, '\\', 'Z')
		case '\'', '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '\'')
}
