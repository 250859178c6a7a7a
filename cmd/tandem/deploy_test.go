package main

// Deploy tests: they start Debian's OpenSSH server (/usr/sbin/sshd) on a
// loopback port as the current user, and run the built tandem binary's
// `deploy --root` through it; the unit it writes goes through the real
// systemd-analyze.

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/internal/sshdtest"
)

// requireIntegration skips, or fails under TANDEM_REQUIRE_INTEGRATION, when
// a tool the test needs is missing.
func requireIntegration(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
		t.Fatalf("%s, and TANDEM_REQUIRE_INTEGRATION is set", what)
	}
	t.Skip(what)
}

// testSSHD is an OpenSSH server for one test, and the known_hosts file
// deploy is given (a test may swap it).
type testSSHD struct {
	*sshdtest.Server
	knownHosts string
}

func startSSHD(t *testing.T) *testSSHD {
	s := sshdtest.Start(t)
	return &testSSHD{Server: s, knownHosts: s.KnownHosts}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// deployCmd runs `tandem deploy` to root through s, as alpha and beta.
func (s *testSSHD) deploy(t *testing.T, root string, extra ...string) (stdout, stderr string, code int) {
	t.Helper()
	host := fmt.Sprintf("%s@127.0.0.1", s.User)
	args := append([]string{"deploy", "--host", host, "--host", host, "--port", strconv.Itoa(s.Port),
		"--name", "alpha", "--name", "beta", "--root", root,
		"--identity", s.Identity, "--known-hosts", s.knownHosts}, extra...)
	cmd := exec.Command(tandemBinary(t), args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), exitCode(err)
}

// treeState maps every path under root to its mode and content.
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		state[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func diffStates(a, b map[string]string) []string {
	var diff []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			diff = append(diff, "removed "+k)
		} else if v != w {
			diff = append(diff, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, "added "+k)
		}
	}
	return diff
}

