package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/snapshot"
	"github.com/tandemhost/tandem/watcher"
	"github.com/tandemhost/tandem/watcher/index"
)

// snapshotHelp is the help of `tandem snapshot`.
const snapshotHelp = `Point-in-time copies of every synced tree (and, with mysql_dump, of the
replicated databases) in [snapshot] dir, one directory per snapshot named by
its UTC time (2026-11-22T031500Z). Files unchanged since the previous
snapshot are hard links to its copy, so a snapshot costs about the size of
what changed. The daemon takes one every [snapshot] every and removes old
ones by the keep buckets (hourly, daily, weekly, monthly); the newest
complete snapshot is never removed.

  take              take a snapshot now. Through the running daemon; when
                    none runs, this command scans the trees and takes it
                    itself.
  list              every snapshot: ID, status, files, size, new bytes.
                    This is what "tandem snapshot" alone does.
  show ID           one snapshot: roots and their index positions, totals,
                    database position (GTID) and tables.
  restore PATH --at ID|TIME [--to DIR] [--force]
                    bring back PATH (a file or directory in a synced tree,
                    by its live path) as it was in snapshot ID, or in the
                    newest snapshot at or before TIME. Without --to it goes
                    back to its place, and replaces nothing that exists
                    unless --force; each file is written to a temp file and
                    renamed, so the daemon replicates it like any change.
                    With --to DIR it goes to DIR/NAME instead.
  restore-db --at ID|TIME [--database DB] [--to-database NAME] [--force]
                    load the snapshot's dump of the databases (or only DB)
                    through [mysql] dsn, into NAME instead of the original
                    database with --to-database. Tables that exist are
                    dropped and reloaded only with --force.
  verify [ID] [--sample PERCENT]
                    check a snapshot (default: the newest complete one)
                    against its manifest: every path present with its size,
                    and PERCENT of the files re-hashed (default 100). Prints
                    each missing or corrupted file and exits 1 if any.
  prune [--dry-run] remove the snapshots the keep buckets do not keep; with
                    --dry-run only print the plan.

Everything but take works whether or not the daemon runs. With --json,
list, show, verify and prune print JSON (list: an array of snapshot.json
objects: id, time, status, error, parent, roots, gtid, tables, totals).
Exit codes: 0 ok, 1 failed (verify: a problem found), 2 bad usage or
config.`

var snapshotExamples = []string{
	"tandem snapshot take",
	"tandem snapshot list",
	"tandem snapshot show 2026-11-22T031500Z",
	"tandem snapshot restore /var/www/uploads/logo.png --at 2026-11-22T031500Z",
	`tandem snapshot restore /var/www/blog --at "2026-11-01 12:00" --to /tmp/restored`,
	"tandem snapshot restore-db --at 2026-11-22T031500Z --to-database shop_restored",
	"tandem snapshot verify --sample 5",
	"tandem snapshot prune --dry-run",
}

// snapshotFlags registers every subcommand's flags, for help and for flags
// given before the subcommand.
func snapshotFlags(fs *flag.FlagSet, e *env) {
	fs.String("at", "", "restore, restore-db: a snapshot ID, or a time (newest snapshot at or before it)")
	fs.String("to", "", "restore: restore into DIR instead of the original place")
	fs.Bool("force", false, "restore, restore-db: replace files or tables that exist")
	fs.String("database", "", "restore-db: only this database of the snapshot")
	fs.String("to-database", "", "restore-db: load into this database instead")
	fs.Float64("sample", 100, "verify: percentage of files to re-hash")
	fs.Bool("dry-run", false, "prune: print what would be removed, remove nothing")
}

// snapshotSubcommands maps each subcommand to the flags it takes (besides
// -c) and what runs it.
var snapshotSubcommands = map[string]struct {
	flags []string
	run   func(e *env, fs *flag.FlagSet, args []string) int
}{
	"take":       {[]string{"json"}, snapshotTake},
	"list":       {[]string{"json"}, snapshotList},
	"show":       {[]string{"json"}, snapshotShow},
	"restore":    {[]string{"at", "to", "force", "json"}, snapshotRestore},
	"restore-db": {[]string{"at", "database", "to-database", "force", "json"}, snapshotRestoreDB},
	"verify":     {[]string{"sample", "json"}, snapshotVerify},
	"prune":      {[]string{"dry-run", "json"}, snapshotPrune},
}

