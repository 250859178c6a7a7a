package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/tandemhost/tandem/deploy"
)

// stringList is a flag that may be given more than once.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

const deployHelp = `Installs tandem on two hosts over SSH and pairs them, as root@ each host:
  1. connects with your SSH key or ssh-agent, checking each host's key
     against your known_hosts (an unknown or changed key stops it, with the
     ssh-keyscan line to add);
  2. writes /etc/tandem/tandem.toml from a template (node name, listen
     address, the peer's address, the --sync trees), or NAME.toml from
     --config-dir; a config edited on the host is kept unless --config-dir
     gives a new one (the old one is kept as tandem.toml.old);
  3. uploads this tandem binary to /usr/local/bin/tandem (temp file and
     rename; the previous one stays as tandem.old) and runs it there: a
     binary that does not run is rolled back at once;
  4. runs "tandem init" on each host (the private keys never leave their
     host), and puts each node's public key in the other's authorized_keys
     and known_hosts;
  5. installs the systemd unit (as "tandem deploy unit" prints it, with
     ReadWritePaths from the config), then systemctl daemon-reload, enable
     and (re)start; if the service does not come up with a new binary, the
     previous one is put back; finally "tandem check" runs on both.
Running it again changes only what differs and says "unchanged" otherwise;
with a new tandem binary it upgrades both hosts.

--dry-run connects and prints what would change, changing nothing. --root
PREFIX installs node NAME under PREFIX/NAME (every path, the config's too)
and runs no systemctl: to try it on one machine.

"tandem deploy unit [-c FILE] [--binary PATH]" prints the systemd unit,
with ReadWritePaths for FILE's synced trees, snapshot dir and state dir.

Exits 0 when both hosts are deployed, 1 when a step failed (the message
names the host and the step; a rolled back binary says so), 2 on bad flags.`

func deployFlags(fs *flag.FlagSet, e *env) {
	fs.Var(&stringList{}, "host", "USER@HOST[:PORT] of a node; give it twice")
	fs.Var(&stringList{}, "name", "node name of the --host in the same position (default: the host's first label)")
	fs.Int("port", 22, "SSH port for --host values without one")
	fs.String("identity", "", "private key to log in with (default: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)")
	fs.String("known-hosts", "", "known_hosts file with the hosts' keys (default ~/.ssh/known_hosts)")
	fs.String("config-dir", "", "directory with NAME.toml per node, installed instead of the template")
	fs.Bool("dry-run", false, "print what would change and change nothing")
	fs.String("root", "", "install node NAME under PREFIX/NAME, without systemctl (for trials and tests)")
	fs.String("binary", "", "tandem executable to install (default: this one)")
	fs.String("systemctl", "", "systemctl command to run on the hosts (default systemctl; none under --root)")
	fs.Var(&stringList{}, "sync", "a tree to sync, in template configs; repeat for more (default /var/www)")
	fs.Int("listen-port", deploy.DefaultListenPort, "tandem's own SSH port, in template configs")
}

