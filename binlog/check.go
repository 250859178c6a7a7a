package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Privileges is what the account in [mysql] dsn needs, for the README:
//
//	-- streaming the binlog (the tailer)
//	GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'tandem'@'localhost';
//	    -- MariaDB 10.5+ names REPLICATION CLIENT "BINLOG MONITOR"; either works
//	-- applying the peer's rows and DDL, on every replicated schema (or *.*)
//	GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX ON shop.* TO 'tandem'@'localhost';
//	-- the marker table and checkpoint
//	GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON tandem.* TO 'tandem'@'localhost';
//	-- seeding a peer from a consistent snapshot (FLUSH TABLES WITH READ LOCK)
//	GRANT RELOAD ON *.* TO 'tandem'@'localhost';
//
// On MariaDB the applier also sets skip_replication in its session, which
// needs BINLOG ADMIN (10.5.2+) or SUPER (older).
const Privileges = `GRANT REPLICATION SLAVE, REPLICATION CLIENT, RELOAD ON *.* TO 'tandem'@'localhost';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX ON <each replicated schema>.* TO 'tandem'@'localhost';
GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON tandem.* TO 'tandem'@'localhost';`

// ServerInfo is what CheckServer learned about a server; CheckPair compares
// two of them.
type ServerInfo struct {
	Version  string // SELECT VERSION()
	Flavor   string // "mariadb" or "mysql"
	ServerID uint32
	// Binlog settings.
	LogBin       bool
	BinlogFormat string
	RowImage     string
	RowMetadata  string // "" when the server has no such variable (too old)
	GTIDMode     string // MySQL gtid_mode; "ON" for MariaDB, which always has GTIDs
	// auto_increment_increment and auto_increment_offset.
	AutoIncrementIncrement, AutoIncrementOffset uint64
	// User is CURRENT_USER().
	User string
}

// Finding is one result of a check.
type Finding struct {
	// What was checked: "binlog_format", "privileges", ...
	What string
	// OK is true when the check passed.
	OK bool
	// Fatal findings (when not OK) stop replication: `tandem run` refuses
	// the server (the binlog settings, server_id, GTIDs, reaching it).
	// Others are warnings `tandem check` reports (auto_increment,
	// privileges: grants held through roles are not seen, and the server
	// refuses what is truly missing).
	Fatal bool
	// Message says what was found and, when not OK, exactly how to fix it:
	// the my.cnf line, and whether the server must restart.
	Message string
}

func (f Finding) String() string {
	state := "ok"
	if !f.OK {
		state = "WARNING"
		if f.Fatal {
			state = "FAIL"
		}
	}
	return fmt.Sprintf("%s %s: %s", state, f.What, f.Message)
}

const cnf = "in the [mysqld] section of the server config (e.g. /etc/mysql/mariadb.conf.d/50-server.cnf or /etc/mysql/my.cnf)"

