package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/watcher/replica"
)

// conflictsHelp is the help of `tandem conflicts`.
const conflictsHelp = `Shows and settles conflicts: paths that both nodes changed before either
heard of the other's change. No version is lost: the winner stays at the
path (a live version beats a delete, a directory beats a file or symlink,
then the newer mtime wins, then the greater node name), and the loser is
kept beside it as NAME.conflict-NODE-YYYYMMDD-HHMMSS.EXT, an ordinary file
that syncs like any other. Each node logs its conflicts in
state_dir/conflicts.jsonl.

  list              the unresolved conflicts, newest last, one a line: ID,
                    time, kind, path (relative to its sync root), winner, and
                    where the loser was kept. --all adds the resolved ones
                    and how they were resolved; --since T keeps those from T
                    on, where T is a time (2026-11-22T01:30:00Z), a date
                    (2026-11-22, local midnight) or how long ago (24h, 7d).
                    This is what "tandem conflicts" alone does.
  show ID           one conflict in full: both versions (node, vector, type,
                    size, hash, mtime), why the winner won, where the loser
                    is, how it was resolved, and the commands to resolve it.
  resolve ID --keep NODE|both
                    settles a conflict:
                      --keep WINNER  deletes the conflict copy;
                      --keep LOSER   moves the copy back over the path,
                                     replacing the winner (or, when the
                                     loser was a delete, deletes the path);
                      --keep both    leaves both files as they are;
                    then marks it resolved. The running daemon does it, so
                    that the change replicates to the peer: exits 3 when the
                    daemon is not running.

list and show read the log directly: they work whether or not the daemon
runs. Flags may come before or after the subcommand and its ID.

With --json, list prints a JSON array of entries and show one entry, in the
log's own field names: id, time, kind, root, path, local and remote (each:
node, vector, type, deleted, hash, size, mtime, target), winner, kept_as,
row (MySQL row conflicts), resolution {at, how}.`

var conflictsExamples = []string{
	"tandem conflicts list",
	"tandem conflicts list --since 24h -c /etc/tandem/tandem.toml",
	"tandem conflicts list --all --json | jq '.[] | select(.kind == \"delete\")'",
	"tandem conflicts show 12",
	"tandem conflicts resolve 12 --keep beta",
	"tandem conflicts resolve 12 --keep both",
}

// conflictsFlags registers the subcommands' own flags, for help and for
// flags given before the subcommand.
func conflictsFlags(fs *flag.FlagSet, e *env) {
	fs.Bool("all", false, "list: include resolved conflicts, with how they were resolved")
	fs.String("since", "", "list: only conflicts from T on: RFC 3339, a date (2026-11-22) or how long ago (24h, 7d)")
	fs.String("keep", "", "resolve: the node whose version to keep, or both")
}

// conflictsOpts are the flags of one `tandem conflicts` subcommand.
type conflictsOpts struct {
	json  bool
	all   bool
	since string
	keep  string
}

// conflictsSubcommands maps each subcommand to the flags it takes (besides
// -c) and what runs it.
var conflictsSubcommands = map[string]struct {
	flags []string
	run   func(e *env, o conflictsOpts, args []string) int
}{
	"list":    {[]string{"json", "all", "since"}, conflictsList},
	"show":    {[]string{"json"}, conflictsShow},
	"resolve": {[]string{"keep"}, conflictsResolve},
}

