package binlog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Seeding copies a node's databases to an empty peer: Dump reads them from
// a consistent snapshot and reports the GTID position the snapshot is at;
// the peer's Applier Loads what Dump emits and FinishLoad records that
// position as the origin's checkpoint, so streaming resumes right after
// the snapshot, without a gap or an overlap.
//
// DDL while a dump runs is not allowed for (a CREATE TABLE statement is
// read outside the snapshot); the snapshot covers rows only.

// DumpOptions configure Dump.
type DumpOptions struct {
	// Origin names the dumping node; it goes in every Txn emitted.
	Origin string
	// Databases are the schemas to copy; empty: all but the system
	// schemas.
	Databases []string
	// BatchRows bounds the rows of one emitted Txn (default 1000); a Txn
	// also stops at about 1 MiB of values.
	BatchRows int
	// Progress, if set, is called after each emitted Txn.
	Progress func(SeedProgress)
}

// SeedProgress tells how far a Dump is.
type SeedProgress struct {
	Schema, Table string
	// Rows is how many rows of Table have been emitted; TableRows is the
	// server's estimate of its rows (information_schema), for a percentage.
	Rows, TableRows int64
	// Tables is how many tables the dump covers, Done how many are
	// finished.
	Tables, Done int
}

// seedSkip are the schemas a dump leaves out unless named.
var seedSkip = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true, MarkerSchema: true}

// Dump reads the databases from one consistent snapshot and emits them:
// for each schema a CREATE DATABASE, then for each table its CREATE TABLE
// (DDL Txns), then its rows as Insert Txns of bounded size. It returns the
// snapshot's GTID position (MariaDB: BINLOG_GTID_POS of the snapshot's
// binlog file and position, read without locking; MySQL: @@gtid_executed
// under a brief FLUSH TABLES WITH READ LOCK). Emitted Txns have Seq 1, 2,
// ... and no GTID: they are not part of the binlog stream. An error from
// emit stops the dump and is returned.
func Dump(ctx context.Context, db *sql.DB, o DumpOptions, emit func(*Txn) error) (gtid string, err error) {
	if o.BatchRows <= 0 {
		o.BatchRows = 1000
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("dump: connect: %w", err)
	}
	defer func() {
		// The session was changed (character set of results, time zone):
		// the connection is not given back to the caller's pool.
		conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}()
	var version string
	if err := conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return "", fmt.Errorf("dump: %w", err)
	}
	mariadb := strings.Contains(strings.ToLower(version), "mariadb")
	// Results in the columns' own character sets, TIMESTAMPs in UTC.
	for _, q := range []string{
		"SET SESSION time_zone = '+00:00', character_set_results = NULL",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("dump: %s: %w", q, err)
		}
	}
	if mariadb {
		gtid, err = seedSnapshotMariaDB(ctx, conn)
	} else {
		gtid, err = seedSnapshotMySQL(ctx, conn)
	}
	if err != nil {
		return "", fmt.Errorf("dump: %w", err)
	}

	schemas := o.Databases
	if len(schemas) == 0 {
		if schemas, err = seedStrings(ctx, conn, "SELECT schema_name FROM information_schema.schemata ORDER BY schema_name"); err != nil {
			return "", fmt.Errorf("dump: list schemas: %w", err)
		}
		schemas = seedFilter(schemas)
	}
	type table struct{ schema, name string }
	var tables []table
	for _, s := range schemas {
		names, err := seedStrings(ctx, conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name", s)
		if err != nil {
			return "", fmt.Errorf("dump: list tables of %s: %w", s, err)
		}
		for _, n := range names {
			tables = append(tables, table{s, n})
		}
	}
	d := &seedDumper{conn: conn, o: o, emit: emit, tables: len(tables)}
	for _, s := range schemas {
		var name, create string
		if err := conn.QueryRowContext(ctx, "SHOW CREATE DATABASE "+seedIdent(s)).Scan(&name, &create); err != nil {
			return "", fmt.Errorf("dump: schema %s: %w", s, err)
		}
		create = strings.Replace(create, "CREATE DATABASE ", "CREATE DATABASE IF NOT EXISTS ", 1)
		create = strings.Replace(create, "IF NOT EXISTS /*!32312 IF NOT EXISTS*/", "IF NOT EXISTS", 1)
		if err := d.send(&Txn{DDL: &DDL{Statement: create}}); err != nil {
			return "", fmt.Errorf("dump schema %s: %w", s, err)
		}
	}
	for _, t := range tables {
		if err := d.table(ctx, t.schema, t.name); err != nil {
			return "", fmt.Errorf("dump %s.%s: %w", t.schema, t.name, err)
		}
		d.done++
	}
	return gtid, nil
}