// CheckServer checks that the server db reaches can be replicated by
// tandem: binlog on, ROW format, FULL row image and metadata, a server_id,
// GTIDs, auto_increment_increment >= 2, and the privileges (see Privileges)
// on the databases to replicate (empty: every non-system schema). It
// returns what it learned and one Finding per check; a server that cannot
// be reached gives a single fatal Finding.
func CheckServer(ctx context.Context, db *sql.DB, databases []string) (ServerInfo, []Finding) {
	var info ServerInfo
	var fs []Finding
	add := func(what string, ok, fatal bool, msg string, args ...any) {
		fs = append(fs, Finding{What: what, OK: ok, Fatal: fatal, Message: fmt.Sprintf(msg, args...)})
	}
	var logBin int
	var serverID uint64
	if err := db.QueryRowContext(ctx, "SELECT VERSION(), @@GLOBAL.server_id, @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image, @@GLOBAL.auto_increment_increment, @@GLOBAL.auto_increment_offset, CURRENT_USER()").
		Scan(&info.Version, &serverID, &logBin, &info.BinlogFormat, &info.RowImage, &info.AutoIncrementIncrement, &info.AutoIncrementOffset, &info.User); err != nil {
		add("connect", false, true, "cannot query the server: %v; check [mysql] dsn (user, password, address) and that the server is running", err)
		return ServerInfo{}, fs
	}
	info.ServerID = uint32(serverID)
	info.LogBin = logBin == 1
	info.Flavor = "mysql"
	if strings.Contains(strings.ToLower(info.Version), "mariadb") {
		info.Flavor = "mariadb"
	}
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_row_metadata").Scan(&info.RowMetadata); err != nil {
		info.RowMetadata = ""
	}
	if info.Flavor == "mysql" {
		var enforce string
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_mode, @@GLOBAL.enforce_gtid_consistency").Scan(&info.GTIDMode, &enforce); err != nil {
			add("gtid", false, true, "cannot read gtid_mode: %v", err)
		} else if info.GTIDMode != "ON" || enforce != "ON" {
			add("gtid", false, true, "gtid_mode=%s, enforce_gtid_consistency=%s: set gtid_mode = ON and enforce_gtid_consistency = ON %s and restart the server", info.GTIDMode, enforce, cnf)
		} else {
			add("gtid", true, true, "gtid_mode=ON")
		}
	} else {
		info.GTIDMode = "ON"
		add("gtid", true, true, "MariaDB always writes GTIDs")
	}

	if info.LogBin {
		add("log_bin", true, true, "binary log on")
	} else {
		add("log_bin", false, true, "the binary log is off: add log_bin = /var/log/mysql/mysql-bin (any path) %s and restart the server", cnf)
	}
	if strings.EqualFold(info.BinlogFormat, "ROW") {
		add("binlog_format", true, true, "ROW")
	} else {
		add("binlog_format", false, true, "binlog_format is %s, tandem needs ROW: add binlog_format = ROW %s and restart the server (SET GLOBAL binlog_format = ROW applies to new sessions until then)", info.BinlogFormat, cnf)
	}
	if strings.EqualFold(info.RowImage, "FULL") {
		add("binlog_row_image", true, true, "FULL")
	} else {
		add("binlog_row_image", false, true, "binlog_row_image is %s, tandem needs FULL (conflicts are found by comparing whole rows): add binlog_row_image = FULL %s and restart the server", info.RowImage, cnf)
	}
	switch {
	case info.RowMetadata == "":
		add("binlog_row_metadata", false, true, "the server has no binlog_row_metadata (it came with MariaDB 10.5 and MySQL 8.0.1): upgrade it, then add binlog_row_metadata = FULL %s and restart", cnf)
	case strings.EqualFold(info.RowMetadata, "FULL"):
		add("binlog_row_metadata", true, true, "FULL")
	default:
		add("binlog_row_metadata", false, true, "binlog_row_metadata is %s, tandem needs FULL (column names in the binlog): add binlog_row_metadata = FULL %s and restart the server", info.RowMetadata, cnf)
	}
	if info.ServerID == 0 {
		add("server_id", false, true, "server_id is 0, so the binary log cannot be streamed: add server_id = N %s, a number different on the two servers, and restart", cnf)
	} else {
		add("server_id", true, true, "%d", info.ServerID)
	}
	if info.AutoIncrementIncrement >= 2 {
		add("auto_increment", true, false, "increment %d, offset %d", info.AutoIncrementIncrement, info.AutoIncrementOffset)
	} else {
		add("auto_increment", false, false, "auto_increment_increment is %d, so both servers hand out the same ids and concurrent inserts conflict: add auto_increment_increment = 2 %s on both servers, with auto_increment_offset = 1 on one and auto_increment_offset = 2 on the other, and restart (or SET GLOBAL both now)", info.AutoIncrementIncrement, cnf)
	}
	fs = append(fs, checkPrivileges(ctx, db, info, databases)...)
	return info, fs
}

var grantRE = regexp.MustCompile(`(?is)^GRANT\s+(.*?)\s+ON\s+(?:TABLE\s+)?(\S+)\s+TO\s`)

// grants are the privileges of an account: the global ones (*.*) and
// those on database patterns.
type grants struct {
	global map[string]bool
	dbs    []dbGrant
}

type dbGrant struct {
	pattern string // as in GRANT ... ON `pattern`.*, with % and _ wildcards
	privs   map[string]bool
}

// parseGrants reads SHOW GRANTS lines. Column and table level grants are
// ignored: tandem needs whole databases.
func parseGrants(lines []string) grants {
	g := grants{global: map[string]bool{}}
	for _, line := range lines {
		m := grantRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		privs := map[string]bool{}
		for _, p := range splitPrivileges(m[1]) {
			p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
			if strings.Contains(p, "(") { // column grant
				continue
			}
			if p == "ALL" {
				p = "ALL PRIVILEGES"
			}
			privs[p] = true
		}
		target := m[2]
		switch {
		case target == "*.*":
			for p := range privs {
				g.global[p] = true
			}
		case strings.HasSuffix(target, ".*"):
			db := strings.TrimSuffix(target, ".*")
			if len(db) >= 2 && (db[0] == '`' && db[len(db)-1] == '`' || db[0] == '"' && db[len(db)-1] == '"') {
				db = db[1 : len(db)-1]
			}
			g.dbs = append(g.dbs, dbGrant{pattern: db, privs: privs})
		}
	}
	return g
}

