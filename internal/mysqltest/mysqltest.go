// Package mysqltest starts real MariaDB servers for tests: each in its own
// temp directory, on a free loopback port, with the binlog settings tandem
// needs, stopped when the test ends.
//
// A test calls Start; when mariadbd is not installed the test is skipped,
// unless TANDEM_REQUIRE_INTEGRATION is set (as CI does), and then it fails.
package mysqltest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver the DSNs are for
	"github.com/tandemhost/tandem/internal/loopback"
)

// Server is a running mariadbd.
type Server struct {
	Dir      string // its temp directory: data/, the socket, the log
	Port     int    // TCP port on 127.0.0.1
	Socket   string // unix socket path
	ServerID uint32

	cmd  *exec.Cmd
	done chan struct{}
	args []string
	t    testing.TB
}

// Options change how a server starts.
type Options struct {
	// ServerID is the server's server_id; default 1.
	ServerID uint32
	// Args are extra mariadbd options, like "--binlog-format=STATEMENT";
	// later ones override the defaults.
	Args []string
}

// User and Password are the account every server has, with all privileges,
// reachable over TCP and the socket.
const (
	User     = "tandem"
	Password = "secret"
)

// Require skips the test when mariadbd is missing, or fails it when
// TANDEM_REQUIRE_INTEGRATION is set.
func Require(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"mariadbd", "mariadb-install-db"} {
		if _, err := lookPath(bin); err != nil {
			msg := fmt.Sprintf("%s not installed (apt-get install mariadb-server): %v", bin, err)
			if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
				t.Fatal(msg + "; TANDEM_REQUIRE_INTEGRATION is set, so this cannot be skipped")
			}
			t.Skip(msg)
		}
	}
}

func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, bin)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /usr/bin", bin)
}

var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

// template installs a data directory once per test process; each server
// starts from a copy, which is much faster than installing again.
func template() (string, error) {
	templateOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tandem-mysqltest-template-")
		if err != nil {
			templateErr = err
			return
		}
		install, _ := lookPath("mariadb-install-db")
		// On a loaded machine the bootstrap server now and then fails to
		// start in time: try again from an empty directory.
		for attempt := 1; ; attempt++ {
			data := filepath.Join(dir, fmt.Sprintf("data%d", attempt))
			cmd := exec.Command(install, "--no-defaults", "--datadir="+data,
				"--auth-root-authentication-method=normal", "--skip-test-db", "--user="+currentUser())
			out, err := cmd.CombinedOutput()
			if err == nil {
				templateDir = data
				return
			}
			if attempt == 3 {
				templateErr = fmt.Errorf("mariadb-install-db (3 attempts): %v\n%s", err, out)
				return
			}
		}
	})
	return templateDir, templateErr
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Geteuid())
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	Require(t)
	if o.ServerID == 0 {
		o.ServerID = 1
	}
	tmpl, err := template()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: the socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "tmy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("cp", "-a", tmpl, filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("copy template data dir: %v\n%s", err, out)
	}
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "sock"), ServerID: o.ServerID, t: t}
	s.args = o.Args
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	db := s.rootDB()
	defer db.Close()
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", User, Password),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION", User),
		fmt.Sprintf("CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'", User, Password),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'localhost' WITH GRANT OPTION", User),
		"RESET MASTER",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return s
}

func (s *Server) start() error {
	if s.Port == 0 {
		p, err := loopback.FreePort()
		if err != nil {
			return err
		}
		s.Port = p
	}
	bin, _ := lookPath("mariadbd")
	args := []string{
		"--no-defaults",
		"--datadir=" + filepath.Join(s.Dir, "data"),
		"--socket=" + s.Socket,
		"--port=" + strconv.Itoa(s.Port),
		"--bind-address=127.0.0.1",
		"--pid-file=" + filepath.Join(s.Dir, "pid"),
		"--log-error=" + filepath.Join(s.Dir, "error.log"),
		"--user=" + currentUser(),
		"--server-id=" + strconv.FormatUint(uint64(s.ServerID), 10),
		"--log-bin=" + filepath.Join(s.Dir, "data", "binlog"),
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL",
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=16M",
		"--innodb-flush-log-at-trx-commit=2",
		"--sync-binlog=0",
		"--skip-log-bin-trust-function-creators",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--default-time-zone=+00:00",
		"--max-connections=200",
	}
	args = append(args, s.args...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		db := s.rootDB()
		err := db.Ping()
		db.Close()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
			return fmt.Errorf("mariadbd exited at start: %s\n%s", cmd.ProcessState, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
			return fmt.Errorf("mariadbd not answering after 60s: %v\n%s", err, log)
		}
	}
}

// Stop shuts the server down cleanly (SIGTERM), waiting for it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Kill stops the server with SIGKILL, like a crash.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts a stopped server again on the same port and data.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.Stop()
	}
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) rootDB() *sql.DB {
	db, _ := sql.Open("mysql", "root@unix("+s.Socket+")/?parseTime=false")
	return db
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// DSN is a go-sql-driver/mysql DSN for User over TCP, for database db
// ("" for none).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s", User, Password, s.Addr(), db)
}

// DB opens a connection pool as User to database db, closed when the test
// ends.
func (s *Server) DB(db string) *sql.DB {
	s.t.Helper()
	conn, err := sql.Open("mysql", s.DSN(db))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return conn
}

// Exec runs statements as User, failing the test on error.
func (s *Server) Exec(queries ...string) {
	s.t.Helper()
	db := s.DB("")
	for _, q := range queries {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			s.t.Fatalf("%s: %v", q, err)
		}
	}
}

// Checksum returns CHECKSUM TABLE for schema.table.
func (s *Server) Checksum(table string) (int64, error) {
	db := s.DB("")
	var name string
	var sum sql.NullInt64
	if err := db.QueryRow("CHECKSUM TABLE "+table).Scan(&name, &sum); err != nil {
		return 0, err
	}
	if !sum.Valid {
		return 0, errors.New("table " + table + " does not exist")
	}
	return sum.Int64, nil
}