func cmdConflicts(e *env, args []string) int {
	sub := "list"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	sc, ok := conflictsSubcommands[sub]
	if !ok {
		fmt.Fprintf(e.stderr, "tandem conflicts: unknown subcommand %q; use list, show ID or resolve ID --keep NODE|both\n", sub)
		return exitUsage
	}
	takes := map[string]bool{}
	for _, name := range sc.flags {
		takes[name] = true
	}
	// Flags given before the subcommand were parsed into e; they are the
	// defaults of the subcommand's own flag set, and must be ones it takes.
	o := conflictsOpts{json: e.json}
	bad := ""
	if e.flags != nil {
		e.flags.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "all":
				o.all = f.Value.String() == "true"
			case "since":
				o.since = f.Value.String()
			case "keep":
				o.keep = f.Value.String()
			case "json":
			default:
				return
			}
			if !takes[f.Name] && bad == "" {
				bad = f.Name
			}
		})
	}
	fs := flag.NewFlagSet("tandem conflicts "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.configPath, "c", e.configPath, "config file")
	fs.StringVar(&e.configPath, "config", e.configPath, "config file (same as -c)")
	if takes["json"] {
		fs.BoolVar(&o.json, "json", o.json, "print JSON instead of text")
	}
	if takes["all"] {
		fs.BoolVar(&o.all, "all", o.all, "include resolved conflicts")
	}
	if takes["since"] {
		fs.StringVar(&o.since, "since", o.since, "only conflicts from T on")
	}
	if takes["keep"] {
		fs.StringVar(&o.keep, "keep", o.keep, "the node whose version to keep, or both")
	}
	if bad != "" {
		fmt.Fprintf(e.stderr, "tandem conflicts %s: flag --%s does not apply to %s\nRun `tandem help conflicts` for its flags.\n", sub, bad, sub)
		return exitUsage
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(e.stdout, findCommand("conflicts"))
			return exitOK
		}
		fmt.Fprintf(e.stderr, "tandem conflicts %s: %v\nRun `tandem help conflicts` for its flags.\n", sub, err)
		return exitUsage
	}
	return sc.run(e, o, rest)
}

// parseInterspersed parses args with fs, allowing flags after positional
// arguments (`show 3 --json`), and returns the positional ones. After "--"
// everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// hint returns a command line to suggest, with -c when the user gave a
// config file other than the default.
func (e *env) hint(args string) string {
	s := "tandem " + args
	if e.configPath != "" && e.configPath != DefaultConfigPath {
		s += " -c " + e.configPath
	}
	return s
}

// loadConflicts loads the config and the conflict log, warning on stderr
// about unreadable lines. code is the exit code to stop with when v is nil.
func loadConflicts(e *env) (cfg *Config, v *conflict.View, code int) {
	cfg, ok := e.loadConfig()
	if !ok {
		return nil, nil, exitUsage
	}
	v, err := conflict.Load(cfg.StateDir)
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		return nil, nil, exitFailure
	}
	if v.Skipped > 0 {
		fmt.Fprintf(e.stderr, "tandem: warning: %d unreadable line(s) in %s were skipped; what they recorded is not shown\n",
			v.Skipped, filepath.Join(cfg.StateDir, conflict.LogFile))
	}
	return cfg, v, exitOK
}

func conflictsList(e *env, o conflictsOpts, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem conflicts list: unexpected argument %q\n", args[0])
		return exitUsage
	}
	var f conflict.Filter
	if o.since != "" {
		t, err := parseSince(o.since, time.Now())
		if err != nil {
			fmt.Fprintf(e.stderr, "tandem conflicts list: %v\n", err)
			return exitUsage
		}
		f.Since = t
	}
	f.Unresolved = !o.all
	_, v, code := loadConflicts(e)
	if v == nil {
		return code
	}
	entries := v.List(f)
	if o.json {
		if entries == nil {
			entries = []conflict.Entry{} // [] rather than null
		}
		writeJSON(e.stdout, entries)
		return exitOK
	}
	printConflictList(e.stdout, entries, o.all)
	if len(entries) == 0 {
		what := "no unresolved conflicts"
		if o.all {
			what = "no conflicts"
		}
		if !f.Since.IsZero() {
			what += " since " + f.Since.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintln(e.stdout, what)
		if hidden := len(v.List(conflict.Filter{Since: f.Since})); !o.all && hidden > 0 {
			fmt.Fprintf(e.stdout, "(%d resolved; %s shows them)\n", hidden, e.hint("conflicts list --all"))
		}
		return exitOK
	}
	open := 0
	for _, en := range entries {
		if en.Resolution == nil {
			open++
		}
	}
	if open > 0 {
		fmt.Fprintf(e.stdout, "\n%d unresolved.\nSee one in full:  %s\nResolve one:      %s\n",
			open, e.hint("conflicts show ID"), e.hint("conflicts resolve ID --keep NODE|both"))
	}
	return exitOK
}