// splitPrivileges splits "SELECT, INSERT (a, b), UPDATE" at top-level commas.
func splitPrivileges(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func (g grants) hasGlobal(p string) bool { return g.global["ALL PRIVILEGES"] || g.global[p] }

// hasOn reports whether privilege p is held on database db.
func (g grants) hasOn(db, p string) bool {
	if g.hasGlobal(p) {
		return true
	}
	for _, d := range g.dbs {
		if (d.privs["ALL PRIVILEGES"] || d.privs[p]) && likeMatch(d.pattern, db) {
			return true
		}
	}
	return false
}

// likeMatch matches s against a grant's database pattern (% any run, _ one
// character, \ escapes).
func likeMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch c := pattern[0]; c {
	case '%':
		for i := 0; i <= len(s); i++ {
			if likeMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '_':
		return s != "" && likeMatch(pattern[1:], s[1:])
	case '\\':
		if len(pattern) > 1 {
			return s != "" && s[0] == pattern[1] && likeMatch(pattern[2:], s[1:])
		}
	}
	return s != "" && s[0] == pattern[0] && likeMatch(pattern[1:], s[1:])
}

func checkPrivileges(ctx context.Context, db *sql.DB, info ServerInfo, databases []string) []Finding {
	var fs []Finding
	rows, err := db.QueryContext(ctx, "SHOW GRANTS FOR CURRENT_USER()")
	if err != nil {
		return []Finding{{What: "privileges", Message: fmt.Sprintf("cannot read the account's grants: %v; grant what Privileges lists", err)}}
	}
	var lines []string
	for rows.Next() {
		var l string
		if rows.Scan(&l) == nil {
			lines = append(lines, l)
		}
	}
	rows.Close()
	g := parseGrants(lines)
	user := info.User
	if at := strings.LastIndexByte(user, '@'); at > 0 {
		user = "'" + user[:at] + "'@'" + user[at+1:] + "'"
	}

	var missing []string
	for _, p := range []string{"REPLICATION SLAVE"} {
		if !g.hasGlobal(p) {
			missing = append(missing, p)
		}
	}
	if !g.hasGlobal("REPLICATION CLIENT") && !g.hasGlobal("BINLOG MONITOR") {
		missing = append(missing, "REPLICATION CLIENT")
	}
	if len(missing) > 0 {
		// Not fatal: grants through roles are not seen here, and the
		// server refuses the stream itself if they are truly missing.
		fs = append(fs, Finding{What: "privileges (binlog)", Message: fmt.Sprintf("the account cannot stream the binlog: run GRANT %s ON *.* TO %s (no restart needed)", strings.Join(missing, ", "), user)})
	} else {
		fs = append(fs, Finding{What: "privileges (binlog)", OK: true, Message: "REPLICATION SLAVE, REPLICATION CLIENT"})
	}

	if len(databases) == 0 {
		databases, err = userSchemas(ctx, db)
		if err != nil {
			fs = append(fs, Finding{What: "privileges (schemas)", Message: fmt.Sprintf("cannot list the schemas: %v", err)})
		}
	}
	apply := []string{"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX"}
	for _, s := range databases {
		var lack []string
		for _, p := range apply {
			if !g.hasOn(s, p) {
				lack = append(lack, p)
			}
		}
		if len(lack) > 0 {
			fs = append(fs, Finding{What: "privileges (" + s + ")", Message: fmt.Sprintf("the account cannot apply the peer's changes to %s: run GRANT %s ON `%s`.* TO %s (no restart needed)", s, strings.Join(lack, ", "), s, user)})
		} else {
			fs = append(fs, Finding{What: "privileges (" + s + ")", OK: true, Message: strings.Join(apply, ", ")})
		}
	}
	var lack []string
	for _, p := range []string{"CREATE", "SELECT", "INSERT", "UPDATE", "DELETE"} {
		if !g.hasOn(MarkerSchema, p) {
			lack = append(lack, p)
		}
	}
	if len(lack) > 0 {
		fs = append(fs, Finding{What: "privileges (" + MarkerSchema + ")", Message: fmt.Sprintf("the account cannot keep its marker table: run GRANT %s ON `%s`.* TO %s (no restart needed)", strings.Join(lack, ", "), MarkerSchema, user)})
	} else {
		fs = append(fs, Finding{What: "privileges (" + MarkerSchema + ")", OK: true, Message: "CREATE, SELECT, INSERT, UPDATE, DELETE"})
	}
	if !g.hasGlobal("RELOAD") {
		fs = append(fs, Finding{What: "privileges (seed)", Message: fmt.Sprintf("the account cannot take a consistent snapshot to seed the peer: run GRANT RELOAD ON *.* TO %s (no restart needed)", user)})
	} else {
		fs = append(fs, Finding{What: "privileges (seed)", OK: true, Message: "RELOAD"})
	}
	return fs
}

func userSchemas(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
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
		if !slices.ContainsFunc(SystemSchemas, func(x string) bool { return strings.EqualFold(x, s) }) {
			out = append(out, s)
		}
	}
	return out, rows.Err()
}