func seedSnapshotMariaDB(ctx context.Context, conn *sql.Conn) (string, error) {
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return "", err
	}
	var file string
	var pos uint64
	rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return "", err
		}
		switch strings.ToLower(k) {
		case "binlog_snapshot_file":
			file = v
		case "binlog_snapshot_position":
			pos, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	rows.Close()
	if file == "" {
		return "", errors.New("no binlog_snapshot_file: is the binlog on (log_bin)?")
	}
	var gtid sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", file, pos).Scan(&gtid); err != nil {
		return "", fmt.Errorf("BINLOG_GTID_POS(%s, %d): %w", file, pos, err)
	}
	if !gtid.Valid {
		return "", fmt.Errorf("BINLOG_GTID_POS(%s, %d) is NULL: the binlog file is gone?", file, pos)
	}
	return gtid.String, nil
}

func seedSnapshotMySQL(ctx context.Context, conn *sql.Conn) (string, error) {
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		return "", fmt.Errorf("FLUSH TABLES WITH READ LOCK (needs RELOAD): %w", err)
	}
	defer conn.ExecContext(context.Background(), "UNLOCK TABLES")
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return "", err
	}
	var gtid string
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&gtid); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		return "", err
	}
	return strings.ReplaceAll(gtid, "\n", ""), nil
}

func seedFilter(schemas []string) []string {
	var out []string
	for _, s := range schemas {
		if !seedSkip[s] {
			out = append(out, s)
		}
	}
	return out
}

func seedStrings(ctx context.Context, conn *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s []byte // character_set_results is NULL: raw bytes
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, string(s))
	}
	return out, rows.Err()
}

func seedIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

type seedDumper struct {
	conn   *sql.Conn
	o      DumpOptions
	emit   func(*Txn) error
	seq    uint64
	tables int
	done   int
	prog   SeedProgress
}

func (d *seedDumper) send(t *Txn) error {
	d.seq++
	t.Origin, t.Seq = d.o.Origin, d.seq
	if err := d.emit(t); err != nil {
		return err
	}
	if d.o.Progress != nil {
		d.prog.Tables, d.prog.Done = d.tables, d.done
		d.o.Progress(d.prog)
	}
	return nil
}

// seedColumn is what a dump needs to know of a column.
type seedColumn struct {
	col  Column
	kind Kind // the Kind of its values (Null aside)
	expr string
}

