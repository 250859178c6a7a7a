// Package binlog replicates MySQL/MariaDB rows between the peers.
//
// Data flow, for one direction (alpha's writes reaching beta; the other
// direction is the same with the names swapped):
//
//		alpha's mysqld --binlog--> Tailer --Txn--> Engine (sender) ==SSH "tandem-rows-zstd"==>
//		  Engine (receiver) --[]Txn--> Applier --SQL, marker row first--> beta's mysqld
//
//	  - Tailer (tail.go, decode.go, schema.go) reads the local binlog with
//	    go-mysql's BinlogSyncer from a GTID position, groups events into
//	    transactions (GTID/BEGIN .. XID/COMMIT) and turns row events into
//	    portable Txns (txn.go) using the column names and types of
//	    binlog_row_metadata=FULL. It drops every transaction that writes the
//	    marker table tandem.applied (those are the peer's own changes, applied
//	    here: forwarding them would echo), and skips schemas not replicated.
//	    DDL arrives as a Query event; one that carries the marker comment was
//	    applied by tandem and is dropped too.
//	  - The wire (wire.go) encodes Txns in pipe's codec, with limits, and is
//	    fuzzed.
//	  - Applier (apply.go, conflict.go, ddl.go) applies a peer's Txns on the
//	    local server, each in one transaction that first writes the marker
//	    row tandem.applied(origin, seq, gtid, ...) with skip_replication on
//	    (MariaDB). The marker is the checkpoint: the highest seq it holds for
//	    an origin is where that origin's stream resumes, exactly once. Each
//	    row is compared with the target's current row (SELECT ... FOR UPDATE)
//	    and a mismatch is a row conflict, decided by Config.Conflict the same
//	    way on both nodes and logged to the conflict log (kind "row").
//	  - Engine (engine.go) runs the Tailer and Applier over the pipe: on each
//	    session the receiver tells the sender the seq and GTID it has applied,
//	    and the sender tails from there. The frames the sender writes at once
//	    go zstd-compressed (zstd.go) when the peer serves the rows-zstd
//	    stream; to an older tandem, on the rows stream, as they are.
//	  - When the stream is behind, the Applier commits many source
//	    transactions in one local one, regrouped into multi-row statements,
//	    with the successive changes of each row folded into one (sql.go,
//	    applyNet).
//	  - Checks (check.go) tell whether a server is fit (binlog on, ROW, FULL
//	    image and metadata, server ids, auto_increment settings, privileges),
//	    with the fix in each message; `tandem check` and `tandem run` use
//	    them.
//	  - Seed (seed.go) copies a peer's databases to an empty node from a
//	    consistent snapshot at a known GTID, then streaming resumes there.
package binlog
