package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // the DSNs in [mysql]
	"go.uber.org/zap"

	"github.com/tandemhost/tandem/binlog"
	"github.com/tandemhost/tandem/internal/control"
)

// recentWrites is how many local row writes the "newer" rule remembers
// (about 100 bytes each).
const recentWrites = 1 << 18

// checkMySQL runs the server checks on the [mysql] server: the findings, and
// an error when one is fatal (`run` refuses such a server).
func checkMySQL(ctx context.Context, cfg *Config) ([]binlog.Finding, error) {
	db, err := sql.Open("mysql", cfg.MySQL.DSN)
	if err != nil {
		return nil, fmt.Errorf("[mysql] dsn: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, findings := binlog.CheckServer(ctx, db, cfg.MySQL.Databases)
	var fatal []string
	for _, f := range findings {
		if !f.OK && f.Fatal {
			fatal = append(fatal, f.What+": "+f.Message)
		}
	}
	if len(fatal) > 0 {
		return findings, fmt.Errorf("the MySQL server in [mysql] cannot be replicated:\n  %s", strings.Join(fatal, "\n  "))
	}
	return findings, nil
}

// newRows builds database replication for cfg: the tailer of the local
// binlog, the applier of the peer's transactions and the engine that runs
// them over the pipe. It refuses a server that fails a fatal check.
func (d *daemon) newRows(ctx context.Context) error {
	cfg := d.cfg
	if _, err := checkMySQL(ctx, cfg); err != nil {
		return err
	}
	var engine *binlog.Engine // set below; the tailer reports to it
	tailer, err := binlog.NewTailer(binlog.TailerOptions{
		DSN: cfg.MySQL.DSN, ServerID: cfg.MySQL.ServerID, Node: cfg.Node, Databases: cfg.MySQL.Databases, Log: d.log,
		Seen: func(gtid string) { engine.Seen(gtid) },
	})
	if err != nil {
		return err
	}
	clock := binlog.NewRecentWrites(recentWrites)
	caughtUp := &lateClock{}
	applier, err := binlog.NewApplier(ctx, binlog.ApplierOptions{
		DSN: cfg.MySQL.DSN, Node: cfg.Node, Rule: cfg.MySQL.Conflict, Primary: d.primary,
		LocalClock: caughtUp, Conflicts: d.conflicts, Log: d.log, Databases: cfg.MySQL.Databases,
		SkipBinlog: cfg.MySQL.SkipBinlog(),
	})
	if err != nil {
		return err
	}
	d.closers = append(d.closers, applier.Close)
	pos, err := sql.Open("mysql", cfg.MySQL.DSN)
	if err != nil {
		return err
	}
	pos.SetMaxOpenConns(2) // the position, and a seed's snapshot
	d.closers = append(d.closers, pos.Close)
	engine = binlog.NewEngine(binlog.EngineOptions{
		Node: cfg.Node, Peer: cfg.Peers[0].Name, Source: tailer, Sink: applier, StateDir: cfg.StateDir,
		Position: func(ctx context.Context) (string, error) {
			var gtid string
			err := pos.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&gtid) // MariaDB
			if err != nil {
				err = pos.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&gtid) // MySQL
			}
			return gtid, err
		},
		Observe: clock.Observe,
		Dumper: func(ctx context.Context, emit func(*binlog.Txn) error, progress func(binlog.SeedProgress)) (string, error) {
			return binlog.Dump(ctx, pos, binlog.DumpOptions{Origin: cfg.Node, Databases: cfg.MySQL.Databases, Progress: progress}, emit)
		},
		Loader: applier,
		Log:    d.log,
	})
	d.rows = engine
	caughtUp.LocalClock = engine.Clock(clock)
	if err := d.rows.Start(ctx); err != nil {
		return err
	}
	d.rows.Register(d.node)
	d.log.Info("database replication on", zap.Strings("databases", cfg.MySQL.Databases), zap.String("conflict", cfg.MySQL.Conflict))
	return nil
}

// rowsRoutes serves the database commands on the control socket.
func rowsRoutes(mux *http.ServeMux, rows *binlog.Engine) {
	mux.HandleFunc("POST /db/seed", func(w http.ResponseWriter, r *http.Request) {
		gtid, err := rows.Seed(r.Context(), nil)
		if err != nil {
			control.WriteError(w, http.StatusConflict, err.Error())
			return
		}
		control.WriteJSON(w, http.StatusOK, map[string]string{"gtid": gtid})
	})
}

func cmdDB(e *env, args []string) int {
	if len(args) == 0 || args[0] != "seed" {
		fmt.Fprintln(e.stderr, "tandem db: say what to do: tandem db seed")
		return exitUsage
	}
	// -c may come after the subcommand too.
	for rest := args[1:]; len(rest) > 0; rest = rest[1:] {
		switch a := rest[0]; {
		case (a == "-c" || a == "--config") && len(rest) > 1:
			e.configPath, rest = rest[1], rest[1:]
		case strings.HasPrefix(a, "-c=") || strings.HasPrefix(a, "--config="):
			e.configPath = a[strings.IndexByte(a, '=')+1:]
		default:
			fmt.Fprintf(e.stderr, "tandem db seed: unexpected argument %q\n", a)
			return exitUsage
		}
	}
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	if !cfg.MySQL.Enabled() {
		fmt.Fprintln(e.stderr, "tandem db seed: [mysql] is not configured in "+e.configPath)
		return exitUsage
	}
	c := control.NewClient(control.SocketPath(cfg.StateDir))
	var res struct {
		GTID string `json:"gtid"`
	}
	done := make(chan error, 1)
	go func() { done <- c.Post(e.ctx, "/db/seed", nil, &res) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintf(e.stderr, "tandem: seed: %v\n", err)
				if errors.Is(err, control.ErrNotRunning) {
					return exitNotRunning
				}
				return exitFailure
			}
			fmt.Fprintf(e.stdout, "seeded from %s; replication continues from %s\n", cfg.Peers[0].Name, res.GTID)
			return exitOK
		case <-tick.C:
			var st Status
			if c.Get(e.ctx, "/status", &st) == nil && st.Rows != nil && st.Rows.Seeding != nil {
				p := st.Rows.Seeding
				pct := ""
				if p.TableRows > 0 {
					pct = fmt.Sprintf(" (%d%%)", min(100, 100*p.Rows/p.TableRows))
				}
				fmt.Fprintf(e.stdout, "table %d of %d: %s.%s, %d rows%s\n", p.Done+1, p.Tables, p.Schema, p.Table, p.Rows, pct)
			}
		}
	}
}

// lateClock is the applier's clock of local writes, set once the engine
// that keeps it exists.
type lateClock struct{ binlog.LocalClock }