func (d *seedDumper) table(ctx context.Context, schema, table string) error {
	var name, create string
	if err := d.conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+seedIdent(schema)+"."+seedIdent(table)).Scan(&name, &create); err != nil {
		return err
	}
	create = strings.Replace(create, "CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1)
	d.prog = SeedProgress{Schema: schema, Table: table}
	if err := d.send(&Txn{DDL: &DDL{Schema: schema, Statement: create}}); err != nil {
		return err
	}
	rows, err := d.conn.QueryContext(ctx, `SELECT column_name, data_type, column_type, IFNULL(character_set_name, '')
		FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position`, schema, table)
	if err != nil {
		return err
	}
	var cols []seedColumn
	for rows.Next() {
		var n, dt, ct, cs []byte
		if err := rows.Scan(&n, &dt, &ct, &cs); err != nil {
			rows.Close()
			return err
		}
		c, err := seedColumnOf(string(n), strings.ToLower(string(dt)), strings.ToLower(string(ct)), string(cs))
		if err != nil {
			rows.Close()
			return err
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	keyNames, err := seedStrings(ctx, d.conn, "SELECT column_name FROM information_schema.statistics WHERE table_schema = ? AND table_name = ? AND index_name = 'PRIMARY' ORDER BY seq_in_index", schema, table)
	if err != nil {
		return err
	}
	var key []int
	for _, k := range keyNames {
		for i, c := range cols {
			if c.col.Name == k {
				key = append(key, i)
			}
		}
	}
	var estimate sql.NullInt64
	d.conn.QueryRowContext(ctx, "SELECT table_rows FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", schema, table).Scan(&estimate)
	d.prog.TableRows = estimate.Int64

	columns := make([]Column, len(cols))
	exprs := make([]string, len(cols))
	for i, c := range cols {
		columns[i] = c.col
		exprs[i] = c.expr
	}
	// A prepared statement (the binary protocol) brings FLOAT and DOUBLE
	// as their exact bits, not as rounded text.
	q := "SELECT " + strings.Join(exprs, ",") + " FROM " + seedIdent(schema) + "." + seedIdent(table) + " WHERE ? = 1"
	if len(key) > 0 {
		var ks []string
		for _, k := range key {
			ks = append(ks, seedIdent(cols[k].col.Name))
		}
		q += " ORDER BY " + strings.Join(ks, ",")
	}
	data, err := d.conn.QueryContext(ctx, q, 1)
	if err != nil {
		return err
	}
	defer data.Close()
	cells := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range cells {
		ptrs[i] = &cells[i]
	}
	var batch []Row
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		t := &Txn{Rows: batch}
		batch, size = nil, 0
		return d.send(t)
	}
	for data.Next() {
		if err := data.Scan(ptrs...); err != nil {
			return err
		}
		vals := make([]Value, len(cols))
		for i, c := range cols {
			v, err := seedValue(c, cells[i])
			if err != nil {
				return fmt.Errorf("column %s: %w", c.col.Name, err)
			}
			vals[i] = v
			size += len(v.B) + len(v.S) + 8
		}
		batch = append(batch, Row{Op: Insert, Schema: schema, Table: table, Columns: columns, Key: key, After: vals})
		d.prog.Rows++
		if len(batch) >= d.o.BatchRows || size >= 1<<20 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := data.Err(); err != nil {
		return err
	}
	return flush()
}

// seedColumnOf maps an information_schema column to how it is read and
// what Kind its values are.
func seedColumnOf(name, dataType, columnType, charset string) (seedColumn, error) {
	c := seedColumn{col: Column{Name: name, Type: columnType}, expr: seedIdent(name)}
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		c.kind = Int
		if strings.Contains(columnType, "unsigned") {
			c.kind = Uint
		}
	case "year":
		c.kind, c.expr = Int, seedIdent(name)+"+0"
	case "bit":
		c.kind, c.expr = Uint, seedIdent(name)+"+0"
	case "float":
		c.kind = Float
	case "double", "real":
		c.kind = Double
	case "decimal", "numeric":
		c.kind = Decimal
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		c.kind, c.col.Charset = Text, charset
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.kind = Bytes
	case "date":
		c.kind = Date
	case "datetime":
		c.kind = DateTime
	case "timestamp":
		c.kind = Timestamp
	case "time":
		c.kind = Time
	case "enum":
		c.kind = Enum
	case "set":
		c.kind = Set
	case "json":
		c.kind = JSON
	default:
		return c, fmt.Errorf("column %s: type %s is not supported by tandem's seeding", name, columnType)
	}
	return c, nil
}

// seedValue converts a cell read by the binary protocol.
func seedValue(c seedColumn, cell any) (Value, error) {
	if cell == nil {
		return Value{Kind: Null}, nil
	}
	text := func() (string, error) {
		switch x := cell.(type) {
		case []byte:
			return string(x), nil
		case string:
			return x, nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case uint64:
			return strconv.FormatUint(x, 10), nil
		}
		return "", fmt.Errorf("unexpected %T", cell)
	}
	switch c.kind {
	case Int:
		switch x := cell.(type) {
		case int64:
			return Value{Kind: Int, I: x}, nil
		}
		s, err := text()
		if err != nil {
			return Value{}, err
		}
		i, err := strconv.ParseInt(s, 10, 64)
		return Value{Kind: Int, I: i}, err
	case Uint:
		switch x := cell.(type) {
		case uint64:
			return Value{Kind: Uint, U: x}, nil
		case int64:
			return Value{Kind: Uint, U: uint64(x)}, nil
		}
		s, err := text()
		if err != nil {
			return Value{}, err
		}
		u, err := strconv.ParseUint(s, 10, 64)
		return Value{Kind: Uint, U: u}, err
	case Float, Double:
		switch x := cell.(type) {
		case float32:
			return Value{Kind: c.kind, F: float64(x)}, nil
		case float64:
			return Value{Kind: c.kind, F: x}, nil
		}
		s, err := text()
		if err != nil {
			return Value{}, err
		}
		f, err := strconv.ParseFloat(s, 64)
		return Value{Kind: c.kind, F: f}, err
	case Text, Bytes:
		switch x := cell.(type) {
		case []byte:
			return Value{Kind: c.kind, B: append([]byte{}, x...)}, nil
		case string:
			return Value{Kind: c.kind, B: []byte(x)}, nil
		}
		return Value{}, fmt.Errorf("unexpected %T", cell)
	}
	s, err := text()
	return Value{Kind: c.kind, S: s}, err
}

// Load applies one Txn of a Dump to this (empty) server: its DDL, or its
// rows as plain inserts. It writes no marker row: the rows are not part of
// the origin's stream; FinishLoad sets the checkpoint once all are in.
// DDL carries DDLMarker and, like the rows, skip_replication (MariaDB), so
// the seed is not sent back.
func (a *Applier) Load(ctx context.Context, t *Txn) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.DDL != nil {
		if strings.TrimSpace(t.DDL.Statement) == "" {
			return errors.New("load: empty DDL statement")
		}
		conn, err := a.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("load: connect: %w", err)
		}
		defer conn.Close()
		// Tables come in name order, so a child table may come before the
		// parent its foreign key names (and its rows before the parent's):
		// as in mysqldump, foreign keys are not checked while loading a
		// snapshot, which is consistent as a whole.
		q := a.session + ", foreign_key_checks=0;"
		if t.DDL.Schema != "" {
			q += "USE " + seedIdent(t.DDL.Schema) + ";"
		}
		_, err = applyExec(ctx, conn, q+ddlMarked(t.DDL.Statement)+";SET SESSION foreign_key_checks=1")
		clear(a.generated)
		clear(a.foldable)
		if err != nil {
			return fmt.Errorf("load: %s: %w", abbreviateDDL(t.DDL.Statement), err)
		}
		return nil
	}
	t, err := a.withoutGenerated(ctx, t)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	for i := range t.Rows {
		if t.Rows[i].Op != Insert {
			return fmt.Errorf("load: row %d is an %s; a dump has only inserts", i, t.Rows[i].Op)
		}
		if err := applyCheckRow(&t.Rows[i]); err != nil {
			return fmt.Errorf("load: row %d (%s.%s): %w", i, t.Rows[i].Schema, t.Rows[i].Table, err)
		}
	}
	var b strings.Builder
	b.WriteString(a.session + ", foreign_key_checks=0;START TRANSACTION")
	for i := range t.Rows {
		b.WriteByte(';')
		if err := applyInsertSQL(&b, &t.Rows[i], false, a.mysql); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("load: connect: %w", err)
	}
	defer conn.Close()
	if _, err := applyExec(ctx, conn, b.String()); err != nil {
		a.rollback(conn)
		return fmt.Errorf("load %d rows into %s.%s: %w", len(t.Rows), t.Rows[0].Schema, t.Rows[0].Table, err)
	}
	if _, err := applyExec(ctx, conn, "COMMIT;SET SESSION foreign_key_checks=1"); err != nil {
		a.rollback(conn)
		return fmt.Errorf("load %d rows into %s.%s: commit: %w", len(t.Rows), t.Rows[0].Schema, t.Rows[0].Table, err)
	}
	return nil
}