// printConflictList prints entries as a table, one a line, with a
// RESOLVED column when withResolution is set.
func printConflictList(w io.Writer, entries []conflict.Entry, withResolution bool) {
	if len(entries) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "ID\tTIME\tKIND\tPATH\tWINNER\tLOSER"
	if withResolution {
		header += "\tRESOLVED"
	}
	fmt.Fprintln(tw, header)
	for _, en := range entries {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", en.ID, en.Time.Local().Format("2006-01-02 15:04:05"),
			en.Kind, displayPath(en), orDash(en.Winner), loserSummary(en))
		if withResolution {
			res := "no"
			if r := en.Resolution; r != nil {
				res = r.How + ", " + r.At.Local().Format("2006-01-02 15:04")
			}
			line += "\t" + res
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

// displayPath is an entry's path relative to its sync root, or for a row
// conflict the table and key.
func displayPath(en conflict.Entry) string {
	if en.Kind == conflict.KindRow && en.Row != nil {
		s := en.Row.Schema + "." + en.Row.Table
		if len(en.Row.Key) > 0 {
			s += " " + string(en.Row.Key)
		}
		return s
	}
	return en.Path
}

// loserSummary says whose version lost and where it is.
func loserSummary(en conflict.Entry) string {
	if en.Kind == conflict.KindRow {
		return "-"
	}
	_, loser, ok := conflictSides(en)
	who := "?"
	if ok {
		who = loser.Node
	}
	if en.KeptAs == "" {
		return who + ", loser was a delete"
	}
	return who + ", kept as " + en.KeptAs
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// conflictSides returns the winning and the losing version of en; ok is
// false when Winner names neither side.
func conflictSides(en conflict.Entry) (winner, loser conflict.Version, ok bool) {
	switch en.Winner {
	case en.Local.Node:
		return en.Local, en.Remote, true
	case en.Remote.Node:
		return en.Remote, en.Local, true
	}
	return conflict.Version{}, conflict.Version{}, false
}

// parseSince reads --since: an RFC 3339 time, a date (local midnight), or
// how long before now (a Go duration such as 24h or 90m, or days: 7d).
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, now.Location()); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		n, nerr := strconv.ParseUint(days, 10, 16)
		d, err = time.Duration(n)*24*time.Hour, nerr
	}
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--since %q: give a time (2026-11-22T01:30:00Z), a date (2026-11-22) or how long ago (24h, 90m, 7d)", s)
	}
	return now.Add(-d), nil
}

func conflictsShow(e *env, o conflictsOpts, args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(e.stderr, "tandem conflicts show: give one conflict ID (%s lists them)\n", e.hint("conflicts list"))
		return exitUsage
	}
	cfg, v, code := loadConflicts(e)
	if v == nil {
		return code
	}
	en, err := v.Get(args[0])
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem: %v; %s lists them all\n", err, e.hint("conflicts list --all"))
		return exitFailure
	}
	if o.json {
		writeJSON(e.stdout, en)
		return exitOK
	}
	printConflict(e.stdout, en, e.hint, syncRootDirs(cfg))
	return exitOK
}