// CheckPair checks two servers meant to replicate each other, a and b as
// CheckServer described them, with clientIDs the [mysql] server_id of each
// node's tandem: all server ids distinct, the same auto_increment_increment
// (at least 2) on both and distinct offsets, so the two never hand out the
// same auto-increment id.
func CheckPair(a, b ServerInfo, clientIDs ...uint32) []Finding {
	var fs []Finding
	ids := map[uint32]string{}
	dup := false
	for _, x := range []struct {
		id   uint32
		name string
	}{{a.ServerID, "the first server's server_id"}, {b.ServerID, "the second server's server_id"}} {
		if prev, ok := ids[x.id]; ok {
			fs = append(fs, Finding{What: "server_id", Fatal: true, Message: fmt.Sprintf("%s and %s are both %d: give each server its own server_id %s and restart it", prev, x.name, x.id, cnf)})
			dup = true
		}
		ids[x.id] = x.name
	}
	for i, id := range clientIDs {
		name := "tandem's [mysql] server_id #" + strconv.Itoa(i+1)
		if prev, ok := ids[id]; ok {
			fs = append(fs, Finding{What: "server_id", Fatal: true, Message: fmt.Sprintf("%s and %s are both %d: set [mysql] server_id in tandem's config to a number no server or other tandem uses", prev, name, id)})
			dup = true
		}
		ids[id] = name
	}
	if !dup {
		fs = append(fs, Finding{What: "server_id", OK: true, Fatal: true, Message: "all distinct"})
	}
	switch {
	case a.AutoIncrementIncrement != b.AutoIncrementIncrement || a.AutoIncrementIncrement < 2:
		fs = append(fs, Finding{What: "auto_increment", Message: fmt.Sprintf("auto_increment_increment is %d and %d: set auto_increment_increment = 2 on both servers %s (same value on both, at least 2), and restart or SET GLOBAL it", a.AutoIncrementIncrement, b.AutoIncrementIncrement, cnf)})
	case a.AutoIncrementOffset%a.AutoIncrementIncrement == b.AutoIncrementOffset%b.AutoIncrementIncrement ||
		a.AutoIncrementOffset > a.AutoIncrementIncrement || b.AutoIncrementOffset > b.AutoIncrementIncrement:
		fs = append(fs, Finding{What: "auto_increment", Message: fmt.Sprintf("auto_increment_offset is %d and %d with increment %d, so both servers can hand out the same id: set auto_increment_offset = 1 on one server and auto_increment_offset = 2 on the other %s (each at most the increment), and restart or SET GLOBAL it", a.AutoIncrementOffset, b.AutoIncrementOffset, a.AutoIncrementIncrement, cnf)})
	default:
		fs = append(fs, Finding{What: "auto_increment", OK: true, Message: fmt.Sprintf("increment %d, offsets %d and %d", a.AutoIncrementIncrement, a.AutoIncrementOffset, b.AutoIncrementOffset)})
	}
	if a.Flavor != b.Flavor {
		fs = append(fs, Finding{What: "flavor", Message: fmt.Sprintf("one server is %s (%s), the other %s (%s): types and DDL differ between them, so replication may fail; run the same server on both nodes", a.Flavor, a.Version, b.Flavor, b.Version)})
	}
	return fs
}
