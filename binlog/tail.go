package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TailerOptions configure a Tailer.
type TailerOptions struct {
	// DSN reaches the local server, as a go-sql-driver/mysql DSN over tcp
	// or unix. Its user needs the privileges listed in Privileges.
	DSN string
	// ServerID is the id the Tailer registers with as a replica; unique
	// among the server ids of both nodes and their clients.
	ServerID uint32
	// Node is the name put in each Txn's Origin.
	Node string
	// Databases are the schemas to replicate; empty means all but the
	// system schemas (see SystemSchemas). The marker schema is never
	// replicated.
	Databases []string
	// Log receives the Tailer's logs; nil means none.
	Log *zap.Logger
	// Seen, if set, is called with the GTID of every transaction read,
	// whether emitted or dropped (the peer's own, applied here): how far
	// the binlog has been read.
	Seen func(gtid string)
	// Silence is how long Run waits for an event (the server sends a
	// heartbeat every second when idle) before it gives the connection
	// up as dead; 0 means 10 s.
	Silence time.Duration
}

// tailHeartbeat is how often the server sends a heartbeat event when it has
// nothing else to send.
const tailHeartbeat = time.Second

// SystemSchemas are never replicated.
var SystemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys", MarkerSchema}

// Tailer reads the local server's binlog and turns it into Txns.
type Tailer struct {
	opts TailerOptions
	cfg  *mysql.Config
	log  *zap.Logger
	// slowRows decodes every row event with go-mysql (see fastrows.go),
	// for the tests that compare the two.
	slowRows bool
}