// printConflict prints everything about en; hint turns the arguments of a
// tandem command into the command line to suggest, and rootDir finds the
// directory of en.Root (see syncRootDirs).
func printConflict(w io.Writer, en conflict.Entry, hint func(string) string, rootDir func(string) (string, bool)) {
	state := "unresolved"
	if en.Resolution != nil {
		state = "resolved"
	}
	fmt.Fprintf(w, "conflict %s: %s conflict, %s\n", en.ID, en.Kind, state)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("time", en.Time.Local().Format("2006-01-02 15:04:05 -0700"))
	pathErr := entryPathsErr(en)
	winner, loser, sidesOK := conflictSides(en)
	if en.Kind == conflict.KindRow {
		if r := en.Row; r != nil {
			row("table", r.Schema+"."+r.Table)
			row("key", string(r.Key))
			row("before", string(r.Before))
			row("after", string(r.After))
			row("current", string(r.Current))
		}
		if en.Winner != "" {
			row("winner", en.Winner)
		}
	} else {
		dir, ok := rootDir(en.Root)
		switch {
		case ok && dir == en.Root:
			row("sync root", dir)
		case ok:
			row("sync root", en.Root+" ("+dir+")")
		case filepath.IsAbs(en.Root):
			dir = en.Root
			row("sync root", dir+" (not a [[sync]] of this node's config)")
		default:
			row("sync root", en.Root+" (not a [[sync]] of this node's config; paths below are relative to it)")
		}
		abs := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
		row("path", abs(en.Path))
		why := "the log names neither side as the winner"
		if sidesOK {
			why = whyWon(winner, loser)
		}
		row("winner", orDash(en.Winner)+": "+why)
		switch {
		case !sidesOK:
		case en.KeptAs == "":
			row("loser", loser.Node+", a delete: nothing to keep")
		default:
			row("loser", loser.Node+", kept as "+abs(en.KeptAs))
		}
	}
	if r := en.Resolution; r != nil {
		row("resolved", r.At.Local().Format("2006-01-02 15:04:05 -0700")+": "+r.How)
	}
	tw.Flush()
	if pathErr != nil {
		fmt.Fprintf(w, "  WARNING: %v: the entry looks tampered with; resolve refuses to touch files for it\n", pathErr)
	}
	if en.Kind != conflict.KindRow {
		for _, s := range []struct {
			v    conflict.Version
			side string
		}{{en.Local, "this node"}, {en.Remote, "the peer"}} {
			outcome := ""
			if sidesOK {
				outcome = ", lost"
				if s.v.Node == winner.Node {
					outcome = ", won"
				}
			}
			fmt.Fprintf(w, "\n%s (%s)%s:\n", s.v.Node, s.side, outcome)
			printVersion(w, s.v)
		}
	}
	if en.Resolution != nil {
		return
	}
	fmt.Fprintf(w, "\nTo resolve it (the daemon must be running; the change replicates to the peer):\n")
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	cmd := func(keep, what string) {
		fmt.Fprintf(tw, "  %s\t# %s\n", hint("conflicts resolve "+en.ID+" --keep "+keep), what)
	}
	switch {
	case en.Kind == conflict.KindRow || !sidesOK:
		cmd("both", "mark it resolved; tandem changes nothing")
	case en.KeptAs == "":
		cmd(winner.Node, "keep "+winner.Node+"'s version at "+en.Path)
		cmd(loser.Node, "delete "+en.Path+", as "+loser.Node+" did")
		cmd("both", "leave "+en.Path+" as it is")
	default:
		cmd(winner.Node, "keep "+winner.Node+"'s version at "+en.Path+"; delete the copy")
		cmd(loser.Node, "move "+loser.Node+"'s version from the copy back to "+en.Path+", replacing "+winner.Node+"'s")
		cmd("both", "leave both files as they are")
	}
	tw.Flush()
}

// printVersion prints one side of a conflict, indented.
func printVersion(w io.Writer, v conflict.Version) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	switch {
	case v.Deleted && v.Type != conflict.TypeUnknown:
		row("type", "deleted (was a "+v.Type.String()+")")
	case v.Deleted:
		row("type", "deleted")
	default:
		row("type", typeName(v.Type))
	}
	if !v.Deleted {
		switch typeName(v.Type) {
		case "file":
			row("size", fmt.Sprintf("%d bytes", v.Size))
			row("hash", v.Hash.String())
		case "symlink":
			row("target", v.Target)
		}
	}
	if !v.Mtime.IsZero() {
		row("mtime", formatMtime(v.Mtime))
	}
	row("vector", v.Vector.String())
	tw.Flush()
}