func cmdSnapshot(e *env, args []string) int {
	sub := "list"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	sc, ok := snapshotSubcommands[sub]
	if !ok {
		fmt.Fprintf(e.stderr, "tandem snapshot: unknown subcommand %q; use take, list, show, restore, restore-db, verify or prune\n", sub)
		return exitUsage
	}
	takes := map[string]bool{"c": true, "config": true, "log-level": true, "log-format": true}
	for _, f := range sc.flags {
		takes[f] = true
	}
	fs := flag.NewFlagSet("tandem snapshot "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.configPath, "c", e.configPath, "config file")
	fs.StringVar(&e.configPath, "config", e.configPath, "config file (same as -c)")
	fs.StringVar(&e.logLevel, "log-level", e.logLevel, "log level")
	fs.StringVar(&e.logFormat, "log-format", e.logFormat, "log format")
	fs.BoolVar(&e.json, "json", e.json, "print JSON instead of text")
	snapshotFlags(fs, e)
	bad := ""
	check := func(f *flag.Flag) {
		if !takes[f.Name] && bad == "" {
			bad = f.Name
		}
	}
	if e.flags != nil {
		e.flags.Visit(func(f *flag.Flag) {
			check(f)
			if fs.Lookup(f.Name) != nil {
				fs.Set(f.Name, f.Value.String())
			}
		})
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(e.stdout, findCommand("snapshot"))
			return exitOK
		}
		fmt.Fprintf(e.stderr, "tandem snapshot %s: %v\nRun `tandem help snapshot` for its flags.\n", sub, err)
		return exitUsage
	}
	fs.Visit(check)
	if bad != "" {
		fmt.Fprintf(e.stderr, "tandem snapshot %s: flag --%s does not apply to %s\nRun `tandem help snapshot` for its flags.\n", sub, bad, sub)
		return exitUsage
	}
	return sc.run(e, fs, rest)
}

// snapshotConfig loads the config and checks that snapshots are on.
func snapshotConfig(e *env, sub string) (*Config, *snapshot.Store, int) {
	cfg, ok := e.loadConfig()
	if !ok {
		return nil, nil, exitUsage
	}
	if !cfg.Snapshot.Enabled() {
		fmt.Fprintf(e.stderr, "tandem snapshot %s: snapshots are off in %s; set dir in [snapshot], like dir = \"/var/backups/tandem\"\n", sub, e.configPath)
		return nil, nil, exitUsage
	}
	if err := checkSnapshotDir(cfg); err != nil {
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		return nil, nil, exitUsage
	}
	return cfg, snapshot.NewStore(cfg.Snapshot.Dir, nil), exitOK
}

// checkSnapshotDir refuses a snapshot dir inside a synced tree (the
// snapshots would replicate, and snapshot themselves) or holding one.
func checkSnapshotDir(cfg *Config) error {
	dir := filepath.Clean(cfg.Snapshot.Dir)
	for _, s := range cfg.Sync {
		p := filepath.Clean(s.Path)
		if atOrBelow(dir, p) || atOrBelow(p, dir) {
			return fmt.Errorf("[snapshot] dir %s overlaps the synced tree %s; put snapshots outside every [[sync]] path", dir, p)
		}
	}
	return nil
}

// atOrBelow reports whether p is dir or below it; both are clean.
func atOrBelow(p, dir string) bool { return p == dir || within(p, dir) }

// snapshotRoots returns the synced trees as snapshot roots.
func snapshotRoots(cfg *Config) ([]snapshot.Root, error) {
	var roots []snapshot.Root
	for _, s := range cfg.Sync {
		x, err := watcher.NewExcluder(s.Exclude)
		if err != nil {
			return nil, fmt.Errorf("[[sync]] %s: %w", s.ID(), err)
		}
		roots = append(roots, snapshot.Root{Name: s.ID(), Dir: s.Path, Excluded: x.Match})
	}
	return roots, nil
}

