package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"golang.org/x/crypto/ssh"
)

// Target is one host to deploy to.
type Target struct {
	Host Host
	// Name is the node name; "" derives it from the host name.
	Name string
}

// Options of a deploy.
type Options struct {
	// Targets are the two hosts of the pair.
	Targets []Target
	// Binary is the local tandem executable to install.
	Binary string
	// Arch is Binary's GOARCH, checked against the host's `uname -m`
	// before anything is written; "" skips the check.
	Arch string
	// ConfigDir, if set, holds NAME.toml for each node, installed as its
	// config instead of one written from the template.
	ConfigDir string
	// Root, if set, installs each node under Root/NAME (binary, config,
	// keys, unit, state and synced trees) and runs no systemctl unless
	// Systemctl is set: for tests and trials on a machine that is not the
	// node.
	Root string
	// Systemctl is the systemctl command run on the hosts. Default:
	// "systemctl", or none under Root.
	Systemctl string
	// DryRun connects and compares, and prints what would change, but
	// changes nothing.
	DryRun bool
	// ListenPort is tandem's own SSH port in template configs. Default 2222.
	ListenPort int
	// Sync are the synced trees in template configs. Default /var/www.
	Sync []string
	// Dial says how to log in to the hosts.
	Dial DialOptions
	// Out gets the progress, one line per step and host.
	Out io.Writer
}

// DefaultListenPort is tandem's SSH port in configs that deploy writes.
const DefaultListenPort = 2222

// ErrRolledBack marks a deploy whose new binary did not run on a host and
// was replaced by the previous one again.
var ErrRolledBack = errors.New("rolled back")

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// NodeName derives a node name from a host name: its first label for a DNS
// name ("vps1.example.com" -> "vps1"), the address with dashes for an IP
// ("203.0.113.7" -> "203-0-113-7").
func NodeName(host string) (string, error) {
	name := strings.ToLower(host)
	if ip := net.ParseIP(host); ip != nil {
		name = strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
		name = strings.Trim(name, "-")
	} else {
		name, _, _ = strings.Cut(name, ".")
	}
	if !validName.MatchString(name) {
		return "", fmt.Errorf("cannot make a node name from host %q; give one with --name", host)
	}
	return name, nil
}