// NewTailer checks the options; it does not reach the server.
func NewTailer(o TailerOptions) (*Tailer, error) {
	cfg, err := mysql.ParseDSN(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w (write it like tandem:secret@tcp(127.0.0.1:3306)/)", err)
	}
	switch cfg.Net {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("mysql dsn: protocol %q cannot stream the binlog: use tcp(host:port) or unix(/path/to/socket)", cfg.Net)
	}
	if o.ServerID == 0 {
		return nil, errors.New("tailer server_id is 0: set [mysql] server_id to a number unique among both nodes' servers and tandems")
	}
	if o.Node == "" {
		return nil, errors.New("tailer needs the node name for the transactions' origin")
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Silence <= 0 {
		o.Silence = 10 * time.Second
	}
	return &Tailer{opts: o, cfg: cfg, log: o.Log.Named("binlog.tail")}, nil
}

// Run streams the server's transactions after from to emit, one complete
// transaction at a time, in commit order, until ctx ends (then it returns
// nil) or something fails (then it returns the error; the caller resumes by
// calling Run again with the GTID of the last Txn it accepted).
//
// from is a GTID position: "" starts at the server's current position (only
// transactions committed from now on); on MariaDB it is "domain-server-seq"
// (several comma-separated for several domains), the GTID of the last
// transaction already handled; on MySQL a GTID set ("uuid:1-42"), where a
// single GTID "uuid:42" means everything up to it ("uuid:1-42").
//
// emit is called from Run's goroutine and owns the Txn. A transaction is
// emitted only once all of it has been read: a stream that breaks in the
// middle of one loses the partial copy, and the next Run reads it again.
// Transactions that write the marker table, DDL that carries DDLMarker,
// on MariaDB everything written with skip_replication=1 (MariaDB rewrites
// DROP TABLE without its comments, so the applier's session flag is what
// marks it), rows and DDL of schemas not replicated, and transactions left
// empty by that are not emitted. A data change logged as a statement
// (binlog_format not ROW in its session) on a replicated schema, and any
// XA transaction, stop Run with an error saying what to do: tandem would
// otherwise lose them silently.
func (t *Tailer) Run(ctx context.Context, from string, emit func(*Txn) error) error {
	db, err := sql.Open("mysql", t.opts.DSN)
	if err != nil {
		return fmt.Errorf("tail: open %s: %w", t.cfg.Addr, err)
	}
	defer db.Close()
	info, findings := CheckServer(ctx, db, t.opts.Databases)
	if ctx.Err() != nil {
		return nil
	}
	for _, f := range findings {
		if !f.OK && f.Fatal {
			return fmt.Errorf("tail: server %s is not fit for replication: %s: %s", t.cfg.Addr, f.What, f.Message)
		}
	}
	flavor := info.Flavor
	charsets, err := loadCharsets(ctx, db)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("tail: %w", err)
	}
	gset, err := t.startPosition(ctx, db, flavor, from)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("tail: %w", err)
	}
	db.Close()

	cfg := replication.BinlogSyncerConfig{
		ServerID:        t.opts.ServerID,
		Flavor:          flavor,
		User:            t.cfg.User,
		Password:        t.cfg.Passwd,
		Localhost:       "tandem-" + t.opts.Node,
		Charset:         "utf8mb4",
		HeartbeatPeriod: tailHeartbeat,
		// No read timeout: the syncer would set a socket deadline for
		// every packet it reads (a timer update each, 5-7% of the
		// daemon's CPU on a catch-up). A silent server is noticed by
		// the watchdog below instead.
		ReadTimeout: 0,
		// The syncer only reads the events (and checks their checksums);
		// the loop below parses them (assembler.feed), each once the
		// assembler has seen the ones before it, so that the rows of a
		// transaction it drops are not decoded.
		RawModeEnabled:   true,
		VerifyChecksum:   true,
		DisableRetrySync: true, // the caller resumes from the last Txn it accepted
		Logger:           slogFor(t.log),
		TLSConfig:        t.cfg.TLS, // the DSN's tls=... if any
	}
	network, addr := "unix", t.cfg.Addr
	if t.cfg.Net != "unix" {
		network = "tcp"
		host, port, err := net.SplitHostPort(t.cfg.Addr)
		if err != nil {
			return fmt.Errorf("tail: mysql dsn address %q: %w", t.cfg.Addr, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return fmt.Errorf("tail: mysql dsn port %q: %w", port, err)
		}
		cfg.Host, cfg.Port = host, uint16(p)
	} else {
		cfg.Host = addr
	}
	// Without a read timeout, every connection the syncer makes gets a
	// deadline of opts.Silence from its dial instead: its handshake and
	// queries, and the connection Close makes to KILL the dump thread,
	// cannot hang on a dead server. The streaming connection's deadline is
	// lifted once the dump has started (below); the watchdog guards it
	// from then on.
	var dialMu sync.Mutex
	var lastConn net.Conn
	cfg.Dialer = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(t.opts.Silence))
		dialMu.Lock()
		lastConn = c
		dialMu.Unlock()
		return c, nil
	}
	syncer := replication.NewBinlogSyncer(cfg)
	defer syncer.Close()
	stream, err := syncer.StartSyncGTID(gset)
	if err != nil {
		return fmt.Errorf("tail: start binlog stream from %q on %s: %w", gset.String(), t.cfg.Addr, err)
	}
	dialMu.Lock()
	lastConn.SetDeadline(time.Time{}) // the streaming connection
	dialMu.Unlock()
	t.log.Info("tailing binlog", zap.String("flavor", flavor), zap.String("version", info.Version), zap.String("from", gset.String()))

	dec := newDecoder(charsets)
	dec.slow = t.slowRows
	a := newAssembler(t.opts.Node, flavor, t.opts.Databases, dec, t.log)
	a.seen = t.opts.Seen
	parser := newParser(flavor, a)
	// The syncer has checked each event's checksum (VerifyChecksum above):
	// checking again cost 5% of the daemon's CPU on a catch-up.
	parser.SetVerifyChecksum(false)
	// The server sends a heartbeat event every tailHeartbeat when it has
	// nothing else to send; the watchdog ends the stream when the loop has
	// waited for an event for a whole opts.Silence and none came (a server
	// gone without closing the connection). Time spent in emit (the peer
	// holding the stream back) is not waiting.
	var progress atomic.Uint64 // events received and emits returned
	var waiting atomic.Bool    // the loop is in GetEvent
	wctx, stopWatch := context.WithCancelCause(ctx)
	defer stopWatch(nil)
	go func() {
		tick := time.NewTicker(t.opts.Silence)
		defer tick.Stop()
		last := progress.Load()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			n := progress.Load()
			if n == last && waiting.Load() {
				stopWatch(fmt.Errorf("no event or heartbeat from %s for %s: the server or the connection is gone", t.cfg.Addr, t.opts.Silence))
				return
			}
			last = n
		}
	}()
	for {
		waiting.Store(true)
		raw, err := stream.GetEvent(wctx)
		waiting.Store(false)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if c := context.Cause(wctx); c != nil {
				return fmt.Errorf("tail: %w", c)
			}
			return fmt.Errorf("tail: binlog stream from %s: %w%s", t.cfg.Addr, err, streamHint(err))
		}
		progress.Add(1)
		txns, err := a.feed(parser, raw)
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		for _, txn := range txns {
			if err := emit(txn); err != nil {
				return fmt.Errorf("tail: emit %s: %w", txn.GTID, err)
			}
			progress.Add(1)
		}
	}
}