// snapshotTakeOptions is what a snapshot of cfg holds; db is the open
// index (nil when there is none).
func snapshotTakeOptions(cfg *Config, db *index.DB, log *zap.Logger) (snapshot.TakeOptions, error) {
	roots, err := snapshotRoots(cfg)
	if err != nil {
		return snapshot.TakeOptions{}, err
	}
	o := snapshot.TakeOptions{Roots: roots}
	if db != nil {
		o.Index = snapshot.IndexChanges(db, indexPath(cfg))
	}
	if cfg.Snapshot.MySQLDump && cfg.MySQL.Enabled() {
		o.DB = snapshot.NewDumper(cfg.MySQL.DSN, cfg.MySQL.Databases, log)
	}
	return o, nil
}

func indexPath(cfg *Config) string { return filepath.Join(cfg.StateDir, "index.db") }

// newSnapshotScheduler builds the daemon's snapshot scheduler, or returns
// nil when [snapshot] is off. db is the daemon's index (nil without
// [[sync]]). The daemon runs its Run as a part, registers its Routes on the
// control socket and puts its Status in `tandem status`.
func newSnapshotScheduler(cfg *Config, db *index.DB, log *zap.Logger) (*snapshot.Scheduler, error) {
	if !cfg.Snapshot.Enabled() {
		return nil, nil
	}
	if err := checkSnapshotDir(cfg); err != nil {
		return nil, err
	}
	o, err := snapshotTakeOptions(cfg, db, log)
	if err != nil {
		return nil, err
	}
	store := snapshot.NewStore(cfg.Snapshot.Dir, log)
	return snapshot.NewScheduler(store, snapshot.SchedulerOptions{
		Every: cfg.Snapshot.Every.Std(), Keep: cfg.Snapshot.Keep, Take: o, Log: log,
	}), nil
}

func snapshotTake(e *env, fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem snapshot take: unexpected argument %q\n", args[0])
		return exitUsage
	}
	cfg, store, code := snapshotConfig(e, "take")
	if store == nil {
		return code
	}
	var info snapshot.Info
	err := control.NewClient(control.SocketPath(cfg.StateDir)).Post(e.ctx, "/snapshot/take", nil, &info)
	if errors.Is(err, control.ErrNotRunning) {
		info, err = takeLocally(e, cfg, store)
	} else if err != nil && strings.Contains(err.Error(), "404") {
		err = fmt.Errorf("the running tandem does not take snapshots (it was started without [snapshot] or is older); it holds the index, so this command cannot take one beside it: restart it with this config")
	}
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	if e.json {
		writeJSON(e.stdout, info)
		return exitOK
	}
	t := info.Totals
	fmt.Fprintf(e.stdout, "Took snapshot %s in %.1fs: %d files (%s), %d copied (%s new), %d linked from %s.\n",
		info.ID, info.Seconds, t.Files, humanBytes(t.Bytes), t.Copied, humanBytes(t.CopiedBytes), t.Linked, orDash(info.Parent))
	if t.Changing > 0 {
		fmt.Fprintf(e.stdout, "%d file(s) kept changing while copied; `%s` names them.\n", t.Changing, e.hint("snapshot show "+info.ID))
	}
	if len(info.Tables) > 0 {
		fmt.Fprintf(e.stdout, "Database dump: %d tables (%s new) at GTID %s.\n", len(info.Tables), humanBytes(t.DumpBytes), orDash(info.GTID))
	}
	return exitOK
}

