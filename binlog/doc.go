// Package binlog replicates MySQL/MariaDB rows between the peers.
//
// It owns tailing the local binlog, turning row events into portable row
// transactions, applying the peer's transactions with a marker row for
// exactly-once and loop prevention, schema tracking and row conflicts.
//
// Not built yet: this package holds no code until the MySQL replication
// issue lands, and tandem does not claim to replicate databases until then.
package binlog