func readPub(t *testing.T, stateDir string) ssh.PublicKey {
	t.Helper()
	s, err := deploy.LoadKey(deploy.KeyPath(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

func TestDeployThroughSSHD(t *testing.T) {
	s := startSSHD(t)
	bin := tandemBinary(t)
	root := t.TempDir()
	node := func(name, p string) string { return filepath.Join(root, name, p) }

	// A dry run on a fresh root plans every step and writes nothing.
	stdout, stderr, code := s.deploy(t, root, "--dry-run")
	if code != 0 || !strings.Contains(stdout, "would upload it") || !strings.Contains(stdout, "dry run: nothing changed") {
		t.Fatalf("deploy --dry-run = exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("deploy --dry-run created %v under the root", entries)
	}

	start := time.Now()
	stdout, stderr, code = s.deploy(t, root)
	t.Logf("first deploy took %v:\n%s", time.Since(start), stdout)
	if code != 0 {
		t.Fatalf("deploy = exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"alpha: binary " + node("alpha", "usr/local/bin/tandem") + " ... installed tandem ",
		"beta: node key ... created ssh-ed25519 SHA256:", "alpha: authorized_keys", "alpha: changed config, binary, node key, authorized_keys, known_hosts, unit"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("deploy output lacks %q", want)
		}
	}

	// What was installed: a binary that runs, valid configs, keys that
	// stayed on their node and are paired.
	for _, name := range []string{"alpha", "beta"} {
		out, err := exec.Command(node(name, "usr/local/bin/tandem"), "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "tandem ") {
			t.Errorf("%s: installed tandem version = %q, %v", name, out, err)
		}
		cfg, err := LoadConfig(node(name, "etc/tandem/tandem.toml"))
		if err != nil {
			t.Fatalf("%s: installed config: %v", name, err)
		}
		peer := map[string]string{"alpha": "beta", "beta": "alpha"}[name]
		if cfg.Node != name || cfg.Peers[0].Name != peer || cfg.Peers[0].Address != "127.0.0.1:2222" ||
			cfg.StateDir != node(name, "var/lib/tandem") || len(cfg.Sync) != 1 || cfg.Sync[0].Path != node(name, "var/www") {
			t.Errorf("%s: installed config = node %q peer %+v state %s sync %+v", name, cfg.Node, cfg.Peers, cfg.StateDir, cfg.Sync)
		}
		if errs := cfg.CheckFiles(); len(errs) > 0 {
			t.Errorf("%s: key files: %v", name, errs)
		}
		if fi, err := os.Stat(deploy.KeyPath(cfg.StateDir)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: node key: %v, mode %v; want 0600", name, err, fi)
		}
	}
	alphaPub, betaPub := readPub(t, node("alpha", "var/lib/tandem")), readPub(t, node("beta", "var/lib/tandem"))
	for _, c := range []struct {
		file string
		want string
	}{
		{node("alpha", "etc/tandem/authorized_keys"), deploy.AuthorizedLine(betaPub, "tandem@beta") + "\n"},
		{node("beta", "etc/tandem/authorized_keys"), deploy.AuthorizedLine(alphaPub, "tandem@alpha") + "\n"},
		{node("alpha", "etc/tandem/known_hosts"), deploy.KnownHostsLine("127.0.0.1:2222", betaPub) + "\n"},
		{node("beta", "etc/tandem/known_hosts"), deploy.KnownHostsLine("127.0.0.1:2222", alphaPub) + "\n"},
	} {
		if b, _ := os.ReadFile(c.file); string(b) != c.want {
			t.Errorf("%s = %q, want %q", c.file, b, c.want)
		}
	}
	if bytes.Equal(alphaPub.Marshal(), betaPub.Marshal()) {
		t.Error("alpha and beta have the same node key")
	}

	// The unit deploy wrote runs the installed binary and passes
	// systemd-analyze.
	unit := node("alpha", "etc/systemd/system/tandem.service")
	b, _ := os.ReadFile(unit)
	if want := "ExecStart=" + node("alpha", "usr/local/bin/tandem") + " run -c " + node("alpha", "etc/tandem/tandem.toml") + "\n"; !strings.Contains(string(b), want) {
		t.Errorf("unit lacks %q:\n%s", want, b)
	}
	if !strings.Contains(string(b), "ReadWritePaths=-"+node("alpha", "var/lib/tandem")+" -"+node("alpha", "var/www")+"\n") {
		t.Errorf("unit's ReadWritePaths are not the state dir and the synced tree:\n%s", b)
	}
	verifyUnitFile(t, unit)

	// Again: nothing changes, and it says so.
	before := treeState(t, root)
	start = time.Now()
	stdout, stderr, code = s.deploy(t, root)
	t.Logf("second deploy took %v", time.Since(start))
	if code != 0 || !strings.Contains(stdout, "alpha: unchanged\n") || !strings.Contains(stdout, "beta: unchanged\n") {
		t.Fatalf("second deploy = exit %d, want both unchanged\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if d := diffStates(before, treeState(t, root)); len(d) > 0 {
		t.Errorf("second deploy changed files: %v", d)
	}

	// An upgrade: the previous binary is kept as tandem.old. A config
	// edited on the host meanwhile is kept as it is.
	edited := node("alpha", "etc/tandem/tandem.toml")
	cfgText, _ := os.ReadFile(edited)
	cfgText = append(cfgText, "# edited on the host\n"...)
	writeFile(t, edited, string(cfgText))
	upgraded := filepath.Join(t.TempDir(), "tandem")
	orig, _ := os.ReadFile(bin)
	os.WriteFile(upgraded, append(append([]byte(nil), orig...), "\ntandem upgrade marker\n"...), 0o755)
	stdout, stderr, code = s.deploy(t, root, "--binary", upgraded)
	if code != 0 || !strings.Contains(stdout, "upgraded to tandem ") || !strings.Contains(stdout, "alpha: changed binary\n") ||
		!strings.Contains(stdout, "tandem.toml ... kept (it differs from what deploy would write") {
		t.Fatalf("upgrade deploy = exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(edited); !bytes.Equal(b, cfgText) {
		t.Errorf("deploy changed a config edited on the host")
	}
	for _, name := range []string{"alpha", "beta"} {
		if got, _ := os.ReadFile(node(name, "usr/local/bin/tandem.old")); !bytes.Equal(got, orig) {
			t.Errorf("%s: tandem.old is not the previous binary", name)
		}
	}

	// A new binary that does not run is rolled back on both hosts, and
	// nothing else changes.
	broken := filepath.Join(t.TempDir(), "tandem")
	os.WriteFile(broken, []byte("#!/bin/sh\necho 'broken build' >&2\nexit 1\n"), 0o755)
	before = treeState(t, root)
	stdout, stderr, code = s.deploy(t, root, "--binary", broken)
	if code != exitFailure || !strings.Contains(stderr, "alpha: binary") || !strings.Contains(stderr, "broken build") ||
		!strings.Contains(stderr, "rolled back to the previous binary") || !strings.Contains(stderr, "beta: binary") {
		t.Fatalf("deploy of a broken binary = exit %d, want %d and both hosts rolled back\nstdout:\n%s\nstderr:\n%s", code, exitFailure, stdout, stderr)
	}
	t.Logf("broken binary deploy:\n%s%s", stdout, stderr)
	after := treeState(t, root)
	for _, d := range diffStates(before, after) {
		// The hard link tandem.old is gone: it is tandem again.
		if !strings.HasSuffix(d, "tandem.old") {
			t.Errorf("rolled back deploy left a change: %s", d)
		}
	}
	for _, name := range []string{"alpha", "beta"} {
		if got, _ := os.ReadFile(node(name, "usr/local/bin/tandem")); !bytes.HasSuffix(got, []byte("tandem upgrade marker\n")) {
			t.Errorf("%s: after the rollback the binary is not the upgraded one", name)
		}
	}
	// The rollback left a consistent install: the upgraded binary again is
	// a no-op.
	stdout, stderr, code = s.deploy(t, root, "--binary", upgraded)
	if code != 0 || !strings.Contains(stdout, "alpha: unchanged\n") || !strings.Contains(stdout, "beta: unchanged\n") {
		t.Errorf("deploy after the rollback = exit %d, want unchanged\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestDeployConfigDir installs the operator's own configs, then starts the
// two deployed nodes (each on its own loopback port) as real daemons: the
// pairing deploy did must let them connect.
func TestDeployConfigDir(t *testing.T) {
	s := startSSHD(t)
	root, configs := t.TempDir(), t.TempDir()
	nodes := map[string]*pairNode{}
	for _, name := range []string{"alpha", "beta"} {
		listen, err := freeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		// pairNode's layout: the config and the state dir in one dir.
		nodes[name] = &pairNode{Name: name, Dir: filepath.Join(root, name, "etc", "tandem"), Listen: listen, Dial: listen}
	}
	for _, n := range []struct{ name, peer string }{{"alpha", "beta"}, {"beta", "alpha"}} {
		me, peer := nodes[n.name], nodes[n.peer]
		www := filepath.Join(root, n.name, "srv", "site")
		os.MkdirAll(www, 0o755)
		writeFile(t, filepath.Join(configs, n.name+".toml"), fmt.Sprintf(`# %s, by the operator
node = %q
state_dir = %q
[ssh]
listen = %q
heartbeat = "200ms"
timeout = "1s"
authorized_keys = "authorized_keys"
known_hosts = "known_hosts"
[[peer]]
name = %q
address = %q
[[sync]]
name = "site"
path = %q
`, n.name, n.name, me.StateDir(), me.Listen, n.peer, peer.Dial, www))
	}
	stdout, stderr, code := s.deploy(t, root, "--config-dir", configs)
	if code != 0 {
		t.Fatalf("deploy --config-dir = exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, name := range []string{"alpha", "beta"} {
		want, _ := os.ReadFile(filepath.Join(configs, name+".toml"))
		if got, _ := os.ReadFile(nodes[name].ConfigPath()); !bytes.Equal(got, want) {
			t.Errorf("%s: installed config differs from --config-dir's", name)
		}
	}
	// known_hosts holds the peer at the address the config dials.
	betaPub := readPub(t, nodes["beta"].StateDir())
	if b, _ := os.ReadFile(filepath.Join(nodes["alpha"].Dir, "known_hosts")); string(b) != deploy.KnownHostsLine(nodes["beta"].Dial, betaPub)+"\n" {
		t.Errorf("alpha's known_hosts = %q", b)
	}
	// A config that names the wrong peer stops the deploy before pairing.
	cfg, _ := os.ReadFile(filepath.Join(configs, "alpha.toml"))
	writeFile(t, filepath.Join(configs, "alpha.toml"), strings.Replace(string(cfg), `name = "beta"`, `name = "gamma"`, 1))
	before := treeState(t, root)
	_, stderr, code = s.deploy(t, root, "--config-dir", configs)
	if code != exitFailure || !strings.Contains(stderr, `alpha: config `) || !strings.Contains(stderr, `the config names its peer "gamma", but the other host is node "beta"`) {
		t.Errorf("deploy with a config naming the wrong peer = exit %d, stderr:\n%s", code, stderr)
	}
	if d := diffStates(before, treeState(t, root)); len(d) > 0 {
		t.Errorf("refused deploy changed files: %v", d)
	}

	// The deployed pair works: both daemons connect to each other.
	for _, n := range nodes {
		startDaemon(t, n)
	}
	for _, n := range nodes {
		waitPeer(t, n, "connected", func(p PeerStatus) bool { return p.Connected && p.Inbound })
	}
}

func TestDeployRefusesUnknownHost(t *testing.T) {
	s := startSSHD(t)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, empty, "")
	s.knownHosts = empty
	_, stderr, code := s.deploy(t, t.TempDir())
	want := fmt.Sprintf("ssh-keyscan -p %d -t ed25519 127.0.0.1 >> %s", s.Port, empty)
	if code != exitFailure || !strings.Contains(stderr, "unknown host") || !strings.Contains(stderr, want) {
		t.Errorf("deploy to a host missing from known_hosts = exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, want)
	}
	// A host whose key changed is refused as a mismatch.
	other, _, _ := deploy.EnsureKey(filepath.Join(t.TempDir(), "k"), "")
	writeFile(t, empty, deploy.KnownHostsLine(s.Addr(), other.PublicKey())+"\n")
	_, stderr, code = s.deploy(t, t.TempDir())
	if code != exitFailure || !strings.Contains(stderr, "HOST KEY MISMATCH") || !strings.Contains(stderr, "ssh-keygen -R") {
		t.Errorf("deploy to a host with a changed key = exit %d, stderr:\n%s\nwant a mismatch error", code, stderr)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// verifyUnitFile runs systemd-analyze verify (no output allowed) and
// security (score <= 3.0) on a unit file.
func verifyUnitFile(t *testing.T, unit string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		requireIntegration(t, "systemd-analyze not installed; the unit is not verified")
	}
	cmd := exec.Command(analyze, "verify", unit)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, stderr.String())
	}
	out, _ := exec.Command(analyze, "security", "--offline=true", unit).CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no score:\n%s", out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 3.0 {
		t.Errorf("systemd-analyze security = %.1f, want <= 3.0", score)
	} else {
		t.Logf("systemd-analyze security: %.1f", score)
	}
}

func TestDeployUnitFromConfig(t *testing.T) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	os.Mkdir(www, 0o755)
	cfgPath := filepath.Join(dir, "tandem.toml")
	writeFile(t, cfgPath, fmt.Sprintf("node = \"alpha\"\nstate_dir = %q\n[ssh]\nlisten = \"0.0.0.0:2222\"\n[[peer]]\nname = \"beta\"\naddress = \"192.0.2.1:2222\"\n[[sync]]\npath = %q\n[snapshot]\ndir = %q\n",
		filepath.Join(dir, "state"), www, filepath.Join(dir, "snap")))
	var stdout, stderr bytes.Buffer
	if code := runCLI(t.Context(), []string{"deploy", "unit", "-c", cfgPath, "--binary", tandemBinary(t)}, &stdout, &stderr); code != exitOK {
		t.Fatalf("deploy unit -c = exit %d: %s", code, stderr.String())
	}
	want := fmt.Sprintf("\nReadWritePaths=-%s -%s -%s\n", filepath.Join(dir, "state"), www, filepath.Join(dir, "snap"))
	if !strings.Contains(stdout.String(), want) {
		t.Errorf("deploy unit -c lacks %q:\n%s", want, stdout.String())
	}
	unit := filepath.Join(dir, "tandem.service")
	writeFile(t, unit, stdout.String())
	verifyUnitFile(t, unit)

	stdout.Reset()
	if code := runCLI(t.Context(), []string{"deploy", "unit"}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "ExecStart=/usr/local/bin/tandem run -c /etc/tandem/tandem.toml\n") {
		t.Errorf("deploy unit = exit %d, want the default unit:\n%s", code, stdout.String())
	}
}

func TestDeployUsage(t *testing.T) {
	for _, args := range [][]string{
		{"deploy"},
		{"deploy", "--host", "root@a"},
		{"deploy", "--host", "a", "--host", "root@b"},
		{"deploy", "--host", "root@a", "--host", "root@b", "--name", "x"},
		{"deploy", "--host", "root@a", "--host", "root@b", "--sync", "relative"},
		{"deploy", "--host", "root@a:99999", "--host", "root@b"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runCLI(t.Context(), args, &stdout, &stderr); code != exitUsage || stderr.Len() == 0 {
			t.Errorf("tandem %v = exit %d, stderr %q; want exit %d with a message", args, code, stderr.String(), exitUsage)
		}
	}
}

func TestDeployRefusesNonRootWithoutRoot(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runCLI(t.Context(), []string{"deploy", "--host", "admin@192.0.2.1", "--host", "admin@192.0.2.2", "--binary", "/bin/true"}, &stdout, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "log in as root (root@192.0.2.1)") || stdout.Len() != 0 {
		t.Errorf("deploy as admin = exit %d, stdout %q, stderr %q; want a refusal before connecting", code, stdout.String(), stderr.String())
	}
}

// TestDeploySystemctlSteps checks the commands deploy runs on a systemd
// host, with a stand-in for systemctl (this machine has no systemd) that
// logs its arguments and answers is-active from a file: the unit is
// reloaded only when it changed, the service restarted only when something
// changed, and a new binary the service does not come up with is rolled
// back and the old one restarted.
func TestDeploySystemctlSteps(t *testing.T) {
	s := startSSHD(t)
	root, dir := t.TempDir(), t.TempDir()
	log, down := filepath.Join(dir, "systemctl.log"), filepath.Join(dir, "service-down")
	fake := filepath.Join(dir, "systemctl")
	writeFile(t, fake, fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]s
if [ "$1" = is-active ] && [ -e %[2]s ]; then exit 3; fi
exit 0
`, log, down))
	os.Chmod(fake, 0o755)
	calls := func() []string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	perHost := func(cmds ...string) []string { return append(append([]string(nil), cmds...), cmds...) }
	// The nodes' own port: nobody listens there, so the closing `tandem
	// check` fails at once (the peer is not running) and says so.
	free, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(free)
	run := func(extra ...string) (string, string, int) {
		start := time.Now()
		defer func() { t.Logf("deploy %v took %v", extra, time.Since(start)) }()
		return s.deploy(t, root, append([]string{"--systemctl", fake, "--listen-port", port}, extra...)...)
	}

	stdout, stderr, code := run()
	if code != 0 || strings.Count(stdout, "... active\n") != 2 || !strings.Contains(stdout, "alpha: tandem check ... WARNING:") {
		t.Fatalf("deploy = exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if got, want := calls(), perHost("daemon-reload", "enable --quiet tandem", "restart tandem", "is-active --quiet tandem"); !slices.Equal(got, want) {
		t.Errorf("first deploy ran systemctl %q, want %q", got, want)
	}

	stdout, stderr, code = run()
	if code != 0 || !strings.Contains(stdout, "alpha: unchanged\n") {
		t.Fatalf("second deploy = exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if got, want := calls(), perHost("enable --quiet tandem", "start tandem", "is-active --quiet tandem"); !slices.Equal(got, want) {
		t.Errorf("unchanged deploy ran systemctl %q, want %q", got, want)
	}

	// A new binary runs `tandem version` fine, but the service does not
	// come up with it.
	orig, _ := os.ReadFile(tandemBinary(t))
	upgraded := filepath.Join(dir, "tandem")
	os.WriteFile(upgraded, append(append([]byte(nil), orig...), "\nupgrade\n"...), 0o755)
	writeFile(t, down, "")
	stdout, stderr, code = run("--binary", upgraded)
	if code != exitFailure || !strings.Contains(stderr, "the service does not start with the new binary") || !strings.Contains(stderr, "rolled back to the previous binary") {
		t.Fatalf("deploy with a service that does not come up = exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if got, want := calls(), perHost("enable --quiet tandem", "restart tandem", "is-active --quiet tandem", "restart tandem"); !slices.Equal(got, want) {
		t.Errorf("failed upgrade ran systemctl %q, want %q", got, want)
	}
	for _, name := range []string{"alpha", "beta"} {
		if got, _ := os.ReadFile(filepath.Join(root, name, "usr/local/bin/tandem")); !bytes.Equal(got, orig) {
			t.Errorf("%s: the binary is not the previous one after the rollback", name)
		}
	}
}