// takeLocally takes a snapshot in this process, when no daemon runs: it
// opens the index (which the daemon would hold), brings it up to date with
// a scan, and takes the snapshot from it.
func takeLocally(e *env, cfg *Config, store *snapshot.Store) (snapshot.Info, error) {
	log, err := newLogger(e.stderr, firstNonEmpty(e.logLevel, cfg.LogLevel, "warn"), e.logFormat)
	if err != nil {
		return snapshot.Info{}, err
	}
	var db *index.DB
	if len(cfg.Sync) > 0 {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return snapshot.Info{}, err
		}
		db, err = index.Open(indexPath(cfg), log)
		if errors.Is(err, index.ErrLocked) {
			return snapshot.Info{}, fmt.Errorf("%w\n(the daemon holds the index but did not answer on its control socket; run this again when it does)", err)
		}
		if err != nil {
			return snapshot.Info{}, err
		}
		defer db.Close()
		for _, s := range cfg.Sync {
			x, err := watcher.NewExcluder(s.Exclude)
			if err != nil {
				return snapshot.Info{}, err
			}
			if _, err := index.Scan(e.ctx, db, s.ID(), s.Path, cfg.Node, index.ScanOptions{Excluded: x.Match}); err != nil {
				return snapshot.Info{}, fmt.Errorf("scan %s before the snapshot: %w", s.Path, err)
			}
		}
	}
	o, err := snapshotTakeOptions(cfg, db, log)
	if err != nil {
		return snapshot.Info{}, err
	}
	return store.Take(e.ctx, o)
}