func cmdDeploy(e *env, args []string) int {
	if len(args) > 0 && args[0] == "unit" {
		return cmdDeployUnit(e, args[1:])
	}
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem deploy: unexpected argument %q (flags go before it; the only subcommand is unit)\n", args[0])
		return exitUsage
	}
	f := e.flags
	hosts := *f.Lookup("host").Value.(*stringList)
	names := *f.Lookup("name").Value.(*stringList)
	port := f.Lookup("port").Value.(flag.Getter).Get().(int)
	if len(hosts) != 2 {
		fmt.Fprintf(e.stderr, "tandem deploy: give --host twice, once per node (got %d), like --host root@vps1 --host root@vps2\n", len(hosts))
		return exitUsage
	}
	if len(names) != 0 && len(names) != 2 {
		fmt.Fprintf(e.stderr, "tandem deploy: give --name twice or not at all (got %d)\n", len(names))
		return exitUsage
	}
	o := deploy.Options{
		ConfigDir:  f.Lookup("config-dir").Value.String(),
		Root:       f.Lookup("root").Value.String(),
		DryRun:     f.Lookup("dry-run").Value.(flag.Getter).Get().(bool),
		Binary:     f.Lookup("binary").Value.String(),
		Systemctl:  f.Lookup("systemctl").Value.String(),
		Sync:       *f.Lookup("sync").Value.(*stringList),
		ListenPort: f.Lookup("listen-port").Value.(flag.Getter).Get().(int),
		Out:        e.stdout,
	}
	for i, h := range hosts {
		host, err := deploy.ParseHost(h, port)
		if err != nil {
			fmt.Fprintf(e.stderr, "tandem deploy: %v\n", err)
			return exitUsage
		}
		t := deploy.Target{Host: host}
		if len(names) == 2 {
			t.Name = names[i]
		}
		o.Targets = append(o.Targets, t)
	}
	if o.Root != "" {
		abs, err := filepath.Abs(o.Root)
		if err != nil {
			fmt.Fprintf(e.stderr, "tandem deploy: --root: %v\n", err)
			return exitUsage
		}
		o.Root = abs
	}
	for _, s := range o.Sync {
		if !filepath.IsAbs(s) {
			fmt.Fprintf(e.stderr, "tandem deploy: --sync %q is not an absolute path\n", s)
			return exitUsage
		}
	}
	if o.Binary == "" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(e.stderr, "tandem deploy: find this binary: %v; pass --binary\n", err)
			return exitFailure
		}
		o.Binary, o.Arch = self, runtime.GOARCH
	}
	home, _ := os.UserHomeDir()
	o.Dial.AgentSocket = os.Getenv("SSH_AUTH_SOCK")
	if id := f.Lookup("identity").Value.String(); id != "" {
		o.Dial.Identities, o.Dial.IdentitiesRequired = []string{id}, true
		o.Dial.AgentSocket = "" // the operator chose the key
	} else if home != "" {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			o.Dial.Identities = append(o.Dial.Identities, filepath.Join(home, ".ssh", n))
		}
	}
	if kh := f.Lookup("known-hosts").Value.String(); kh != "" {
		o.Dial.KnownHosts = []string{kh}
	} else if home != "" {
		o.Dial.KnownHosts = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	if err := deploy.Deploy(e.ctx, o); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(e.stderr, "tandem deploy: %s\n", line)
		}
		if errors.Is(err, deploy.ErrRolledBack) {
			fmt.Fprintf(e.stderr, "tandem deploy: a host whose binary was rolled back runs its previous one again; deploy stopped there\n")
		}
		return exitFailure
	}
	return exitOK
}

// cmdDeployUnit prints the systemd unit, adapted to a config file if given.
func cmdDeployUnit(e *env, args []string) int {
	fs := flag.NewFlagSet("tandem deploy unit", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var configPath, binary string
	fs.StringVar(&configPath, "c", "", "config file whose trees the unit may write to")
	fs.StringVar(&configPath, "config", "", "same as -c")
	fs.StringVar(&binary, "binary", deploy.BinaryPath, "the tandem executable ExecStart runs")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "tandem deploy unit: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	o := deploy.UnitOptions{Binary: binary}
	if configPath != "" {
		cfg, err := LoadConfig(configPath)
		if err != nil {
			printError(e.stderr, err)
			return exitUsage
		}
		if o.Config, err = filepath.Abs(configPath); err != nil {
			fmt.Fprintf(e.stderr, "tandem deploy unit: %v\n", err)
			return exitUsage
		}
		o.ReadWritePaths = unitWritePaths(cfg)
	}
	unit, err := deploy.RenderUnit(o)
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem deploy unit: %v\n", err)
		return exitUsage
	}
	fmt.Fprint(e.stdout, unit)
	return exitOK
}

// unitWritePaths are the places the daemon writes to under cfg: the state
// dir, the synced trees and the snapshot dir.
func unitWritePaths(cfg *Config) []string {
	rw := []string{cfg.StateDir}
	for _, s := range cfg.Sync {
		rw = append(rw, s.Path)
	}
	if cfg.Snapshot.Dir != "" {
		rw = append(rw, cfg.Snapshot.Dir)
	}
	return rw
}
