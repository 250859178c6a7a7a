package binlog

import "time"

// This file is the contract between the tailer (which makes Txns from the
// local binlog), the wire (which carries them to the peer) and the applier
// (which applies the peer's Txns to the local server).

// Txn is one transaction committed on a node's server, in a form any
// MySQL/MariaDB server can apply: column names and typed values, nothing
// that depends on the source server's binlog format.
type Txn struct {
	// Origin is the name of the node whose server committed it.
	Origin string
	// GTID is the source server's GTID for it: "0-1-42" (MariaDB
	// domain-server-seq) or "3E11FA47-71CA-11E1-9E33-C80AA9429562:42"
	// (MySQL uuid:gno).
	GTID string
	// Seq orders the origin's transactions: the GTID's sequence number
	// (MariaDB seq_no, MySQL gno). Strictly increasing along one origin's
	// stream; the applier's checkpoint is the highest Seq applied.
	Seq uint64
	// Time is the commit time on the source (the binlog event timestamp,
	// second precision), UTC. The "newer" conflict rule compares it.
	Time time.Time
	// Rows are the row changes in commit order. Empty for a DDL Txn, but
	// for CREATE TABLE ... SELECT: its inserted rows come with its DDL.
	Rows []Row
	// DDL is set for a schema change; it is the only statement of its Txn
	// (CREATE TABLE ... SELECT: apply the DDL, then Rows).
	DDL *DDL
}

// Op is what a Row does.
type Op uint8

const (
	Insert Op = iota + 1
	Update
	Delete
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "op?"
}

// Row is one changed row.
type Row struct {
	Op     Op
	Schema string
	Table  string
	// Columns names the table's columns, in table order, as the source had
	// them when the row was written (binlog_row_metadata=FULL).
	Columns []Column
	// Key lists the indexes into Columns that form the primary key (or,
	// lacking one, the first unique key of non-null columns). Empty when the
	// table has neither: then the whole before image identifies the row.
	Key []int
	// Before is the row's image before the change (Update, Delete), After
	// the image after it (Insert, Update); each has one Value per column
	// (binlog_row_image=FULL).
	Before, After []Value
}

// Column describes one column of a Row's table.
type Column struct {
	Name string
	// Type is the column's SQL type as the source declared it, lower case,
	// e.g. "int unsigned", "decimal(10,2)", "varchar(20)", "datetime(6)".
	// Informational: the applier writes values by Kind.
	Type string
	// Charset is the character set of a text column ("utf8mb4", "latin1"),
	// empty for others. Text values are carried in it.
	Charset string
}

// Kind is a Value's type.
type Kind uint8

const (
	Null      Kind = iota // SQL NULL
	Int                   // I: TINYINT..BIGINT signed, YEAR
	Uint                  // U: unsigned integers, BIT (as a number)
	Float                 // F: FLOAT, widened to float64 exactly
	Double                // F: DOUBLE
	Decimal               // S: exact decimal text, like "-123.4500"
	Text                  // B: CHAR/VARCHAR/TEXT bytes in the column's Charset
	Bytes                 // B: BINARY/VARBINARY/BLOB
	Date                  // S: "2006-01-02"
	DateTime              // S: "2006-01-02 15:04:05.999999" (as stored, no zone)
	Timestamp             // S: "2006-01-02 15:04:05.999999" in UTC
	Time                  // S: "-838:59:59.999999" (TIME may exceed a day)
	Enum                  // S: the member's name
	Set                   // S: the members' names joined by ","
	JSON                  // S: the JSON document as text
)

func (k Kind) String() string {
	names := [...]string{"null", "int", "uint", "float", "double", "decimal", "text", "bytes", "date", "datetime", "timestamp", "time", "enum", "set", "json"}
	if int(k) < len(names) {
		return names[k]
	}
	return "kind?"
}

// Value is one column's value. Which field holds it depends on Kind.
type Value struct {
	Kind Kind
	I    int64
	U    uint64
	F    float64
	S    string
	B    []byte
}

// DDL is a replicated schema change: CREATE/ALTER/DROP/RENAME TABLE,
// CREATE/DROP DATABASE.
type DDL struct {
	// Schema is the default database the statement ran in ("" for none).
	Schema string
	// Statement is the SQL as the source ran it.
	Statement string
}

// The marker: every transaction the applier commits first writes a row in
// MarkerSchema.MarkerTable, and every DDL it runs carries DDLMarker. The
// tailer drops both, so nothing the peer sent is sent back.
const (
	MarkerSchema = "tandem"
	MarkerTable  = "applied"
	DDLMarker    = "/* tandem:applied */"
)