// typeName names a live version's type; Decide takes an unknown type for a
// file.
func typeName(t conflict.Type) string {
	if t == conflict.TypeUnknown {
		return "file"
	}
	return t.String()
}

func formatMtime(t time.Time) string {
	return t.Local().Format("2006-01-02 15:04:05.999999999 -0700")
}

// whyWon explains, by the rules of conflict.Decide, why winner beat loser,
// two concurrent versions of a path.
func whyWon(winner, loser conflict.Version) string {
	const notByRule = "recorded as the winner, though the rules would pick %s's version"
	if winner.Deleted != loser.Deleted {
		if loser.Deleted {
			return "a live version beats a delete"
		}
		return fmt.Sprintf(notByRule, loser.Node)
	}
	if !winner.Deleted {
		if wDir, lDir := winner.Type == conflict.TypeDir, loser.Type == conflict.TypeDir; wDir != lDir {
			if wDir {
				return "a directory beats a " + typeName(loser.Type)
			}
			return fmt.Sprintf(notByRule, loser.Node)
		}
	}
	if c := winner.Mtime.Round(0).Compare(loser.Mtime.Round(0)); c != 0 {
		if c > 0 {
			return fmt.Sprintf("newer mtime (%s, against %s)", formatMtime(winner.Mtime), formatMtime(loser.Mtime))
		}
		return fmt.Sprintf(notByRule, loser.Node)
	}
	if winner.Node != loser.Node {
		if winner.Node > loser.Node {
			return fmt.Sprintf("same mtime, greater node name (%q after %q)", winner.Node, loser.Node)
		}
		return fmt.Sprintf(notByRule, loser.Node)
	}
	return "same mtime and node name; decided by content order"
}

func conflictsResolve(e *env, o conflictsOpts, args []string) int {
	if len(args) != 1 || o.keep == "" {
		fmt.Fprintf(e.stderr, "tandem conflicts resolve: give one conflict ID and --keep NODE|both, e.g. %s\n", e.hint("conflicts resolve 12 --keep beta"))
		return exitUsage
	}
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	var resp resolveResponse
	req := resolveRequest{ID: args[0], Keep: o.keep}
	if err := control.NewClient(control.SocketPath(cfg.StateDir)).Post(ctx, "/conflicts/resolve", req, &resp); err != nil {
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		if errors.Is(err, control.ErrNotRunning) {
			fmt.Fprintln(e.stderr, "tandem: resolving needs the daemon, so that the change replicates to the peer; start it, then run this again")
			return exitNotRunning
		}
		return exitFailure
	}
	fmt.Fprintln(e.stdout, resp.Done)
	return exitOK
}

// resolveRequest is the body of POST /conflicts/resolve.
type resolveRequest struct {
	ID   string `json:"id"`
	Keep string `json:"keep"` // a node of the conflict, or "both"
}

// resolveResponse is the answer of POST /conflicts/resolve.
type resolveResponse struct {
	Done string `json:"done"` // what was done, as a sentence
}

// conflictRoutes registers the control socket's conflict routes on mux:
//
//	POST /conflicts/resolve  {"id": "12", "keep": "beta"} -> {"done": "..."}
//
// It answers 400 for a bad request (or a keep that is neither node nor
// "both"), 404 for an unknown ID, 409 when the conflict is already resolved
// or its files are not as resolving needs them, 500 for an I/O error.
// rootDir is as for resolveConflict.
func conflictRoutes(mux *http.ServeMux, log *conflict.Log, rootDir func(string) (string, bool)) {
	mux.HandleFunc("POST /conflicts/resolve", func(w http.ResponseWriter, r *http.Request) {
		var req resolveRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			control.WriteError(w, http.StatusBadRequest, fmt.Sprintf("resolve: bad request body: %v", err))
			return
		}
		if req.ID == "" || req.Keep == "" {
			control.WriteError(w, http.StatusBadRequest, `resolve: say which conflict ("id") and what to keep ("keep": a node name or "both")`)
			return
		}
		done, err := resolveConflict(log, rootDir, req.ID, req.Keep, time.Now())
		if err != nil {
			control.WriteError(w, resolveStatus(err), err.Error())
			return
		}
		control.WriteJSON(w, http.StatusOK, resolveResponse{Done: done})
	})
}