func snapshotList(e *env, fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem snapshot list: unexpected argument %q\n", args[0])
		return exitUsage
	}
	_, store, code := snapshotConfig(e, "list")
	if store == nil {
		return code
	}
	list, err := store.List()
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	if e.json {
		if list == nil {
			list = []snapshot.Info{}
		}
		writeJSON(e.stdout, list)
		return exitOK
	}
	if len(list) == 0 {
		fmt.Fprintf(e.stdout, "no snapshots in %s yet; take one with %s\n", store.Dir(), e.hint("snapshot take"))
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tFILES\tSIZE\tNEW\tTABLES\tTOOK")
	for _, s := range list {
		status := s.Status
		if s.Error != "" {
			status += ": " + firstLine(s.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%.1fs\n", s.ID, status, s.Totals.Files, humanBytes(s.Totals.Bytes),
			humanBytes(s.Totals.CopiedBytes+s.Totals.DumpBytes), len(s.Tables), s.Seconds)
	}
	tw.Flush()
	return exitOK
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 100 {
		line = line[:100] + "..."
	}
	return line
}

func snapshotShow(e *env, fs *flag.FlagSet, args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(e.stderr, "tandem snapshot show: give one snapshot ID, e.g. %s\n", e.hint("snapshot show 2026-11-22T031500Z"))
		return exitUsage
	}
	_, store, code := snapshotConfig(e, "show")
	if store == nil {
		return code
	}
	info, err := store.Get(args[0])
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	if e.json {
		writeJSON(e.stdout, info)
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("snapshot", info.ID)
	row("time", info.Time.Local().Format("2006-01-02 15:04:05 -0700"))
	row("status", info.Status)
	if info.Error != "" {
		row("error", info.Error)
	}
	row("path", store.Path(info.ID))
	row("parent", orDash(info.Parent))
	t := info.Totals
	row("files", fmt.Sprintf("%d (%s), %d dirs, %d symlinks", t.Files, humanBytes(t.Bytes), t.Dirs, t.Symlinks))
	row("copied", fmt.Sprintf("%d (%s new); %d linked", t.Copied, humanBytes(t.CopiedBytes), t.Linked))
	if t.Changing > 0 {
		row("changing", fmt.Sprintf("%d file(s) kept changing while copied", t.Changing))
	}
	row("took", fmt.Sprintf("%.1fs", info.Seconds))
	for _, r := range info.Roots {
		how := "changes from the index"
		if r.Full {
			how = "full compare"
		}
		row("root "+r.Name, fmt.Sprintf("%s (index seq %d, %s)", store.RootPath(info.ID, r.Name), r.Seq, how))
	}
	if info.GTID != "" || info.BinlogFile != "" {
		row("database", fmt.Sprintf("GTID %s, binlog %s:%d", orDash(info.GTID), info.BinlogFile, info.BinlogPos))
	}
	for _, tb := range info.Tables {
		how := "new"
		if tb.Linked {
			how = "unchanged, linked"
		}
		row("table "+tb.Database+"."+tb.Table, fmt.Sprintf("%d rows, %s, %s", tb.Rows, humanBytes(tb.Size), how))
	}
	tw.Flush()
	if t.Changing > 0 {
		fmt.Fprintln(e.stdout, "\nFiles that kept changing while copied (their copy may be torn):")
		store.Manifest(info.ID, func(en *snapshot.Entry) error {
			if en.Changing {
				fmt.Fprintf(e.stdout, "  %s/%s\n", en.Root, en.Path)
			}
			return nil
		})
	}
	return exitOK
}

func snapshotRestore(e *env, fs *flag.FlagSet, args []string) int {
	at := fs.Lookup("at").Value.String()
	if len(args) != 1 || at == "" {
		fmt.Fprintf(e.stderr, "tandem snapshot restore: give one PATH and --at ID|TIME, e.g. %s\n", e.hint("snapshot restore /var/www/index.php --at 2026-11-22T031500Z"))
		return exitUsage
	}
	cfg, store, code := snapshotConfig(e, "restore")
	if store == nil {
		return code
	}
	abs, err := filepath.Abs(args[0])
	if err != nil {
		printError(e.stderr, err)
		return exitUsage
	}
	root, rel, dir, ok := "", "", "", false
	for _, s := range cfg.Sync {
		p := filepath.Clean(s.Path)
		if atOrBelow(abs, p) {
			r, _ := filepath.Rel(p, abs)
			root, dir, ok = s.ID(), p, true
			if r != "." {
				rel = filepath.ToSlash(r)
			}
			break
		}
	}
	if !ok {
		fmt.Fprintf(e.stderr, "tandem snapshot restore: %s is not in a synced tree; give the live path of what to restore (under a [[sync]] path)\n", abs)
		return exitUsage
	}
	info, err := store.Find(at)
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	to := abs
	if d := fs.Lookup("to").Value.String(); d != "" {
		d, err := filepath.Abs(d)
		if err != nil {
			printError(e.stderr, err)
			return exitUsage
		}
		name := filepath.Base(abs)
		if rel == "" {
			name = filepath.Base(dir)
		}
		to = filepath.Join(d, name)
	}
	res, err := store.Restore(e.ctx, snapshot.RestoreOptions{
		ID: info.ID, Root: root, Path: rel, To: to, Force: fs.Lookup("force").Value.String() == "true",
	})
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	if e.json {
		writeJSON(e.stdout, res)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "Restored %s from snapshot %s to %s: %d files (%s), %d dirs, %d symlinks", orDot(rel), info.ID, to,
		res.Files, humanBytes(res.Bytes), res.Dirs, res.Symlinks)
	if res.Replaced > 0 {
		fmt.Fprintf(e.stdout, "; %d replaced", res.Replaced)
	}
	fmt.Fprintln(e.stdout, ".")
	if atOrBelow(to, dir) {
		fmt.Fprintln(e.stdout, "It is in the live tree: the daemon replicates it to the peer like any change.")
	}
	return exitOK
}

func orDot(rel string) string {
	if rel == "" {
		return "the whole tree"
	}
	return rel
}

func snapshotRestoreDB(e *env, fs *flag.FlagSet, args []string) int {
	at := fs.Lookup("at").Value.String()
	if len(args) != 0 || at == "" {
		fmt.Fprintf(e.stderr, "tandem snapshot restore-db: give --at ID|TIME, e.g. %s\n", e.hint("snapshot restore-db --at 2026-11-22T031500Z --to-database shop_restored"))
		return exitUsage
	}
	cfg, store, code := snapshotConfig(e, "restore-db")
	if store == nil {
		return code
	}
	if !cfg.MySQL.Enabled() {
		fmt.Fprintf(e.stderr, "tandem snapshot restore-db: no [mysql] dsn in %s to load the dump through\n", e.configPath)
		return exitUsage
	}
	info, err := store.Find(at)
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	res, err := store.RestoreDB(e.ctx, snapshot.RestoreDBOptions{
		ID: info.ID, DSN: cfg.MySQL.DSN, Database: fs.Lookup("database").Value.String(),
		ToDatabase: fs.Lookup("to-database").Value.String(), Force: fs.Lookup("force").Value.String() == "true",
	})
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	if e.json {
		writeJSON(e.stdout, res)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "Loaded %d tables (%d rows) from snapshot %s (GTID %s) into %s.\n", res.Tables, res.Rows, info.ID, orDash(info.GTID), strings.Join(res.Databases, ", "))
	return exitOK
}

func snapshotVerify(e *env, fs *flag.FlagSet, args []string) int {
	if len(args) > 1 {
		fmt.Fprintf(e.stderr, "tandem snapshot verify: give at most one snapshot ID\n")
		return exitUsage
	}
	var sample float64
	fmt.Sscan(fs.Lookup("sample").Value.String(), &sample)
	if sample <= 0 || sample > 100 {
		fmt.Fprintf(e.stderr, "tandem snapshot verify: --sample %v must be a percentage above 0, at most 100\n", sample)
		return exitUsage
	}
	_, store, code := snapshotConfig(e, "verify")
	if store == nil {
		return code
	}
	id := ""
	if len(args) == 1 {
		id = args[0]
	} else {
		l, ok, err := store.Latest()
		if err != nil {
			printError(e.stderr, err)
			return exitFailure
		}
		if !ok {
			fmt.Fprintf(e.stderr, "tandem snapshot verify: no complete snapshot in %s\n", store.Dir())
			return exitFailure
		}
		id = l.ID
	}
	res, err := store.Verify(e.ctx, id, snapshot.VerifyOptions{SamplePercent: sample, Seed: uint64(time.Now().UnixNano())})
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	if e.json {
		writeJSON(e.stdout, res)
	} else {
		for _, p := range res.Problems {
			fmt.Fprintf(e.stdout, "%s: %s: %s\n", p.Kind, p.Path, p.Detail)
		}
		verdict := "OK"
		if n := len(res.Problems); n > 0 {
			verdict = fmt.Sprintf("%d PROBLEM(S)", n)
		}
		fmt.Fprintf(e.stdout, "Verified snapshot %s: %d paths present, %d files re-hashed (%s): %s\n", id, res.Entries, res.Hashed, humanBytes(res.Bytes), verdict)
	}
	if len(res.Problems) > 0 {
		return exitFailure
	}
	return exitOK
}

func snapshotPrune(e *env, fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem snapshot prune: unexpected argument %q\n", args[0])
		return exitUsage
	}
	cfg, store, code := snapshotConfig(e, "prune")
	if store == nil {
		return code
	}
	dry := fs.Lookup("dry-run").Value.String() == "true"
	plan, err := store.Prune(e.ctx, cfg.Snapshot.Keep, time.Now(), dry)
	if err != nil {
		printError(e.stderr, err)
		return exitFailure
	}
	if e.json {
		if plan == nil {
			plan = []snapshot.Decision{}
		}
		writeJSON(e.stdout, plan)
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	removed := 0
	for _, d := range plan {
		what := "keep"
		if !d.Keep {
			removed++
			what = "removed"
			if dry {
				what = "would remove"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Info.ID, what, d.Reason)
	}
	tw.Flush()
	verb := "Removed"
	if dry {
		verb = "Would remove"
	}
	fmt.Fprintf(e.stdout, "%s %d of %d snapshots.\n", verb, removed, len(plan))
	return exitOK
}

// printSnapshotStatus prints the snapshot part of `tandem status`.
func printSnapshotStatus(w io.Writer, s *snapshot.Status, now time.Time) {
	if s == nil {
		return
	}
	last := "none yet"
	if s.LastGood != "" {
		last = fmt.Sprintf("%s (%s ago, %s, %s new)", s.LastGood, now.Sub(s.LastGoodTime).Round(time.Second),
			humanBytes(s.LastGoodBytes), humanBytes(s.LastGoodNewBytes))
	}
	fmt.Fprintf(w, "\n  snapshots: last %s; next due %s", last, s.NextDue.Local().Format("2006-01-02 15:04:05"))
	switch {
	case s.Taking:
		fmt.Fprint(w, "; taking one now")
	case s.Pruning:
		fmt.Fprint(w, "; pruning")
	}
	fmt.Fprintln(w)
	if s.LastError != "" {
		fmt.Fprintf(w, "  snapshot error: %s\n", firstLine(s.LastError))
	}
}
