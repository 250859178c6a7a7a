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

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/pipe"
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
	started   time.Time
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
	d, err := newDaemon(cfg, log)
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

func newDaemon(cfg *Config, log *zap.Logger) (*daemon, error) {
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
	d := &daemon{cfg: cfg, log: log, node: node, started: time.Now()}
	if len(cfg.Sync) == 0 {
		return d, nil
	}
	if d.db, err = index.Open(filepath.Join(cfg.StateDir, "index.db"), log); err != nil {
		return nil, err
	}
	if d.conflicts, err = conflict.Open(cfg.StateDir); err != nil {
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
	return d, nil
}

// close releases what newDaemon opened.
func (d *daemon) close() {
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
	})
}

// run runs every part until ctx ends or one fails.
func (d *daemon) run(ctx context.Context) error {
	ln, err := control.Listen(control.SocketPath(d.cfg.StateDir))
	if err != nil {
		return err
	}
	if err := d.node.Listen(); err != nil {
		ln.Close()
		return err
	}
	d.log.Info("tandem started", zap.String("node", d.cfg.Node), zap.String("version", versionString()),
		zap.String("ssh", d.node.Addr().String()), zap.String("control", ln.Addr().String()))
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
	part("pipe", d.node.Run)
	if d.files != nil {
		part("files", d.files.Run)
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
	// Profiles for performance work, on the root-only control socket:
	// curl --unix-socket /var/lib/tandem/tandem.sock http://t/debug/pprof/profile
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return mux
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