// resolveStatus is the HTTP status for an error of resolveConflict.
func resolveStatus(err error) int {
	var refused *resolveRefusal
	switch {
	case errors.Is(err, conflict.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, conflict.ErrResolved):
		return http.StatusConflict
	case errors.As(err, &refused):
		return refused.status
	}
	return http.StatusInternalServerError
}

// resolveRefusal is a resolve that cannot go ahead as asked: a bad keep
// (status 400), or a log entry or files not as resolving needs them (409).
// Nothing was changed.
type resolveRefusal struct {
	status int
	msg    string
}

func (r *resolveRefusal) Error() string { return r.msg }

func refuse(status int, format string, args ...any) error {
	return &resolveRefusal{status: status, msg: fmt.Sprintf(format, args...)}
}

// resolveMu makes each resolveConflict (check the entry, change the files,
// mark it resolved) one step, so that two requests for the same conflict
// cannot both act on it.
var resolveMu sync.Mutex

// resolveConflict settles conflict id of log by keeping keep's version (a
// node of the conflict) or both, and returns what it did as a sentence.
// rootDir maps an entry's Root to the sync root's directory on this node,
// false when it is not one of this node's sync roots. now is the time of
// the resolution.
//
// Keeping the winner deletes the conflict copy (when it is still there,
// and only if it still holds the loser's size or target: an edited copy is
// left for the operator). Keeping the loser renames the copy over the
// path, or, when the loser was a delete, deletes the path; a directory at
// the path is refused, never replaced or deleted. Keeping both changes
// nothing. These are ordinary changes to the tree: the watcher sees them
// and they replicate. Then the conflict is marked resolved, "keep NODE" or
// "keep both".
//
// The entry's paths come from the log, which could have been tampered
// with: they must be relative, without "." or ".." elements, and the copy
// must be a conflict copy's name beside the path; all file access goes
// through an os.Root. Errors about the request or the entry are
// *resolveRefusal, conflict.ErrNotFound or conflict.ErrResolved, and then
// nothing has changed.
func resolveConflict(log *conflict.Log, rootDir func(root string) (string, bool), id, keep string, now time.Time) (done string, err error) {
	resolveMu.Lock()
	defer resolveMu.Unlock()
	en, err := log.Get(id)
	if err != nil {
		return "", fmt.Errorf("%w; `tandem conflicts list --all` lists them", err)
	}
	if r := en.Resolution; r != nil {
		return "", fmt.Errorf("conflict %s: %w at %s (%s)", id, conflict.ErrResolved, r.At.Local().Format("2006-01-02 15:04:05 -0700"), r.How)
	}
	if en.Kind == conflict.KindRow {
		if keep != "both" {
			return "", refuse(http.StatusBadRequest, "conflict %s is a MySQL row conflict: tandem cannot change the row for you; fix it by hand, then resolve it with --keep both", id)
		}
		done = fmt.Sprintf("Marked the row conflict %s resolved; nothing was changed.", id)
		return markResolved(log, id, keep, now, done)
	}
	winner, loser, ok := conflictSides(en)
	if !ok {
		return "", refuse(http.StatusConflict, "conflict %s: the log names %q as the winner, neither %q nor %q; the entry is damaged", id, en.Winner, en.Local.Node, en.Remote.Node)
	}
	if keep != "both" && keep != winner.Node && keep != loser.Node {
		return "", refuse(http.StatusBadRequest, "--keep %q: conflict %s is between %s and %s; keep %s, %s or both", keep, id, en.Local.Node, en.Remote.Node, winner.Node, loser.Node)
	}
	dir, ok := rootDir(en.Root)
	if !ok {
		return "", refuse(http.StatusConflict, "conflict %s is under %s, which is not a sync root of this node", id, en.Root)
	}
	if err := entryPathsErr(en); err != nil {
		return "", refuse(http.StatusConflict, "conflict %s: %v; the log entry looks tampered with, so tandem will not touch files for it", id, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("resolve conflict %s: %w", id, err)
	}
	defer root.Close()
	abs := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	target, copyPath := abs(en.Path), abs(en.KeptAs)

	switch {
	case keep == "both" && en.KeptAs == "":
		done = fmt.Sprintf("Left %s as it is (%s's version); %s's delete is dropped.", target, winner.Node, loser.Node)
	case keep == "both":
		done = fmt.Sprintf("Left both as they are: %s holds %s's version, %s holds %s's.", target, winner.Node, copyPath, loser.Node)

	case keep == winner.Node && en.KeptAs == "":
		done = fmt.Sprintf("Kept %s's version of %s; %s's delete is dropped.", winner.Node, target, loser.Node)
	case keep == winner.Node:
		fi, err := root.Lstat(en.KeptAs)
		if errors.Is(err, fs.ErrNotExist) {
			done = fmt.Sprintf("Kept %s's version of %s; the conflict copy %s was already gone.", winner.Node, target, copyPath)
			break
		}
		if err != nil {
			return "", fmt.Errorf("resolve conflict %s: %w", id, err)
		}
		if err := copyUnchanged(root, en.KeptAs, fi, loser); err != nil {
			return "", refuse(http.StatusConflict, "the conflict copy %s %v since the conflict; look at it, and if you do not need it delete it yourself and run this again (or resolve with --keep both to leave it)", copyPath, err)
		}
		if err := root.Remove(en.KeptAs); err != nil {
			return "", fmt.Errorf("resolve conflict %s: delete the copy: %w", id, err)
		}
		if err := syncParent(root, en.KeptAs); err != nil {
			return "", fmt.Errorf("resolve conflict %s: %w", id, err)
		}
		done = fmt.Sprintf("Kept %s's version of %s and deleted the conflict copy %s (%s's version); the delete replicates to the peer.", winner.Node, target, copyPath, loser.Node)

	case en.KeptAs == "": // keep the loser, a delete
		fi, err := root.Lstat(en.Path)
		if errors.Is(err, fs.ErrNotExist) {
			done = fmt.Sprintf("%s was already gone, as %s had deleted it.", target, loser.Node)
			break
		}
		if err != nil {
			return "", fmt.Errorf("resolve conflict %s: %w", id, err)
		}
		if fi.IsDir() {
			return "", refuse(http.StatusConflict, "%s is a directory: tandem does not delete a directory tree for you; if you mean to, remove it yourself (rm -r) and run this again", target)
		}
		if err := root.Remove(en.Path); err != nil {
			return "", fmt.Errorf("resolve conflict %s: delete %s: %w", id, target, err)
		}
		if err := syncParent(root, en.Path); err != nil {
			return "", fmt.Errorf("resolve conflict %s: %w", id, err)
		}
		done = fmt.Sprintf("Deleted %s, as %s had; the delete replicates to the peer.", target, loser.Node)

	default: // keep the loser, from its copy
		cfi, err := root.Lstat(en.KeptAs)
		if errors.Is(err, fs.ErrNotExist) {
			return "", refuse(http.StatusConflict, "the conflict copy %s is gone, so %s's version cannot be put back; resolve with --keep %s or --keep both", copyPath, loser.Node, winner.Node)
		}
		if err != nil {
			return "", fmt.Errorf("resolve conflict %s: %w", id, err)
		}
		if cfi.IsDir() {
			return "", refuse(http.StatusConflict, "the conflict copy %s is now a directory; sort it out by hand, then resolve with --keep both", copyPath)
		}
		if fi, err := root.Lstat(en.Path); err == nil && fi.IsDir() {
			return "", refuse(http.StatusConflict, "%s is now a directory, which the copy cannot replace; move the directory aside yourself and run this again, or resolve with --keep both", target)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("resolve conflict %s: %w", id, err)
		}
		// rename(2) replaces a file or symlink atomically: there is no
		// moment without a file at the path.
		if err := root.Rename(en.KeptAs, en.Path); err != nil {
			return "", fmt.Errorf("resolve conflict %s: move the copy back: %w", id, err)
		}
		if err := syncParent(root, en.Path); err != nil {
			return "", fmt.Errorf("resolve conflict %s: %w", id, err)
		}
		done = fmt.Sprintf("Put %s's version back at %s (moved from %s), replacing %s's; the change replicates to the peer.", loser.Node, target, copyPath, winner.Node)
	}
	return markResolved(log, id, keep, now, done)
}

func markResolved(log *conflict.Log, id, keep string, now time.Time, done string) (string, error) {
	if _, err := log.MarkResolved(id, "keep "+keep, now); err != nil {
		return "", fmt.Errorf("%s But conflict %s could not be marked resolved: %w", done, id, err)
	}
	return done, nil
}

// copyUnchanged returns an error describing the change when the conflict
// copy at name (with fi from Lstat) no longer looks like the loser: a
// different type, size or symlink target.
func copyUnchanged(root *os.Root, name string, fi fs.FileInfo, loser conflict.Version) error {
	switch typeName(loser.Type) {
	case "file":
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("is no longer a regular file (%v)", fi.Mode().Type())
		}
		if fi.Size() != loser.Size {
			return fmt.Errorf("has changed (%d bytes, %s's version had %d)", fi.Size(), loser.Node, loser.Size)
		}
	case "symlink":
		if fi.Mode().Type() != fs.ModeSymlink {
			return fmt.Errorf("is no longer a symlink (%v)", fi.Mode().Type())
		}
		t, err := root.Readlink(name)
		if err != nil {
			return fmt.Errorf("cannot be read (%v)", err)
		}
		if t != loser.Target {
			return fmt.Errorf("has changed (it points to %q, %s's version to %q)", t, loser.Node, loser.Target)
		}
	default:
		return fmt.Errorf("is a %v, and %s's version was a %v", fi.Mode().Type(), loser.Node, loser.Type)
	}
	return nil
}

