package binlog

import (
	"fmt"

	"github.com/tandemhost/tandem/internal/setting"
)

// Config is the [mysql] section. Database replication is on when DSN is set.
type Config struct {
	// DSN reaches the local server, as a go-sql-driver/mysql DSN:
	// "tandem:secret@tcp(127.0.0.1:3306)/" or "tandem:secret@unix(/run/mysqld/mysqld.sock)/".
	DSN string `toml:"dsn"`
	// ServerID is this node's binlog client id; unique among the servers
	// and clients of both nodes.
	ServerID uint32 `toml:"server_id"`
	// Databases are the schemas to replicate. Default: all but the system
	// schemas (mysql, information_schema, performance_schema, sys, tandem).
	Databases []string `toml:"databases"`
	// Conflict is the rule for concurrent changes of one row: "newer" (the
	// later commit wins, ties by node name) or "primary" (the primary's
	// version wins). Default: "newer".
	Conflict string `toml:"conflict"`
	// LogApplied: also write the peer's transactions, applied here, into
	// this server's binlog, as a native replica does with
	// log_slave_updates, so that a native replica or a binlog replay of
	// this server has them. Default false, like MariaDB's own
	// log_slave_updates: they are applied with sql_log_bin=0, which
	// spares the server the binlog writes and tandem's tailer reading them
	// back only to skip them (catch-up: 15-40% more transactions/s). The
	// privilege sql_log_bin needs (BINLOG ADMIN on MariaDB 10.5.2+, SUPER
	// before) is the one skip_replication needs already.
	LogApplied bool `toml:"log_applied"`
}

// SkipBinlog reports whether applied transactions stay out of the binlog
// (log_applied = false, the default).
func (c *Config) SkipBinlog() bool { return !c.LogApplied }

// Conflict rules.
const (
	ConflictNewer   = "newer"
	ConflictPrimary = "primary"
)

// Enabled reports whether the section turns database replication on.
func (c *Config) Enabled() bool { return c.DSN != "" }

// ApplyDefaults fills the keys left out.
func (c *Config) ApplyDefaults() {
	if c.Conflict == "" {
		c.Conflict = ConflictNewer
	}
}

// Validate reports every invalid key. It does not reach the server; that is
// the job of the checks `tandem check` runs.
func (c *Config) Validate() []setting.Problem {
	if !c.Enabled() {
		return nil
	}
	var ps []setting.Problem
	if c.ServerID == 0 {
		ps = append(ps, setting.Problem{Key: "server_id", Msg: "must be set to a number from 1 to 4294967295, different from every server_id of both MySQL servers and of the peer's tandem"})
	}
	switch c.Conflict {
	case ConflictNewer, ConflictPrimary, "":
	default:
		ps = append(ps, setting.Problem{Key: "conflict", Msg: fmt.Sprintf("%q is not a rule; write \"newer\" (the later commit wins) or \"primary\" (the primary's version wins)", c.Conflict)})
	}
	return ps
}
