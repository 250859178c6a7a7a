package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// makeDirs creates n directories under root (nested a little).
func makeDirs(t *testing.T, root string, n int) {
	t.Helper()
	for i := range n {
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("d%d", i%5), fmt.Sprintf("e%d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckInotify(t *testing.T) {
	root := t.TempDir()
	makeDirs(t, root, 40) // 40 + 5 + the root = 46 directories
	limit := filepath.Join(t.TempDir(), "max_user_watches")
	for _, c := range []struct {
		limit  string
		ok     bool
		detail string
	}{
		{"1000\n", true, "46 directories in 1 tree(s) need as many watches; the limit is 1000"},
		{"50\n", false, "raise it: echo fs.inotify.max_user_watches=524288 > /etc/sysctl.d/60-tandem.conf && sysctl --system"},
		{"many\n", false, `holds "many", not a number`},
	} {
		writeFile(t, limit, c.limit)
		res := checkInotify(limit, []string{root})
		if len(res) != 1 || res[0].ok != c.ok || !strings.Contains(res[0].detail, c.detail) {
			t.Errorf("checkInotify(limit %q) = %+v, want ok %v with %q", c.limit, res, c.ok, c.detail)
		}
	}
	if res := checkInotify(filepath.Join(t.TempDir(), "missing"), []string{root}); len(res) != 1 || res[0].ok {
		t.Errorf("checkInotify(missing limit file) = %+v, want a failure", res)
	}
	if res := checkInotify(limit, nil); len(res) != 0 {
		t.Errorf("checkInotify(no trees) = %+v, want nothing to report", res)
	}
}

func TestCheckDisk(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "not", "yet")
	res := checkDisk([]string{dir, missing}, 0, 0)
	// Both are on one filesystem: one line, measured at the existing parent.
	if len(res) != 1 || !res[0].ok || !strings.Contains(res[0].detail, "free of") {
		t.Fatalf("checkDisk(two paths on one fs, no minimum) = %+v, want one ok line", res)
	}
	res = checkDisk([]string{dir}, 1<<62, 0)
	if len(res) != 1 || res[0].ok || !strings.Contains(res[0].detail, "free some space or grow the disk") {
		t.Errorf("checkDisk(minimum 4 EiB) = %+v, want a failure saying what to do", res)
	}
	res = checkDisk([]string{dir}, 0, 101)
	if len(res) != 1 || res[0].ok {
		t.Errorf("checkDisk(minimum 101%%) = %+v, want a failure", res)
	}
}

func TestCheckPreflight(t *testing.T) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	makeDirs(t, www, 10)
	nodes, err := setupPair(dir, pairOptions{Extra: map[string]string{"alpha": fmt.Sprintf("\n[[sync]]\npath = %q\n", www)}})
	if err != nil {
		t.Fatal(err)
	}
	alpha := nodes[0]
	run := func() (string, int) {
		var stdout, stderr bytes.Buffer
		code := runCLI(t.Context(), []string{"check", "-c", alpha.ConfigPath()}, &stdout, &stderr)
		return stdout.String() + stderr.String(), code
	}
	// beta is not running: the peer check fails, the local ones pass.
	out, code := run()
	for _, want := range []string{
		"ok   key and trust file modes",
		"ok   inotify watches: 16 directories in 1 tree(s)",
		"ok   disk space for " + alpha.StateDir() + ": ",
		"FAIL peer beta at",
		"1 check(s) failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if code != exitFailure {
		t.Errorf("check with the peer down = exit %d, want %d", code, exitFailure)
	}

	// A trust file others can write is a failure that says how to fix it.
	ak := filepath.Join(alpha.Dir, "authorized_keys")
	if err := os.Chmod(ak, 0o666); err != nil {
		t.Fatal(err)
	}
	out, code = run()
	if want := "FAIL ssh.authorized_keys " + ak + ": mode 0666 lets others change whom this node trusts; run: chmod 644 " + ak; !strings.Contains(out, want) || code != exitFailure {
		t.Errorf("check with authorized_keys 0666 = exit %d, output lacks %q:\n%s", code, want, out)
	}
}
