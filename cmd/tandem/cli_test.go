package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// cli runs one command line in-process.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runCLI(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tandem.toml")
	body = strings.ReplaceAll(body, "$DIR", dir)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const minimalConfig = `node = "alpha"
state_dir = "$DIR/state"
[ssh]
listen = "127.0.0.1:3"
[[peer]]
name = "beta"
address = "127.0.0.1:2"
`

func TestInitPrintsOneKeyLineAndIsIdempotent(t *testing.T) {
	cfg := writeConfig(t, minimalConfig)
	code, out1, errs := cli(t, "init", "-c", cfg)
	if code != exitOK {
		t.Fatalf("init = %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimRight(out1, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("init printed %d lines on stdout, want exactly 1: %q", len(lines), out1)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(lines[0]))
	if err != nil || pub.Type() != ssh.KeyAlgoED25519 || comment != "tandem@alpha" {
		t.Fatalf("init line %q: key %v comment %q err %v; want an ed25519 authorized_keys line", lines[0], pub, comment, err)
	}
	code, out2, _ := cli(t, "init", "-c", cfg)
	if code != exitOK || out2 != out1 {
		t.Errorf("second init = %d, %q; want the same line %q", code, out2, out1)
	}
	state := filepath.Join(filepath.Dir(cfg), "state")
	for path, want := range map[string]os.FileMode{state: 0o700, filepath.Join(state, "node_ed25519"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, err %v; want %04o", path, fi.Mode(), err, want)
		}
	}
}

func TestStatusWhenNotRunning(t *testing.T) {
	cfg := writeConfig(t, minimalConfig)
	code, _, errs := cli(t, "status", "-c", cfg)
	if code != exitNotRunning || !strings.Contains(errs, "not running") {
		t.Errorf("status without daemon = %d, %q; want %d and 'not running'", code, errs, exitNotRunning)
	}
}

func TestInvalidConfigExits2WithEveryProblem(t *testing.T) {
	cfg := writeConfig(t, "node = \"Alpha!\"\n[ssh]\nlistn = \"x\"\n")
	for _, cmd := range []string{"run", "init", "status", "check"} {
		code, out, errs := cli(t, cmd, "-c", cfg)
		if code != exitUsage {
			t.Errorf("%s with an invalid config = %d, want %d", cmd, code, exitUsage)
		}
		if out != "" {
			t.Errorf("%s printed %q on stdout for an invalid config", cmd, out)
		}
		for _, want := range []string{"tandem.toml:3: unknown key ssh.listn"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%s stderr lacks %q:\n%s", cmd, want, errs)
			}
		}
	}
}

func TestRunWithoutKeysSaysWhatToDo(t *testing.T) {
	cfg := writeConfig(t, minimalConfig)
	code, _, errs := cli(t, "run", "-c", cfg)
	if code != exitUsage || !strings.Contains(errs, "authorized_keys") {
		t.Errorf("run without key files = %d, %q; want %d naming authorized_keys", code, errs, exitUsage)
	}
}

func TestHelpTeachesEveryCommand(t *testing.T) {
	code, out, _ := cli(t, "help")
	if code != exitOK {
		t.Fatalf("help = %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("help does not list %s", c.name)
		}
		code, h, _ := cli(t, "help", c.name)
		if code != exitOK || !strings.Contains(h, "Usage: tandem "+c.name) || !strings.Contains(h, "Examples:\n  ") {
			t.Errorf("help %s = %d:\n%s\nwant usage and examples", c.name, code, h)
		}
		if c.usesConfig && !strings.Contains(h, "-c ") {
			t.Errorf("help %s does not explain -c", c.name)
		}
		code, h2, _ := cli(t, c.name, "-h")
		if code != exitOK || h2 != h {
			t.Errorf("%s -h differs from help %s", c.name, c.name)
		}
	}
}

func TestUnknownCommandAndFlag(t *testing.T) {
	if code, _, errs := cli(t, "stat"); code != exitUsage || !strings.Contains(errs, `did you mean "status"`) {
		t.Errorf("tandem stat = %d, %q", code, errs)
	}
	if code, _, errs := cli(t, "status", "--jsn"); code != exitUsage || !strings.Contains(errs, "jsn") {
		t.Errorf("tandem status --jsn = %d, %q", code, errs)
	}
	if code, _, _ := cli(t); code != exitUsage {
		t.Errorf("tandem with no args = %d, want %d", code, exitUsage)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	if code, out, _ := cli(t, "version"); code != exitOK || !strings.HasPrefix(out, "tandem ") || !strings.Contains(out, "protocol") {
		t.Errorf("version = %d, %q", code, out)
	}
	for _, sh := range []string{"bash", "zsh"} {
		if code, out, _ := cli(t, "completion", sh); code != exitOK || !strings.Contains(out, "status") {
			t.Errorf("completion %s = %d, %q", sh, code, out)
		}
	}
	if code, _, _ := cli(t, "completion", "fish"); code != exitUsage {
		t.Errorf("completion fish = %d, want %d", code, exitUsage)
	}
}