// Deploy installs tandem on both targets, pairs them and starts them. It
// prints its progress to o.Out. Running it again changes only what differs.
// An error names the host and the step; a new binary that does not run is
// rolled back (the error wraps ErrRolledBack).
func Deploy(ctx context.Context, o Options) error {
	if len(o.Targets) != 2 {
		return fmt.Errorf("deploy needs exactly two hosts (--host twice), got %d", len(o.Targets))
	}
	if o.ListenPort == 0 {
		o.ListenPort = DefaultListenPort
	}
	if len(o.Sync) == 0 {
		o.Sync = []string{"/var/www"}
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Systemctl == "" && o.Root == "" {
		o.Systemctl = "systemctl"
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return fmt.Errorf("binary to install: %w", err)
	}
	sum := sha256.Sum256(bin)
	binSum := hex.EncodeToString(sum[:])

	var nodes [2]*node
	for i, t := range o.Targets {
		name := t.Name
		if name == "" {
			if name, err = NodeName(t.Host.Host); err != nil {
				return err
			}
		}
		if o.Root == "" && t.Host.User != "root" {
			return fmt.Errorf("log in as root (root@%s): deploy writes to /usr/local/bin, /etc and the systemd units, and does not use sudo", t.Host.Host)
		}
		if !validName.MatchString(name) {
			return fmt.Errorf("node name %q is not valid; use 1 to 63 lower-case letters, digits and dashes", name)
		}
		nodes[i] = &node{o: &o, t: t, name: name, bin: bin, binSum: binSum}
		if o.Root != "" {
			nodes[i].root = path.Join(o.Root, name)
		}
	}
	if nodes[0].name == nodes[1].name {
		return fmt.Errorf("both hosts would be node %q; name them with --name twice (e.g. --name alpha --name beta)", nodes[0].name)
	}
	nodes[0].peer, nodes[1].peer = nodes[1], nodes[0]
	defer func() {
		for _, n := range nodes {
			if n.r != nil {
				n.r.Close()
			}
		}
	}()

	// Phase 1, each host alone: connect, config, binary, key.
	var errs []error
	for _, n := range nodes {
		if err := n.prepare(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Phase 2: each trusts the other.
	for _, n := range nodes {
		if err := n.pair(); err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
	}
	// Phase 3: the unit, and (re)start.
	for _, n := range nodes {
		if err := n.install(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Phase 4: with both running, each checks the link.
	if o.Systemctl != "" && !o.DryRun {
		for _, n := range nodes {
			n.check(ctx)
		}
	}
	for _, n := range nodes {
		switch {
		case len(n.changes) == 0:
			fmt.Fprintf(o.Out, "%s: unchanged\n", n.name)
		case o.DryRun:
			fmt.Fprintf(o.Out, "%s: would change %s (dry run: nothing changed)\n", n.name, strings.Join(n.changes, ", "))
		default:
			fmt.Fprintf(o.Out, "%s: changed %s\n", n.name, strings.Join(n.changes, ", "))
		}
	}
	return nil
}

// node is one host during a deploy.
type node struct {
	o      *Options
	t      Target
	name   string
	peer   *node
	root   string // "" or Options.Root/name
	bin    []byte
	binSum string

	r       *Remote
	cfg     nodeConfig
	pub     ssh.PublicKey
	pubLine string
	// changes names what this run changed (or would change, dry).
	changes []string
	// replaced: the binary was replaced by this run; hadOld: there was
	// one before, now at BinaryPath+".old".
	replaced, hadOld bool
}

// p maps a path on a node to the path to write under Root.
func (n *node) p(abs string) string {
	if n.root == "" {
		return abs
	}
	return path.Join(n.root, abs)
}

func (n *node) binPath() string { return n.p(BinaryPath) }
func (n *node) cfgPath() string { return n.p(ConfigPath) }

// step runs one step and prints "name: what ... result".
func (n *node) step(what string, f func() (string, error)) error {
	fmt.Fprintf(n.o.Out, "%s: %s ... ", n.name, what)
	res, err := f()
	if err != nil {
		fmt.Fprintf(n.o.Out, "FAILED\n")
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(n.o.Out, "%s\n", res)
	return nil
}

// changed records a change and returns how to say it.
func (n *node) changed(what, done, dry string) string {
	n.changes = append(n.changes, what)
	if n.o.DryRun {
		return "would " + dry
	}
	return done
}

func (n *node) prepare(ctx context.Context) error {
	if err := n.step("connect to "+n.t.Host.String(), func() (string, error) {
		r, err := Dial(ctx, n.t.Host, n.o.Dial)
		if err != nil {
			return "", err
		}
		n.r = r
		return "ok (" + r.Version + ")", nil
	}); err != nil {
		return err
	}
	if n.o.Arch != "" {
		if err := n.step("check architecture", func() (string, error) {
			out, err := n.r.Run(ctx, "uname -m")
			if err != nil {
				return "", err
			}
			m := strings.TrimSpace(string(out))
			if got := goarch(m); got != n.o.Arch {
				return "", fmt.Errorf("the host is %s (GOARCH=%s) but this tandem is GOARCH=%s; build one for it (GOOS=linux GOARCH=%s go build ./cmd/tandem) and pass it with --binary", m, got, n.o.Arch, got)
			}
			return m, nil
		}); err != nil {
			return err
		}
	}
	if err := n.step("config "+n.cfgPath(), func() (string, error) { return n.writeConfig() }); err != nil {
		return err
	}
	if err := n.step("binary "+n.binPath(), func() (string, error) { return n.installBinary(ctx) }); err != nil {
		return err
	}
	return n.step("node key", func() (string, error) { return n.initKey(ctx) })
}

// goarch maps `uname -m` to GOARCH.
func goarch(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "i386", "i686":
		return "386"
	case "armv6l", "armv7l":
		return "arm"
	case "riscv64", "ppc64le", "s390x":
		return machine
	}
	return "unknown (" + machine + ")"
}

// templateConfig is the config deploy writes for a node with no config.
func (n *node) templateConfig() []byte {
	peerAddr := net.JoinHostPort(n.peer.t.Host.Host, strconv.Itoa(n.o.ListenPort))
	var b bytes.Buffer
	fmt.Fprintf(&b, `# tandem config of node %[1]s, written by `+"`tandem deploy`"+`. Every key is
# explained in tandem.example.toml. deploy does not overwrite this file once
# it is changed here; run `+"`tandem check -c %[2]s`"+` after an edit.
node = %[1]q
state_dir = %[3]q

[ssh]
listen = %[4]q
authorized_keys = %[5]q
known_hosts = %[6]q

[[peer]]
name = %[7]q
address = %[8]q
`, n.name, ConfigPath, n.p(DefaultStateDir), fmt.Sprintf("0.0.0.0:%d", n.o.ListenPort),
		n.p("/etc/tandem/authorized_keys"), n.p("/etc/tandem/known_hosts"), n.peer.name, peerAddr)
	names := map[string]int{}
	for _, s := range n.o.Sync {
		names[path.Base(s)]++
	}
	for _, s := range n.o.Sync {
		fmt.Fprintf(&b, "\n[[sync]]\n")
		// Under --root the two nodes keep a tree at different paths, so
		// the tree's name on the link must not be its path.
		if names[path.Base(s)] == 1 {
			fmt.Fprintf(&b, "name = %q\n", path.Base(s))
		}
		fmt.Fprintf(&b, "path = %q\n", n.p(s))
	}
	return b.Bytes()
}

func (n *node) writeConfig() (string, error) {
	want, fromDir := n.templateConfig(), false
	if n.o.ConfigDir != "" {
		file := path.Join(n.o.ConfigDir, n.name+".toml")
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--config-dir: %w; write one NAME.toml per node (tandem.example.toml shows every key) or leave out --config-dir", err)
		}
		want, fromDir = b, true
	}
	have, err := n.r.ReadFile(n.cfgPath())
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	use, result := want, ""
	switch {
	case exists && bytes.Equal(have, want):
		use, result = have, "unchanged"
	case exists && !fromDir:
		// The operator's edits win over the template.
		use, result = have, "kept (it differs from what deploy would write: edited on the host; pass --config-dir to replace it)"
	}
	if err := parseNodeConfig(use, n.cfgPath(), &n.cfg); err != nil {
		if !exists || fromDir {
			return "", err
		}
		return "", fmt.Errorf("the config on the host: %w; fix it there or pass --config-dir", err)
	}
	if n.cfg.Node != n.name {
		return "", fmt.Errorf("the config names node %q, but this host is node %q (--name or the host name); make them agree", n.cfg.Node, n.name)
	}
	if err := n.checkPeer(); err != nil {
		return "", err
	}
	if result != "" {
		return result, nil
	}
	what := "written"
	if exists {
		what = "replaced (previous kept as " + path.Base(n.cfgPath()) + ".old)"
	}
	result = n.changed("config", what, "write it")
	if n.o.DryRun {
		return result, nil
	}
	if err := n.r.MkdirAll(path.Dir(n.cfgPath()), 0o755); err != nil {
		return "", err
	}
	if exists {
		if err := n.r.WriteFile(n.cfgPath()+".old", bytes.NewReader(have), 0o600); err != nil {
			return "", err
		}
	}
	if !fromDir {
		// The template's trees: `tandem init` wants them to exist.
		for _, s := range n.o.Sync {
			if err := n.r.MkdirAll(n.p(s), 0o755); err != nil {
				return "", err
			}
		}
	}
	return result, n.r.WriteFile(n.cfgPath(), bytes.NewReader(use), 0o600)
}

func (n *node) installBinary(ctx context.Context) (string, error) {
	have, err := n.r.Sha256(ctx, n.binPath())
	if err != nil {
		return "", err
	}
	if have == n.binSum {
		return "unchanged", nil
	}
	n.hadOld = have != ""
	if n.o.DryRun {
		if n.hadOld {
			return n.changed("binary", "", "upgrade it (previous kept as tandem.old)"), nil
		}
		return n.changed("binary", "", "upload it"), nil
	}
	bin, old := n.binPath(), n.binPath()+".old"
	if err := n.r.MkdirAll(path.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp, err := n.r.upload(bin, bytes.NewReader(n.bin), 0o755)
	if err != nil {
		return "", err
	}
	if n.hadOld {
		// Keep the running binary as .old: a hard link, so that bin is
		// never missing.
		if err := n.r.sftp.Remove(old); err != nil && !errors.Is(notExist(err), fs.ErrNotExist) {
			n.r.sftp.Remove(tmp)
			return "", fmt.Errorf("remove %s: %w", old, err)
		}
		if err := n.r.sftp.Link(bin, old); err != nil {
			n.r.sftp.Remove(tmp)
			return "", fmt.Errorf("keep the previous binary as %s: %w", old, err)
		}
	}
	if err := n.r.rename(tmp, bin); err != nil {
		n.r.sftp.Remove(tmp)
		return "", err
	}
	n.replaced = true
	// The new binary must run on the host before anything relies on it.
	out, err := n.r.Run(ctx, ShellQuote(bin)+" version")
	if err == nil && !strings.HasPrefix(string(out), "tandem ") {
		err = fmt.Errorf("`%s version` printed %q, not tandem's version line", bin, abbrev(string(out)))
	}
	if err != nil {
		return "", n.rollback(fmt.Errorf("the new binary does not run: %w", err))
	}
	if n.hadOld {
		return n.changed("binary", "upgraded to "+strings.TrimSpace(string(out))+" (previous kept as "+path.Base(old)+")", ""), nil
	}
	return n.changed("binary", "installed "+strings.TrimSpace(string(out)), ""), nil
}

// rollback puts the previous binary back after cause.
func (n *node) rollback(cause error) error {
	bin, old := n.binPath(), n.binPath()+".old"
	if !n.hadOld {
		if err := n.r.sftp.Remove(bin); err != nil {
			return fmt.Errorf("%w; removing it failed too: %v", cause, err)
		}
		return fmt.Errorf("%w; %w: removed it (there was no previous binary)", cause, ErrRolledBack)
	}
	if err := n.r.rename(old, bin); err != nil {
		return fmt.Errorf("%w; ROLLBACK FAILED: %v; put %s back by hand", cause, err, old)
	}
	n.replaced = false
	return fmt.Errorf("%w; %w to the previous binary", cause, ErrRolledBack)
}

// initKey runs `tandem init` on the host: the node key is made there and
// only its public half comes back.
func (n *node) initKey(ctx context.Context) (string, error) {
	keyPath := path.Join(n.cfg.StateDir, KeyFile)
	existed, err := n.r.Exists(keyPath)
	if err != nil {
		return "", err
	}
	if n.o.DryRun {
		if existed {
			return "exists", nil
		}
		return n.changed("node key", "", "create it with `tandem init`"), nil
	}
	out, err := n.r.Run(ctx, ShellQuote(n.binPath())+" init -c "+ShellQuote(n.cfgPath()))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	pub, _, err := ParseAuthorizedLine(line)
	if err != nil {
		return "", fmt.Errorf("tandem init printed an unexpected line: %w", err)
	}
	n.pub, n.pubLine = pub, line
	fp := pub.Type() + " " + ssh.FingerprintSHA256(pub)
	if !existed {
		return n.changed("node key", "created "+fp+" (the private key stays on the host)", ""), nil
	}
	return "unchanged " + fp, nil
}

// checkPeer checks that the config's [[peer]] is the other host.
func (n *node) checkPeer() error {
	if len(n.cfg.Peer) != 1 {
		return fmt.Errorf("the config has %d [[peer]] tables; it needs exactly one, naming %s", len(n.cfg.Peer), n.peer.name)
	}
	if got := n.cfg.Peer[0].Name; got != n.peer.name {
		return fmt.Errorf("the config names its peer %q, but the other host is node %q; fix [[peer]] name", got, n.peer.name)
	}
	return nil
}

func (n *node) pair() error {
	p := n.peer
	if n.o.DryRun {
		return n.step("pair with "+p.name, func() (string, error) {
			return "would put " + p.name + "'s key in " + n.cfg.SSH.AuthorizedKeys + " and " + n.cfg.SSH.KnownHosts + " if missing", nil
		})
	}
	if err := n.step("authorized_keys "+n.cfg.SSH.AuthorizedKeys, func() (string, error) {
		return n.merge(n.cfg.SSH.AuthorizedKeys, "authorized_keys", func(have []byte) ([]byte, bool, error) {
			return MergeAuthorized(have, p.pubLine)
		})
	}); err != nil {
		return err
	}
	return n.step("known_hosts "+n.cfg.SSH.KnownHosts, func() (string, error) {
		return n.merge(n.cfg.SSH.KnownHosts, "known_hosts", func(have []byte) ([]byte, bool, error) {
			out, changed := MergeKnownHosts(have, n.cfg.Peer[0].Address, p.pub)
			return out, changed, nil
		})
	})
}

// merge rewrites a remote file through f when f changes it.
func (n *node) merge(file, what string, f func([]byte) ([]byte, bool, error)) (string, error) {
	have, err := n.r.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	out, changed, err := f(have)
	if err != nil {
		return "", err
	}
	if !changed {
		return "unchanged", nil
	}
	if err := n.r.MkdirAll(path.Dir(file), 0o755); err != nil {
		return "", err
	}
	if err := n.r.WriteFile(file, bytes.NewReader(out), 0o644); err != nil {
		return "", err
	}
	return n.changed(what, "paired with "+n.peer.name, ""), nil
}

func (n *node) install(ctx context.Context) error {
	rw := []string{n.cfg.StateDir}
	for _, s := range n.cfg.Sync {
		rw = append(rw, s.Path)
	}
	if n.cfg.Snapshot.Dir != "" {
		rw = append(rw, n.cfg.Snapshot.Dir)
	}
	unit, err := RenderUnit(UnitOptions{Binary: n.binPath(), Config: n.cfgPath(), ReadWritePaths: rw})
	if err != nil {
		return err
	}
	unitChanged := false
	if err := n.step("systemd unit "+n.p(UnitPath), func() (string, error) {
		have, err := n.r.ReadFile(n.p(UnitPath))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if bytes.Equal(have, []byte(unit)) {
			return "unchanged", nil
		}
		unitChanged = true
		res := n.changed("unit", "written", "write it")
		if n.o.DryRun {
			return res, nil
		}
		if err := n.r.MkdirAll(path.Dir(n.p(UnitPath)), 0o755); err != nil {
			return "", err
		}
		return res, n.r.WriteFile(n.p(UnitPath), strings.NewReader(unit), 0o644)
	}); err != nil {
		return err
	}
	sc := n.o.Systemctl
	if sc == "" {
		return nil // no systemd under --root
	}
	var cmds []string
	if unitChanged {
		cmds = append(cmds, sc+" daemon-reload")
	}
	cmds = append(cmds, sc+" enable --quiet tandem")
	if len(n.changes) > 0 {
		cmds = append(cmds, sc+" restart tandem")
	} else {
		cmds = append(cmds, sc+" start tandem") // a no-op when running
	}
	// One session for all: each costs a round trip or two.
	cmds = append(cmds, sc+" is-active --quiet tandem")
	script := strings.Join(cmds, " && ")
	return n.step(script, func() (string, error) {
		if n.o.DryRun {
			return "would run", nil
		}
		if _, err := n.r.Run(ctx, script); err != nil {
			if n.replaced {
				// The service does not come up with the new binary.
				return "", n.restartOld(ctx, err)
			}
			return "", fmt.Errorf("%w (see journalctl -u tandem on the host)", err)
		}
		return "active", nil
	})
}

// restartOld rolls back the binary and restarts the service with it.
func (n *node) restartOld(ctx context.Context, cause error) error {
	err := n.rollback(fmt.Errorf("the service does not start with the new binary: %w (see journalctl -u tandem)", cause))
	if _, rerr := n.r.Run(ctx, n.o.Systemctl+" restart tandem"); rerr != nil {
		return fmt.Errorf("%w; and the previous binary does not start either: %v", err, rerr)
	}
	return err
}

// check runs `tandem check` on the host and prints its verdict. A failed
// check is the operator's to read, not a reason to roll back: it may be a
// firewall between the hosts.
func (n *node) check(ctx context.Context) {
	n.step("tandem check", func() (string, error) {
		out, err := n.r.Run(ctx, ShellQuote(n.binPath())+" check -c "+ShellQuote(n.cfgPath()))
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		last := lines[len(lines)-1]
		if err != nil {
			var fails []string
			for _, l := range lines {
				if strings.HasPrefix(l, "FAIL") {
					fails = append(fails, strings.TrimSpace(strings.TrimPrefix(l, "FAIL")))
				}
			}
			return "WARNING: " + last + ": " + strings.Join(fails, "; ") + " (run tandem check -c " + n.cfgPath() + " on the host)", nil
		}
		return last, nil
	})
}

// nodeConfig is the part of a node's config deploy needs. The node's own
// tandem (`tandem init -c`) checks the whole file.
type nodeConfig struct {
	Node     string `toml:"node"`
	StateDir string `toml:"state_dir"`
	SSH      struct {
		Listen         string `toml:"listen"`
		AuthorizedKeys string `toml:"authorized_keys"`
		KnownHosts     string `toml:"known_hosts"`
	} `toml:"ssh"`
	Peer []struct {
		Name    string `toml:"name"`
		Address string `toml:"address"`
	} `toml:"peer"`
	Sync []struct {
		Path string `toml:"path"`
	} `toml:"sync"`
	Snapshot struct {
		Dir string `toml:"dir"`
	} `toml:"snapshot"`
}

// parseNodeConfig reads what deploy needs from a config, with the daemon's
// defaults: file is where the config lives on the node.
func parseNodeConfig(data []byte, file string, c *nodeConfig) error {
	*c = nodeConfig{}
	if err := toml.Unmarshal(data, c); err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	rel := func(p, def string) string {
		if p == "" {
			p = def
		}
		if !path.IsAbs(p) {
			p = path.Join(path.Dir(file), p)
		}
		return p
	}
	c.SSH.AuthorizedKeys = rel(c.SSH.AuthorizedKeys, "authorized_keys")
	c.SSH.KnownHosts = rel(c.SSH.KnownHosts, "known_hosts")
	if len(c.Peer) == 1 && c.Peer[0].Address == "" {
		return fmt.Errorf("config %s: [[peer]] has no address", file)
	}
	return nil
}
