package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Exit codes, the same for every command (documented in `tandem help`).
const (
	exitOK         = 0 // done; for check: every check passed
	exitFailure    = 1 // the command ran and failed; for check: a check failed
	exitUsage      = 2 // bad flags or arguments, or an invalid config file
	exitNotRunning = 3 // the daemon is not running (status and other daemon queries)
)

// env is what a command runs with: its output streams and the common flags.
type env struct {
	ctx        context.Context
	stdout     io.Writer
	stderr     io.Writer
	configPath string
	logLevel   string
	logFormat  string
	json       bool
	flags      *flag.FlagSet // the command's parsed flags
}

// command is one subcommand and its help.
type command struct {
	name     string
	args     string // synopsis after the flags, e.g. "[--json]"
	summary  string // one line
	help     string // paragraphs
	examples []string
	// flags registers the command's own flags; common ones are added by
	// the command's needs.
	flags      func(fs *flag.FlagSet, e *env)
	usesConfig bool
	usesJSON   bool
	run        func(e *env, args []string) int
}

func commands() []*command {
	return []*command{
		{
			name:    "run",
			summary: "run the daemon in the foreground (what the systemd unit starts)",
			help: `Runs this node: the SSH server for the peer, the link to the peer with
heartbeats every second, and the control socket that status and the other
commands talk to (state_dir/tandem.sock, mode 0600). Logs go to stderr: JSON
when stderr is not a terminal (journald), readable lines on a terminal.
Stops cleanly on SIGINT or SIGTERM.`,
			examples: []string{"tandem run -c /etc/tandem/tandem.toml", "tandem run -c ./alpha.toml --log-level debug"},
			flags: func(fs *flag.FlagSet, e *env) {
				fs.Bool("force", false, "failover: take a role without waiting to see the peer (it still gets dead_after to show up)")
			},
			usesConfig: true,
			run:        cmdRun,
		},
		{
			name:    "init",
			summary: "create the state dir and this node's key; print its public key",
			help: `Creates state_dir (mode 0700) and this node's ed25519 key in it (mode 0600,
OpenSSH format) if they are missing, and prints the public key as one
authorized_keys line on stdout, and nothing else there. Running it again
changes nothing and prints the same line.

One key per node is both its SSH host key and its client identity. Pair two
nodes by putting each one's line
  - in the other's authorized_keys file, as printed, and
  - in the other's known_hosts file, with "[host]:port " in front, where
    host:port is the node's [ssh].listen address as the peer dials it.`,
			examples: []string{
				"tandem init -c /etc/tandem/tandem.toml",
				"tandem init -c alpha.toml >> beta/authorized_keys",
				`echo "[203.0.113.7]:2222 $(tandem init -c /etc/tandem/tandem.toml)"   # a known_hosts line`,
			},
			usesConfig: true,
			run:        cmdInit,
		},
		{
			name:    "status",
			summary: "show what the running daemon is doing",
			help: `Asks the running daemon over its control socket and prints a summary: the
peer link (connected, round-trip time, since when, last error). With --json,
prints the same as one JSON object, for scripts and monitoring:
  {"node": "alpha", "peers": [{"name": "beta", "address": "...",
   "connected": true, "rtt_ms": 101.2, "since": "2026-11-22T01:59:00Z",
   "last_error": "", ...}]}
Exits 3 when the daemon is not running.`,
			examples:   []string{"tandem status -c /etc/tandem/tandem.toml", "tandem status --json | jq '.peers[0].rtt_ms'"},
			usesConfig: true,
			usesJSON:   true,
			run:        cmdStatus,
		},
		{
			name:    "check",
			summary: "check the config, the keys and the peer link before going live",
			help: `Preflight: parses the config (every problem, with its line), checks the key
files (present, parseable, private key mode 0600, authorized_keys and
known_hosts not writable by others), the inotify watch limit against the
number of directories in the synced trees (with the sysctl line to raise
it), free space and inodes for the state dir, the synced trees and the
snapshot dir, then dials the peer once over SSH: host key against
known_hosts, our key against the peer's authorized_keys, node names and
protocol versions, round-trip time and clock offset. It does not disturb a
daemon that is running. Each line starts with "ok" or "FAIL"; a FAIL says
what to do.

Exit codes: 0 every check passed, 1 a check failed, 2 the config is invalid
(or bad flags).`,
			examples:   []string{"tandem check -c /etc/tandem/tandem.toml"},
			usesConfig: true,
			run:        cmdCheck,
		},
		{
			name:       "conflicts",
			args:       "[list [--all] [--since T] [--json] | show ID [--json] | resolve ID --keep NODE|both]",
			summary:    "list the conflicts between the nodes' files, show one, resolve one",
			help:       conflictsHelp,
			examples:   conflictsExamples,
			flags:      conflictsFlags,
			usesConfig: true,
			usesJSON:   true,
			run:        cmdConflicts,
		},
		{
			name:    "witness",
			summary: "run the witness: the third voter that keeps the two nodes from both being primary",
			help: `Runs a witness in the foreground: a small daemon for a cheap third host that
keeps no data and only votes, with both nodes, on which node is primary
(raft, github.com/hashicorp/raft; the raft term is the failover epoch). With
a witness, a node that loses touch with both the peer and the witness gives
up the primary role, and a node promotes only with a majority: the two
nodes cannot both be primary for longer than a raft lease.

The witness's config has node = "witness", a state_dir, an [ssh] section
(listen, authorized_keys with both nodes' keys, known_hosts with both
nodes' host keys at their addresses) and two [[peer]] tables, one per node.
On each node, set [failover] witness = "HOST:PORT" (the witness's
ssh.listen as the nodes reach it), add the witness's key (tandem init on the
witness prints it) to authorized_keys, and its host key to known_hosts as
"[HOST]:PORT KEY". The witness link shares the node's SSH port.`,
			examples:   []string{"tandem witness -c /etc/tandem/witness.toml"},
			usesConfig: true,
			run:        cmdWitness,
		},
		{
			name:    "db",
			args:    "seed",
			summary: "copy the peer's databases into this node's empty server, then replicate from there",
			help: `seed fills this node's MySQL/MariaDB server with a copy of the peer's
replicated databases ([mysql] databases), taken from one consistent snapshot
on the peer, and makes replication from the peer continue right after that
snapshot: nothing missed, nothing applied twice. Use it for a new, empty
node, before writing to its databases: the schemas must not exist here yet.
While it runs, the peer's new transactions wait; progress is printed every
second. Needs the daemon running on both nodes and the link up. Exits 0 when
done, 1 when the seed failed (nothing half-done is kept as replicated: run
it again after dropping what it created), 3 when the daemon is not running.`,
			examples:   []string{"tandem db seed -c /etc/tandem/tandem.toml"},
			usesConfig: true,
			run:        cmdDB,
		},
		{
			name:       "promote",
			args:       "[--force]",
			summary:    "make this node the primary (the peer becomes standby)",
			help:       promoteHelp,
			examples:   promoteExamples,
			flags:      roleFlags,
			usesConfig: true,
			run:        cmdPromote,
		},
		{
			name:       "demote",
			args:       "[--force]",
			summary:    "make this node a standby (the peer takes over)",
			help:       demoteHelp,
			examples:   demoteExamples,
			flags:      roleFlags,
			usesConfig: true,
			run:        cmdDemote,
		},
		{
			name:       "snapshot",
			args:       "[take | list | show ID | restore PATH --at ID|TIME [--to DIR] [--force] | restore-db --at ID|TIME [--to-database NAME] | verify [ID] [--sample PERCENT] | prune [--dry-run]]",
			summary:    "take, list, restore and verify point-in-time snapshots of the trees and databases",
			help:       snapshotHelp,
			examples:   snapshotExamples,
			flags:      snapshotFlags,
			usesConfig: true,
			usesJSON:   true,
			run:        cmdSnapshot,
		},
		{
			name:    "deploy",
			args:    "--host USER@HOST --host USER@HOST [flags] | unit [-c FILE]",
			summary: "install, pair and start tandem on two hosts over SSH; print the systemd unit",
			help:    deployHelp,
			examples: []string{
				"tandem deploy --host root@vps1.example.com --host root@vps2.example.com",
				"tandem deploy --host root@203.0.113.7 --host root@198.51.100.1 --name alpha --name beta --dry-run",
				"tandem deploy --host root@vps1 --host root@vps2 --config-dir ./tandem-configs",
				"tandem deploy unit -c /etc/tandem/tandem.toml > /etc/systemd/system/tandem.service",
			},
			flags: deployFlags,
			run:   cmdDeploy,
		},
		{
			name:       "pair",
			args:       "[--address HOST:PORT] [--write] PEER-KEY-LINE|-",
			summary:    "trust the peer's key: print or write the authorized_keys and known_hosts lines",
			help:       pairHelp,
			examples:   []string{`tandem pair -c /etc/tandem/tandem.toml --write "ssh-ed25519 AAAAC3Nza... tandem@beta"`, "ssh root@vps2 tandem init | tandem pair --write -"},
			flags:      pairFlags,
			usesConfig: true,
			run:        cmdPair,
		},
		{
			name:    "demo",
			args:    "[--dir DIR] [--latency D]",
			summary: "start two nodes on this machine and show them pair up",
			help: `Creates two nodes, alpha and beta, under DIR (default: a new temporary
directory), with their own keys, configs and state dirs, pairs them, starts
both as real daemons on loopback ports and prints what they do and what to
try. With --latency, the link between them goes through an in-process proxy
that delays every byte by D each way, like two datacenters apart. Runs until
Ctrl-C, then stops both.`,
			examples: []string{"tandem demo", "tandem demo --dir /tmp/tandem-demo --latency 50ms"},
			flags: func(fs *flag.FlagSet, e *env) {
				fs.String("dir", "", "directory for the demo nodes (default: a new temp dir)")
				fs.Duration("latency", 0, "one-way delay added between the nodes, e.g. 50ms")
			},
			run: cmdDemo,
		},
		{
			name:     "version",
			summary:  "print the version and protocol range",
			help:     `Prints tandem's version, the peer protocol versions it speaks, and the Go toolchain it was built with.`,
			examples: []string{"tandem version"},
			run:      cmdVersion,
		},
		{
			name:    "completion",
			args:    "bash|zsh",
			summary: "print a shell completion script",
			help:    `Prints a completion script for bash or zsh. Load it with: source <(tandem completion bash)`,
			examples: []string{
				"source <(tandem completion bash)",
				"tandem completion bash > /etc/bash_completion.d/tandem",
			},
			run: cmdCompletion,
		},
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// runCLI runs one command line and returns the exit code.
func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "--help", "-help":
		if len(args) > 1 {
			if c := findCommand(args[1]); c != nil {
				commandHelp(stdout, c)
				return exitOK
			}
			fmt.Fprintf(stderr, "tandem: no command %q\n", args[1])
			return exitUsage
		}
		usage(stdout)
		return exitOK
	case "-v", "--version":
		name = "version"
	}
	c := findCommand(name)
	if c == nil {
		fmt.Fprintf(stderr, "tandem: unknown command %q%s\nRun `tandem help` for the list.\n", name, suggest(name))
		return exitUsage
	}
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("tandem "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.usesConfig {
		fs.StringVar(&e.configPath, "c", DefaultConfigPath, "config file")
		fs.StringVar(&e.configPath, "config", DefaultConfigPath, "config file (same as -c)")
		fs.StringVar(&e.logLevel, "log-level", "", "log level: debug, info, warn, error (overrides log_level)")
		fs.StringVar(&e.logFormat, "log-format", "auto", "log format: auto (console on a terminal, else JSON), console, json")
	}
	if c.usesJSON {
		fs.BoolVar(&e.json, "json", false, "print JSON instead of text")
	}
	if c.flags != nil {
		c.flags(fs, e)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(stdout, c)
			return exitOK
		}
		fmt.Fprintf(stderr, "tandem %s: %v\nRun `tandem help %s` for its flags.\n", c.name, err, c.name)
		return exitUsage
	}
	e.flags = fs
	return c.run(e, fs.Args())
}

