package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"

	"github.com/tandemhost/tandem/binlog"
	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/failover"
	failoverdns "github.com/tandemhost/tandem/failover/dns"
	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/snapshot"
	"github.com/tandemhost/tandem/watcher/index"
	"github.com/tandemhost/tandem/watcher/replica"
)

// daemon is a running node: the parts, wired.
type daemon struct {
	cfg       *Config
	log       *zap.Logger
	node      *pipe.Node
	db        *index.DB
	conflicts *conflict.Log
	files     *replica.Engine
	rows      *binlog.Engine
	snapshots *snapshot.Scheduler
	// With a witness: the link to it, and the mux serving both links on
	// the SSH port.
	signer      ssh.Signer
	witnessLink *pipe.Node
	mux         *pipe.Mux
	failover    *failover.Runner    // nil when [failover] is off
	dnsServer   *failoverdns.Server // nil unless [failover.dns] serve is set
	started     time.Time
	// closers release what the parts opened, in reverse order.
	closers []func() error
}

func cmdRun(e *env, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem run: unexpected argument %q\n", args[0])
		return exitUsage
	}
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	if errs := cfg.CheckFiles(); len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		}
		return exitUsage
	}
	log, err := newLogger(e.stderr, firstNonEmpty(e.logLevel, cfg.LogLevel), e.logFormat)
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		return exitUsage
	}
	defer log.Sync()
	force := false
	if e.flags != nil {
		if f := e.flags.Lookup("force"); f != nil {
			force = f.Value.String() == "true"
		}
	}
	d, err := newDaemonWith(cfg, log, daemonOptions{force: force})
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		return exitFailure
	}
	if err := d.run(e.ctx); err != nil {
		log.Error("stopped", zap.Error(err))
		return exitFailure
	}
	log.Info("stopped")
	return exitOK
}

// daemonOptions are the run command's flags that change how parts start.
type daemonOptions struct {
	force bool // failover: skip wait_for_all (tandem run --force)
}

func newDaemon(cfg *Config, log *zap.Logger) (*daemon, error) {
	return newDaemonWith(cfg, log, daemonOptions{})
}

func newDaemonWith(cfg *Config, log *zap.Logger, o daemonOptions) (*daemon, error) {
	if err := deploy.EnsureStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	signer, err := deploy.LoadKey(deploy.KeyPath(cfg.StateDir))
	if err != nil {
		return nil, err
	}
	node, err := newNode(cfg, log, signer)
	if err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, log: log, node: node, signer: signer, started: time.Now()}
	if cfg.Node == witnessName {
		return nil, fmt.Errorf("%s is a witness's config (node = %q): run it with `tandem witness -c FILE`", cfg.file, witnessName)
	}
	if cfg.Failover.Enabled() {
		if err := d.newFailover(o.force); err != nil {
			return nil, err
		}
	}
	if len(cfg.Sync) == 0 && !cfg.MySQL.Enabled() {
		return d.withSnapshots()
	}
	if d.conflicts, err = conflict.Open(cfg.StateDir); err != nil {
		return nil, err
	}
	if cfg.MySQL.Enabled() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := d.newRows(ctx)
		cancel()
		if err != nil {
			d.close()
			return nil, err
		}
	}
	if len(cfg.Sync) == 0 {
		return d.withSnapshots()
	}
	if d.db, err = index.Open(filepath.Join(cfg.StateDir, "index.db"), log); err != nil {
		d.close()
		return nil, err
	}
	var roots []replica.Root
	for _, s := range cfg.Sync {
		roots = append(roots, replica.Root{Name: s.ID(), Dir: s.Path, Exclude: s.Exclude})
	}
	d.files, err = replica.New(replica.Options{
		Node: cfg.Node, Peer: cfg.Peers[0].Name, DB: d.db, Conflicts: d.conflicts, Roots: roots, Log: log,
	})
	if err != nil {
		d.close()
		return nil, err
	}
	d.files.Register(node)
	return d.withSnapshots()
}

// withSnapshots adds the snapshot side loop when [snapshot] is set.
func (d *daemon) withSnapshots() (*daemon, error) {
	s, err := newSnapshotScheduler(d.cfg, d.db, d.log)
	if err != nil {
		d.close()
		return nil, err
	}
	d.snapshots = s
	return d, nil
}