// syncParent fsyncs the directory holding name, so that a rename or
// delete in it is durable.
func syncParent(root *os.Root, name string) error {
	d, err := root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d.Name(), err)
	}
	return nil
}

// entryPathsErr checks the paths of a file conflict as the log gives them:
// Path must be relative and plain, and KeptAs (when set) a conflict copy's
// name in the same directory.
func entryPathsErr(en conflict.Entry) error {
	if en.Kind == conflict.KindRow {
		return nil
	}
	if err := replica.CheckPath(en.Path); err != nil {
		return fmt.Errorf("path %q: %w", en.Path, err)
	}
	if en.KeptAs == "" {
		return nil
	}
	if err := replica.CheckPath(en.KeptAs); err != nil {
		return fmt.Errorf("kept_as %q: %w", en.KeptAs, err)
	}
	if path.Dir(en.KeptAs) != path.Dir(en.Path) || !conflict.IsConflictName(en.KeptAs) {
		return fmt.Errorf("kept_as %q is not a conflict copy's name beside %q", en.KeptAs, en.Path)
	}
	return nil
}

// syncRootDirs returns the rootDir function of cfg, for the daemon's
// conflictRoutes and for show: an entry's Root is one of this node's
// [[sync]] trees, by its ID (the name on the link, which the replica logs)
// or by its path; the answer is the tree's path.
func syncRootDirs(cfg *Config) func(root string) (string, bool) {
	return func(root string) (string, bool) {
		if root == "" {
			return "", false
		}
		for _, s := range cfg.Sync {
			if s.ID() == root || filepath.Clean(s.Path) == filepath.Clean(root) {
				return s.Path, true
			}
		}
		return "", false
	}
}