// streamHint adds the fix for the stream errors an operator can act on.
func streamHint(err error) string {
	var me *gomysql.MyError
	if errors.As(err, &me) && me.Code == 1236 {
		return " (the position is no longer in the server's binlogs, or never was: the peer must be seeded again with `tandem db seed`)"
	}
	return ""
}

// startPosition resolves from into the GTID set to stream after.
func (t *Tailer) startPosition(ctx context.Context, db *sql.DB, flavor, from string) (gomysql.GTIDSet, error) {
	if from == "" {
		q := "SELECT @@GLOBAL.gtid_binlog_pos"
		if flavor == gomysql.MySQLFlavor {
			q = "SELECT @@GLOBAL.gtid_executed"
		}
		if err := db.QueryRowContext(ctx, q).Scan(&from); err != nil {
			return nil, fmt.Errorf("read the server's GTID position (%s): %w", q, err)
		}
		from = strings.ReplaceAll(from, "\n", "")
	} else if flavor == gomysql.MySQLFlavor {
		from = mysqlUpTo(from)
	}
	gset, err := gomysql.ParseGTIDSet(flavor, from)
	if err != nil {
		return nil, fmt.Errorf("GTID position %q: %w", from, err)
	}
	return gset, nil
}

// mysqlUpTo turns each single "uuid:N" of a MySQL GTID set into "uuid:1-N".
func mysqlUpTo(set string) string {
	parts := strings.Split(set, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		colon := strings.LastIndexByte(p, ':')
		if colon < 0 || strings.Count(p, ":") != 1 || strings.ContainsAny(p[colon+1:], "-") {
			parts[i] = p
			continue
		}
		if n, err := strconv.ParseUint(p[colon+1:], 10, 64); err == nil && n > 1 {
			p = p[:colon+1] + "1-" + p[colon+1:]
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// loadCharsets reads the server's collation ids.
func loadCharsets(ctx context.Context, db *sql.DB) (map[uint64]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("read the server's collations: %w", err)
	}
	defer rows.Close()
	m := make(map[uint64]string)
	for rows.Next() {
		var id uint64
		var cs string
		if err := rows.Scan(&id, &cs); err != nil {
			return nil, fmt.Errorf("read the server's collations: %w", err)
		}
		m[id] = cs
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the server's collations: %w", err)
	}
	return m, nil
}

// rawRows is a row event left undecoded for rowsFast, and its row images.
type rawRows struct {
	e    *replication.RowsEvent
	rows []byte
}

// assembler groups binlog events into Txns. It holds one transaction in
// progress; it never returns a partial one. Not safe for concurrent use.
type assembler struct {
	// seen, if set, hears of every finished group's GTID, sent or dropped.
	seen         func(gtid string)
	node, flavor string
	databases    map[string]bool // nil: all but SystemSchemas
	dec          *decoder
	log          *zap.Logger

	// undecoded are the row events the parser left undecoded, on the
	// assembler's word that it would ignore them (see newParser); event
	// takes each off as it reaches it.
	undecoded []*replication.RowsEvent
	// raw are the row events the parser left for rowsFast to decode,
	// with the bytes of their row images; event takes each off too.
	raw []rawRows
	// fastType says whether the event being parsed is of a type rowsFast
	// reads (set by feed; false for events parsed another way).
	fastType bool

	// The group in progress; open is false between groups.
	open       bool
	inTxn      bool // BEGIN seen (or implied), so statements until XID/COMMIT belong to it
	gtid       string
	seq        uint64
	drop       bool // it writes the marker table: applied by tandem
	rows       []Row
	ddl        *DDL
	standalone bool // MariaDB: a single statement with no BEGIN/COMMIT
}

func newAssembler(node, flavor string, databases []string, dec *decoder, log *zap.Logger) *assembler {
	a := &assembler{node: node, flavor: flavor, dec: dec, log: log}
	if len(databases) > 0 {
		a.databases = make(map[string]bool, len(databases))
		for _, d := range databases {
			if d != MarkerSchema {
				a.databases[d] = true
			}
		}
	}
	return a
}

// newParser returns a parser with the options the Tailer needs, which
// decodes the values of a row event only when a is going to read them. A
// transaction tandem applied (the peer's, which a drops) then costs the
// reading of its event headers, not the decoding of every value: on a node
// catching up, that is half the binlog it reads. The skip is safe because
// a's decision only ever goes from keep to drop within a group (see
// ignores), and a checks every event it is given (event): a row event left
// undecoded that a would read stops the stream with an error.
//
// The caller must give a each event the parser returns, in order, before
// parsing the next one: the decision reads a's state. a may be nil: then
// every row event is decoded.
func newParser(flavor string, a *assembler) *replication.BinlogParser {
	p := replication.NewBinlogParser()
	p.SetFlavor(flavor)
	p.SetParseTime(false)
	p.SetTimestampStringLocation(time.UTC)
	p.SetUseDecimal(false)           // the exact text, with its scale
	p.SetRenderJSONAsMySQLText(true) // MySQL JSON as the server prints it
	p.SetVerifyChecksum(true)
	if a == nil {
		p.SetRowsEventDecodeFunc(decodeRowsEvent)
		return p
	}
	p.SetRowsEventDecodeFunc(func(e *replication.RowsEvent, data []byte) error {
		got, err := decodeRowsEventUnless(e, data, func(e *replication.RowsEvent, rows []byte) rowsDecision {
			if a.ignores(string(e.Table.Schema), string(e.Table.Table)) {
				return rowsSkip
			}
			if a.dec.slow || !a.fastType {
				return rowsDecode
			}
			if t, err := a.dec.table(e.Table); err != nil || t.fast == nil {
				return rowsDecode // an error is reported by rows, with the event's context
			}
			a.raw = append(a.raw, rawRows{e, rows})
			return rowsRaw
		})
		if got == rowsSkip {
			a.undecoded = append(a.undecoded, e)
		}
		return err
	})
	return p
}

// feed parses an event the syncer read without parsing it (raw mode) with
// p, a parser from newParser(flavor, a), and gives it to event. A table map
// or row event of a group being dropped is not even parsed: a reads nothing
// of it, and no later group refers to its table map (every statement
// brings its own).
func (a *assembler) feed(p *replication.BinlogParser, raw *replication.BinlogEvent) ([]*Txn, error) {
	if a.open && a.drop && droppableEvent(raw.Header.EventType) {
		return nil, nil
	}
	a.fastType = fastEventType(raw.Header.EventType)
	ev, err := p.Parse(raw.RawData)
	a.fastType = false
	if err != nil {
		return nil, fmt.Errorf("binlog event at position %d: %w", raw.Header.LogPos, err)
	}
	return a.event(ev)
}

// droppableEvent reports whether events of type t may go unparsed in a
// dropped group: table maps and row events.
func droppableEvent(t replication.EventType) bool {
	switch t {
	case replication.TABLE_MAP_EVENT,
		replication.WRITE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv0,
		replication.WRITE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv1,
		replication.WRITE_ROWS_EVENTv2, replication.UPDATE_ROWS_EVENTv2, replication.DELETE_ROWS_EVENTv2,
		replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		return true
	}
	return false
}

// ignores reports whether a row event of schema.table, coming now, is
// passed over without reading its rows: the group is being dropped (it is
// the peer's, applied here), the event writes the marker table (so the
// group is), or the schema is not replicated.
func (a *assembler) ignores(schema, table string) bool {
	return a.drop || schema == MarkerSchema && table == MarkerTable || !a.replicated(schema)
}

// replicated reports whether a schema's changes are sent to the peer.
func (a *assembler) replicated(schema string) bool {
	if a.databases != nil {
		return a.databases[schema]
	}
	for _, s := range SystemSchemas {
		if strings.EqualFold(s, schema) {
			return false
		}
	}
	return true
}

func (a *assembler) reset() {
	a.open, a.inTxn, a.drop, a.standalone = false, false, false, false
	a.gtid, a.seq, a.rows, a.ddl = "", 0, nil, nil
}

// skipReplicationFlag is MariaDB's LOG_EVENT_SKIP_REPLICATION_F: the event
// was written in a session with skip_replication=1, as the applier's are.
const skipReplicationFlag = 0x8000

// event feeds one binlog event; it returns the transactions it completes
// (none, or one; a payload event may complete several).
func (a *assembler) event(ev *replication.BinlogEvent) ([]*Txn, error) {
	if a.open && a.flavor == gomysql.MariaDBFlavor && ev.Header.Flags&skipReplicationFlag != 0 {
		// Applied by tandem: MariaDB rewrites some DDL (DROP TABLE) and
		// loses the marker comment, but the session flag stays.
		a.drop = true
	}
	switch e := ev.Event.(type) {
	case *replication.TransactionPayloadEvent:
		var out []*Txn
		for _, inner := range e.Events {
			txns, err := a.event(inner)
			if err != nil {
				return out, err
			}
			out = append(out, txns...)
		}
		return out, nil
	case *replication.MariadbGTIDEvent:
		if err := a.begin(ev); err != nil {
			return nil, err
		}
		a.gtid = e.GTID.String()
		a.seq = e.GTID.SequenceNumber
		a.standalone = e.IsStandalone()
		a.inTxn = !a.standalone
		return nil, nil
	case *replication.GTIDEvent:
		if err := a.begin(ev); err != nil {
			return nil, err
		}
		set, err := e.GTIDNext()
		if err != nil {
			return nil, fmt.Errorf("GTID event: %w", err)
		}
		a.gtid = set.String()
		a.seq = uint64(e.GNO)
		return nil, nil
	case *replication.QueryEvent:
		return a.query(ev, e)
	case *replication.RowsEvent:
		if !a.open {
			return nil, fmt.Errorf("row event at binlog position %d outside a transaction", ev.Header.LogPos)
		}
		if e.Table == nil {
			return nil, fmt.Errorf("row event at binlog position %d without its table map", ev.Header.LogPos)
		}
		undecoded := false
		if i := slices.Index(a.undecoded, e); i >= 0 {
			undecoded = true
			a.undecoded = slices.Delete(a.undecoded, i, i+1)
		}
		var raw []byte
		fast := false
		if i := slices.IndexFunc(a.raw, func(r rawRows) bool { return r.e == e }); i >= 0 {
			raw, fast = a.raw[i].rows, true
			a.raw = slices.Delete(a.raw, i, i+1)
		}
		schema, table := string(e.Table.Schema), string(e.Table.Table)
		ignore := a.ignores(schema, table)
		if schema == MarkerSchema && table == MarkerTable {
			a.drop = true
			a.rows = nil
		}
		if ignore {
			return nil, nil
		}
		if undecoded {
			// Cannot happen (see newParser); if it did, the rows would
			// be lost without a word.
			return nil, fmt.Errorf("transaction %s: the row event for %s.%s at binlog position %d was not decoded", a.gtid, schema, table, ev.Header.LogPos)
		}
		var op Op
		switch e.Type() {
		case replication.EnumRowsEventTypeInsert:
			op = Insert
		case replication.EnumRowsEventTypeUpdate:
			op = Update
		case replication.EnumRowsEventTypeDelete:
			op = Delete
		default:
			return nil, fmt.Errorf("%s row event for %s.%s is not supported (partial JSON updates? set binlog_row_value_options='')", ev.Header.EventType, schema, table)
		}
		var err error
		if fast {
			var t *tableDef
			if t, err = a.dec.table(e.Table); err == nil {
				a.rows, err = a.dec.rowsFast(a.rows, t, raw, op)
			}
		} else {
			a.rows, err = a.dec.rows(a.rows, e, op)
		}
		if err != nil {
			return nil, fmt.Errorf("transaction %s: %w", a.gtid, err)
		}
		return nil, nil
	case *replication.XIDEvent:
		if !a.open {
			return nil, fmt.Errorf("commit (XID) at binlog position %d outside a transaction", ev.Header.LogPos)
		}
		return a.finish(ev), nil
	}
	// Everything else (rotate, format description, GTID lists, checkpoints,
	// heartbeats, annotations, table maps: go-mysql keeps those) says
	// nothing about rows.
	return nil, nil
}

func (a *assembler) begin(ev *replication.BinlogEvent) error {
	if a.open {
		gtid := a.gtid
		a.reset()
		return fmt.Errorf("GTID event at binlog position %d before transaction %s ended", ev.Header.LogPos, gtid)
	}
	a.open = true
	return nil
}

func (a *assembler) query(ev *replication.BinlogEvent, e *replication.QueryEvent) ([]*Txn, error) {
	q := strings.TrimSpace(string(e.Query))
	if !a.open {
		// Not in a GTID group: nothing a GTID-based stream delivers for
		// tables (old-style events, or a statement with no GTID).
		a.log.Debug("query outside a GTID group ignored", zap.String("query", abbreviate(q)))
		return nil, nil
	}
	upper := strings.ToUpper(q)
	if strings.HasPrefix(upper, "XA ") {
		gtid := a.gtid
		a.reset()
		return nil, fmt.Errorf("transaction %s is an XA transaction (%q), which tandem does not replicate: use ordinary transactions on replicated schemas", gtid, abbreviate(q))
	}
	switch upper {
	case "BEGIN", "START TRANSACTION":
		a.inTxn = true
		return nil, nil
	case "COMMIT":
		return a.finish(ev), nil
	case "ROLLBACK":
		// Written after changes to a non-transactional table in a
		// transaction rolled back: those changes stay, so they are sent.
		return a.finish(ev), nil
	}
	if d, ok := parseDDL(q, string(e.Schema)); ok {
		switch {
		case strings.Contains(q, DDLMarker):
			a.drop = true
		case !a.replicated(d.schema):
			a.log.Debug("DDL of a schema not replicated", zap.String("schema", d.schema), zap.String("query", abbreviate(q)))
		case a.ddl != nil:
			return nil, fmt.Errorf("transaction %s has two DDL statements: %q and %q", a.gtid, abbreviate(a.ddl.Statement), abbreviate(q))
		default:
			a.ddl = &DDL{Schema: string(e.Schema), Statement: q}
			if d.database {
				a.ddl.Schema = ""
			}
		}
	} else if schema, ok := parseDML(q, string(e.Schema)); ok && (schema == "" || a.replicated(schema)) {
		gtid := a.gtid
		a.reset()
		return nil, fmt.Errorf("transaction %s changes rows with a statement, not row events (%q): the session that wrote it did not use binlog_format=ROW; set binlog_format = ROW in the [mysqld] section of the server config and restart the server, then seed the peer again (`tandem db seed`) since this change cannot be replicated", gtid, abbreviate(q))
	} else {
		a.log.Debug("statement not replicated", zap.String("query", abbreviate(q)))
	}
	if !a.inTxn { // a lone statement (DDL) is its own group
		return a.finish(ev), nil
	}
	return nil, nil
}

// finish ends the group in progress and returns its Txn, if it is one to send.
func (a *assembler) finish(ev *replication.BinlogEvent) []*Txn {
	defer a.reset()
	if a.gtid != "" && a.seen != nil {
		a.seen(a.gtid)
	}
	if a.drop || (len(a.rows) == 0 && a.ddl == nil) {
		return nil
	}
	return []*Txn{{
		Origin: a.node,
		GTID:   a.gtid,
		Seq:    a.seq,
		Time:   time.Unix(int64(ev.Header.Timestamp), 0).UTC(),
		Rows:   a.rows,
		DDL:    a.ddl,
	}}
}

func abbreviate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// slogFor passes go-mysql's slog records to log: its chatty Info becomes
// Debug, warnings and errors stay what they are.
func slogFor(log *zap.Logger) *slog.Logger {
	return slog.New(&zapHandler{log: log.Named("go-mysql")})
}

type zapHandler struct {
	log   *zap.Logger
	attrs []zap.Field
}

func (h *zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.Core().Enabled(zapLevel(l))
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	}
	return zapcore.DebugLevel
}

func (h *zapHandler) Handle(_ context.Context, r slog.Record) error {
	fields := append([]zap.Field(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, zap.Any(a.Key, a.Value.Any()))
		return true
	})
	if ce := h.log.Check(zapLevel(r.Level), r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

func (h *zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &zapHandler{log: h.log, attrs: append([]zap.Field(nil), h.attrs...)}
	for _, a := range attrs {
		n.attrs = append(n.attrs, zap.Any(a.Key, a.Value.Any()))
	}
	return n
}

func (h *zapHandler) WithGroup(name string) slog.Handler {
	return &zapHandler{log: h.log.Named(name), attrs: h.attrs}
}