func usage(w io.Writer) {
	fmt.Fprint(w, `tandem keeps two Linux servers as one fault-tolerant web host: each node
runs "tandem run", and the two keep an SSH link with each other.

Usage: tandem COMMAND [flags]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, `
Common flags:
  -c FILE            config file (default %s)
  --log-level LEVEL  debug, info, warn or error (overrides log_level in the file)

Exit codes: 0 ok, 1 failure (check: a check failed), 2 bad usage or invalid
config, 3 daemon not running.

Getting started on this machine: tandem demo
Help on one command: tandem help COMMAND   (or tandem COMMAND -h)
`, DefaultConfigPath)
}

func commandHelp(w io.Writer, c *command) {
	synopsis := "tandem " + c.name
	if c.usesConfig {
		synopsis += " [-c FILE]"
	}
	if c.args != "" {
		synopsis += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\n%s\n", synopsis, c.summary, c.help)
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	var e env
	if c.usesConfig {
		fs.String("c", DefaultConfigPath, "config file (also --config)")
		fs.String("log-level", "", "log level: debug, info, warn, error (overrides log_level in the file)")
		fs.String("log-format", "auto", "log format: auto (console on a terminal, else JSON), console, json")
	}
	if c.usesJSON {
		fs.Bool("json", false, "print JSON instead of text")
	}
	if c.flags != nil {
		c.flags(fs, &e)
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) > 0 {
		sort.Strings(names)
		fmt.Fprintf(w, "\nFlags:\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, n := range names {
			f := fs.Lookup(n)
			dash := "--"
			if len(n) == 1 {
				dash = "-"
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(tw, "  %s%s\t%s%s\n", dash, n, f.Usage, def)
		}
		tw.Flush()
	}
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, ex := range c.examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
}

// suggest returns " (did you mean X?)" for a near-miss command name.
func suggest(name string) string {
	for _, c := range commands() {
		if strings.HasPrefix(c.name, name) || strings.HasPrefix(name, c.name) {
			return fmt.Sprintf(" (did you mean %q?)", c.name)
		}
	}
	return ""
}

// loadConfig loads e.configPath and prints its problems; ok is false when
// the command must stop with exitUsage.
func (e *env) loadConfig() (*Config, bool) {
	cfg, err := LoadConfig(e.configPath)
	if err != nil {
		printError(e.stderr, err)
		return nil, false
	}
	return cfg, true
}

// printError prints err with "tandem: " before each of its lines (a config
// error lists one problem per line).
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "tandem: %s\n", line)
	}
}