// newFailover builds the failover runner with its DNS updater and server,
// and registers its heartbeat stream on the pipe node (before it runs).
func (d *daemon) newFailover(force bool) error {
	fc := d.cfg.Failover
	opts := failover.RunnerOptions{
		Config: fc, Node: d.cfg.Node, Peer: d.cfg.Peers[0].Name, StateDir: d.cfg.StateDir,
		Pipe: d.node, MySQLDSN: d.cfg.MySQL.DSN, Force: force, Log: d.log,
	}
	if fc.DNS.Update != "" {
		var secret failoverdns.TSIGSecret
		if fc.DNS.TSIGSecretFile != "" {
			var err error
			if secret, err = failoverdns.ReadSecretFile(fc.DNS.TSIGSecretFile); err != nil {
				return err
			}
		}
		u, err := failoverdns.NewUpdater(failoverdns.UpdaterOptions{
			Server: fc.DNS.Update, Zone: fc.DNS.Zone, Names: fc.DNS.Names, TTL: fc.DNS.TTL,
			TSIGKey: fc.DNS.TSIGKey, TSIGSecret: secret.Secret, TSIGAlgorithm: secret.Algorithm, Log: d.log,
		})
		if err != nil {
			return fmt.Errorf("[failover.dns] update: %w", err)
		}
		opts.DNS = u
	}
	if fc.DNS.Serve != "" {
		s, err := failoverdns.NewServer(failoverdns.ServerOptions{
			Addr: fc.DNS.Serve, Zone: fc.DNS.Zone, Names: fc.DNS.Names, TTL: fc.DNS.TTL, Log: d.log,
		})
		if err != nil {
			return fmt.Errorf("[failover.dns] serve: %w", err)
		}
		d.dnsServer, opts.Serve = s, s
	}
	if fc.Witness != "" {
		q, err := d.newQuorum()
		if err != nil {
			return fmt.Errorf("[failover] witness: %w", err)
		}
		d.closers = append(d.closers, q.Close)
		opts.Quorum = q
	}
	r, err := failover.NewRunner(opts)
	if err != nil {
		return err
	}
	d.failover = r
	return nil
}

// close releases what newDaemon opened.
func (d *daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
	if d.files != nil {
		d.files.Close()
	}
	if d.conflicts != nil {
		d.conflicts.Close()
	}
	if d.db != nil {
		d.db.Close()
	}
}

// newNode builds the pipe node for cfg. `run` and `check` share it.
func newNode(cfg *Config, log *zap.Logger, signer ssh.Signer) (*pipe.Node, error) {
	return pipe.New(pipe.Options{
		Node:   cfg.Node,
		Config: cfg.SSH,
		Peer:   cfg.Peers[0],
		Signer: signer,
		Log:    log,
		// With a witness, the witness's link shares the SSH port.
		Muxed: cfg.Failover.Enabled() && cfg.Failover.Witness != "",
	})
}

// run runs every part until ctx ends or one fails.
func (d *daemon) run(ctx context.Context) error {
	ln, err := control.Listen(control.SocketPath(d.cfg.StateDir))
	if err != nil {
		return err
	}
	sshAddr := ""
	if d.witnessLink != nil {
		if err := d.listenMux(); err != nil {
			ln.Close()
			return err
		}
		sshAddr = d.mux.Addr().String()
	} else {
		if err := d.node.Listen(); err != nil {
			ln.Close()
			return err
		}
		sshAddr = d.node.Addr().String()
	}
	d.log.Info("tandem started", zap.String("node", d.cfg.Node), zap.String("version", versionString()),
		zap.String("ssh", sshAddr), zap.String("control", ln.Addr().String()))
	defer d.close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards errs
		errs []error
	)
	part := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
			}
			cancel() // one part ending ends them all
		})
	}
	part("systemd", d.notifySystemd) // sd_notify: EXTEND_TIMEOUT_USEC during the first scan, READY+STATUS, WATCHDOG while healthy, STOPPING (notify.go)
	part("pipe", d.node.Run)
	if d.mux != nil {
		part("ssh", d.mux.Run)
		part("witness link", d.witnessLink.Run)
	}
	if d.files != nil {
		part("files", d.files.Run)
	}
	if d.dnsServer != nil {
		if err := d.dnsServer.Listen(); err != nil {
			cancel()
			wg.Wait()
			return err
		}
		part("dns", d.dnsServer.Serve)
	}
	if d.failover != nil {
		part("failover", d.failover.Run)
	}
	if d.snapshots != nil {
		part("snapshot", d.snapshots.Run)
	}
	part("control", func(ctx context.Context) error { return control.Serve(ctx, ln, d.controlHandler()) })
	wg.Wait()
	return errors.Join(errs...)
}

func (d *daemon) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		control.WriteJSON(w, http.StatusOK, d.status())
	})
	if d.conflicts != nil {
		conflictRoutes(mux, d.conflicts, syncRootDirs(d.cfg))
	}
	if d.rows != nil {
		rowsRoutes(mux, d.rows)
	}
	roleRoutes(mux, d.failover) // nil: answers "failover is off"
	if d.snapshots != nil {
		d.snapshots.Routes(mux) // POST /snapshot/take, GET /snapshot/status
	}
	// Profiles for performance work, on the root-only control socket:
	// curl --unix-socket /var/lib/tandem/tandem.sock http://t/debug/pprof/profile
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return mux
}

// primary names the node that is primary now, "" when unknown (no
// failover configured): the "primary" row conflict rule asks it.
func (d *daemon) primary() string {
	if d.failover == nil {
		return ""
	}
	return d.failover.Primary()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