// FinishLoad records the dump's GTID position as origin's checkpoint:
// Applied(origin) then returns it and the stream resumes after it. Earlier
// marker rows of origin are dropped. Its seq is the highest sequence
// number in the position (one domain, as a pair of nodes has, gives the
// obvious one).
func (a *Applier) FinishLoad(ctx context.Context, origin, gtid string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.pruneWait(); err != nil {
		return fmt.Errorf("finish load: %w", err)
	}
	seq, err := seedSeqOf(gtid)
	if err != nil {
		return fmt.Errorf("finish load: %w", err)
	}
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("finish load: connect: %w", err)
	}
	defer conn.Close()
	var b strings.Builder
	b.WriteString(a.session + ";START TRANSACTION;DELETE FROM `" + MarkerSchema + "`.`" + MarkerTable + "` WHERE origin = _utf8mb4 ")
	applyHex(&b, []byte(origin))
	b.WriteString(";DELETE FROM `" + MarkerSchema + "`.`" + MarkerBatchTable + "` WHERE origin = _utf8mb4 ")
	applyHex(&b, []byte(origin))
	b.WriteByte(';')
	a.markerSQL(&b, []*applyItem{{t: &Txn{Origin: origin, Seq: seq, GTID: gtid}}}, false)
	if _, err := applyExec(ctx, conn, b.String()); err != nil {
		a.rollback(conn)
		return fmt.Errorf("finish load: %w", err)
	}
	if _, err := applyExec(ctx, conn, "COMMIT"); err != nil {
		a.rollback(conn)
		return fmt.Errorf("finish load: %w", err)
	}
	delete(a.origins, origin)
	return nil
}

// seedSeqOf returns the highest sequence number in a GTID position:
// MariaDB "0-1-42,1-2-7" or MySQL "uuid:1-42:50,uuid2:1-3". An empty
// position (nothing written yet) is 0.
func seedSeqOf(pos string) (uint64, error) {
	var hi uint64
	pos = strings.TrimSpace(pos)
	if pos == "" {
		return 0, nil
	}
	for _, part := range strings.Split(pos, ",") {
		part = strings.TrimSpace(part)
		var nums []string
		if i := strings.IndexByte(part, ':'); i >= 0 { // MySQL uuid:intervals
			for _, iv := range strings.Split(part[i+1:], ":") {
				nums = append(nums, iv[strings.LastIndexByte(iv, '-')+1:])
			}
		} else { // MariaDB domain-server-seq
			f := strings.Split(part, "-")
			if len(f) != 3 {
				return 0, fmt.Errorf("GTID position %q: %q is not domain-server-seq", pos, part)
			}
			nums = f[2:]
		}
		for _, n := range nums {
			v, err := strconv.ParseUint(n, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("GTID position %q: %q: %w", pos, part, err)
			}
			hi = max(hi, v)
		}
	}
	return hi, nil
}
