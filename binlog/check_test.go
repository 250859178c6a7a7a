package binlog

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/internal/mysqltest"
)

func findings(fs []Finding) map[string]Finding {
	m := map[string]Finding{}
	for _, f := range fs {
		m[f.What] = f
	}
	return m
}

// TestCheckServer starts one MariaDB with binlog_format=STATEMENT: check
// and the Tailer refuse it with the fix; fixed, it passes.
func TestCheckServer(t *testing.T) {
	srv := mysqltest.Start(t, mysqltest.Options{ServerID: 31, Args: []string{"--binlog-format=STATEMENT"}})
	db := srv.DB("")
	ctx := context.Background()

	info, fs := CheckServer(ctx, db, []string{"shop"})
	if info.Flavor != "mariadb" || info.ServerID != 31 || !info.LogBin || info.BinlogFormat != "STATEMENT" || info.User == "" {
		t.Errorf("info = %+v, want mariadb, server_id 31, log_bin on, STATEMENT", info)
	}
	got := findings(fs)
	bf := got["binlog_format"]
	if bf.OK || !bf.Fatal || !strings.Contains(bf.Message, "binlog_format = ROW") || !strings.Contains(bf.Message, "restart") {
		t.Errorf("binlog_format finding = %+v, want a fatal failure saying binlog_format = ROW and restart", bf)
	}
	if ai := got["auto_increment"]; ai.OK || ai.Fatal || !strings.Contains(ai.Message, "auto_increment_increment = 2") {
		t.Errorf("auto_increment finding = %+v, want a warning with the my.cnf lines", ai)
	}
	for _, what := range []string{"log_bin", "binlog_row_image", "binlog_row_metadata", "server_id", "gtid", "privileges (binlog)", "privileges (shop)", "privileges (tandem)", "privileges (seed)"} {
		if f, ok := got[what]; !ok || !f.OK {
			t.Errorf("finding %q = %+v, want OK", what, f)
		}
	}

	// The Tailer refuses it too, with the same fix.
	tl, err := NewTailer(TailerOptions{DSN: srv.DSN(""), ServerID: 9100, Node: "alpha", Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	err = tl.Run(ctx, "", func(*Txn) error { t.Error("emitted from a refused server"); return nil })
	if err == nil || !strings.Contains(err.Error(), "binlog_format = ROW") {
		t.Errorf("Run on a STATEMENT server = %v, want a refusal saying binlog_format = ROW", err)
	}

	// An account without the privileges is told what to grant.
	srv.Exec(
		"CREATE USER 'weak'@'%' IDENTIFIED BY 'pw'",
		"GRANT SELECT, INSERT ON `sho_`.* TO 'weak'@'%'",
		"GRANT REPLICATION SLAVE ON *.* TO 'weak'@'%'",
	)
	weak := openDB(t, "weak:pw@tcp("+srv.Addr()+")/")
	_, fs = CheckServer(ctx, weak, []string{"shop"})
	got = findings(fs)
	for what, want := range map[string]string{
		"privileges (binlog)": "GRANT REPLICATION CLIENT ON *.* TO 'weak'@'%'",
		"privileges (shop)":   "GRANT UPDATE, DELETE, CREATE, ALTER, DROP, INDEX ON `shop`.* TO 'weak'@'%'",
		"privileges (tandem)": "GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON `tandem`.*",
		"privileges (seed)":   "GRANT RELOAD ON *.*",
	} {
		if f := got[what]; f.OK || !strings.Contains(f.Message, want) {
			t.Errorf("finding %q = %+v, want a failure saying %q", what, f, want)
		}
	}

	// Fixed (SET GLOBAL, as the messages allow until a restart), it passes.
	srv.Exec("SET GLOBAL binlog_format = ROW", "SET GLOBAL auto_increment_increment = 2", "SET GLOBAL auto_increment_offset = 1")
	info, fs = CheckServer(ctx, db, []string{"shop"})
	for _, f := range fs {
		if !f.OK {
			t.Errorf("after the fix: %s", f)
		}
	}
	other := info
	other.ServerID, other.AutoIncrementOffset = 32, 2
	for _, f := range CheckPair(info, other, 9100, 9101) {
		if !f.OK {
			t.Errorf("CheckPair of a good pair: %s", f)
		}
	}

	// Row metadata MINIMAL is refused by check and Run alike.
	srv.Exec("SET GLOBAL binlog_row_metadata = MINIMAL")
	_, fs = CheckServer(ctx, db, nil)
	if f := findings(fs)["binlog_row_metadata"]; f.OK || !f.Fatal || !strings.Contains(f.Message, "binlog_row_metadata = FULL") {
		t.Errorf("binlog_row_metadata MINIMAL: %+v, want a fatal failure with the fix", f)
	}
	if err := tl.Run(ctx, "", func(*Txn) error { return nil }); err == nil || !strings.Contains(err.Error(), "binlog_row_metadata = FULL") {
		t.Errorf("Run with MINIMAL row metadata = %v, want a refusal with the fix", err)
	}
	srv.Exec("SET GLOBAL binlog_row_metadata = FULL")

	// An unreachable server is one fatal finding.
	_, fs = CheckServer(ctx, openDB(t, "tandem:wrong@tcp("+srv.Addr()+")/"), nil)
	if len(fs) != 1 || fs[0].OK || !fs[0].Fatal || !strings.Contains(fs[0].Message, "check [mysql] dsn") {
		t.Errorf("CheckServer with a wrong password = %v, want one fatal finding pointing at the dsn", fs)
	}
}

func TestCheckPair(t *testing.T) {
	a := ServerInfo{Flavor: "mariadb", Version: "10.11", ServerID: 1, AutoIncrementIncrement: 2, AutoIncrementOffset: 1}
	b := ServerInfo{Flavor: "mariadb", Version: "10.11", ServerID: 2, AutoIncrementIncrement: 2, AutoIncrementOffset: 2}
	with := func(s ServerInfo, f func(*ServerInfo)) ServerInfo { f(&s); return s }
	cases := []struct {
		name    string
		a, b    ServerInfo
		clients []uint32
		bad     string // the What of the failing finding, "" for none
		msg     string
	}{
		{"good", a, b, []uint32{1001, 1002}, "", ""},
		{"same server_id", a, with(b, func(s *ServerInfo) { s.ServerID = 1 }), nil, "server_id", "give each server its own server_id"},
		{"tandem id = server id", a, b, []uint32{2}, "server_id", "set [mysql] server_id"},
		{"two tandems one id", a, b, []uint32{7, 7}, "server_id", "both 7"},
		{"increment 1", with(a, func(s *ServerInfo) { s.AutoIncrementIncrement = 1 }), with(b, func(s *ServerInfo) { s.AutoIncrementIncrement = 1 }), nil, "auto_increment", "auto_increment_increment = 2"},
		{"increments differ", a, with(b, func(s *ServerInfo) { s.AutoIncrementIncrement = 3 }), nil, "auto_increment", "same value on both"},
		{"same offset", a, with(b, func(s *ServerInfo) { s.AutoIncrementOffset = 1 }), nil, "auto_increment", "auto_increment_offset = 1 on one server"},
		{"offset beyond increment", a, with(b, func(s *ServerInfo) { s.AutoIncrementOffset = 4 }), nil, "auto_increment", "at most the increment"},
		{"flavors", a, with(b, func(s *ServerInfo) { s.Flavor = "mysql" }), nil, "flavor", "same server on both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := CheckPair(c.a, c.b, c.clients...)
			var failed []Finding
			for _, f := range fs {
				if !f.OK {
					failed = append(failed, f)
				}
			}
			if c.bad == "" {
				if len(failed) > 0 {
					t.Errorf("CheckPair = %v, want all OK", failed)
				}
				return
			}
			if len(failed) != 1 || failed[0].What != c.bad || !strings.Contains(failed[0].Message, c.msg) {
				t.Errorf("CheckPair failures = %v, want one %q saying %q", failed, c.bad, c.msg)
			}
		})
	}
}

func TestParseGrants(t *testing.T) {
	g := parseGrants([]string{
		"GRANT USAGE ON *.* TO `u`@`%`",
		"GRANT RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*X'",
		"GRANT SELECT, INSERT (a, b), UPDATE ON `shop`.* TO `u`@`%`",
		"GRANT ALL PRIVILEGES ON `tenant\\_%`.* TO `u`@`%`",
		"GRANT DELETE ON `shop`.`t` TO `u`@`%`",
	})
	for _, c := range []struct {
		db, priv string
		want     bool
	}{
		{"shop", "SELECT", true}, {"shop", "UPDATE", true}, {"shop", "INSERT", false}, {"shop", "DELETE", false},
		{"tenant_1", "DROP", true}, {"tenantx1", "DROP", false}, {"other", "SELECT", false},
	} {
		if got := g.hasOn(c.db, c.priv); got != c.want {
			t.Errorf("hasOn(%s, %s) = %v, want %v", c.db, c.priv, got, c.want)
		}
	}
	if !g.hasGlobal("BINLOG MONITOR") || !g.hasGlobal("RELOAD") || g.hasGlobal("SUPER") {
		t.Errorf("global grants = %v", g.global)
	}
}

func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
