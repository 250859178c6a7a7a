package main

// TestPairByHand sets up two nodes the way docs/deploy.md tells an operator
// to by hand (config, `tandem init`, `tandem pair --write` with the other's
// line) and starts them as real daemons, which must connect.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemhost/tandem/deploy"
)

func TestPairByHand(t *testing.T) {
	dir := t.TempDir()
	var nodes [2]*pairNode
	for i, name := range []string{"alpha", "beta"} {
		listen, err := freeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = &pairNode{Name: name, Dir: filepath.Join(dir, name), Listen: listen, Dial: listen}
		os.MkdirAll(nodes[i].Dir, 0o755)
	}
	lines := map[string]string{}
	for i, n := range nodes {
		peer := nodes[1-i]
		writeFile(t, n.ConfigPath(), fmt.Sprintf("node = %q\nstate_dir = %q\n[ssh]\nlisten = %q\nheartbeat = \"200ms\"\ntimeout = \"1s\"\n[[peer]]\nname = %q\naddress = %q\n",
			n.Name, n.StateDir(), n.Listen, peer.Name, peer.Dial))
		out, err := exec.Command(tandemBinary(t), "init", "-c", n.ConfigPath()).Output()
		if err != nil {
			t.Fatalf("%s: tandem init: %v", n.Name, err)
		}
		lines[n.Name] = strings.TrimSpace(string(out))
	}
	alpha, beta := nodes[0], nodes[1]
	pair := func(n *pairNode, args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		code := runCLI(t.Context(), append([]string{"pair", "-c", n.ConfigPath()}, args...), &stdout, &stderr)
		return stdout.String(), stderr.String(), code
	}

	// Without --write: the two lines, and no file.
	out, errOut, code := pair(alpha, strings.Fields(lines["beta"])...)
	betaPub, _, _ := deploy.ParseAuthorizedLine(lines["beta"])
	wantKnown := deploy.KnownHostsLine(beta.Dial, betaPub)
	if code != exitOK || !strings.Contains(out, "\n"+lines["beta"]+"\n") || !strings.Contains(out, "\n"+wantKnown+"\n") {
		t.Fatalf("pair = exit %d, stdout:\n%s\nstderr: %s\nwant both lines (%q)", code, out, errOut, wantKnown)
	}
	if _, err := os.Stat(filepath.Join(alpha.Dir, "authorized_keys")); err == nil {
		t.Error("pair without --write wrote authorized_keys")
	}

	// Wrong lines are refused with a reason.
	for _, c := range []struct {
		line, want string
	}{
		{lines["alpha"], "this node's own key"},
		{strings.Replace(lines["beta"], "tandem@beta", "tandem@gamma", 1), "node gamma's"},
		{"ssh-ed25519 notbase64 tandem@beta", "not an OpenSSH public key"},
	} {
		if _, errOut, code := pair(alpha, "--write", c.line); code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("pair --write %q = exit %d, stderr %q; want exit %d saying %q", c.line, code, errOut, exitUsage, c.want)
		}
	}

	// An unrelated line already in authorized_keys stays.
	other := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVNXhVYXRTr8bKrCkGPu8pXnPJo2A6tDIJ5WXcFPRTL backup@elsewhere"
	writeFile(t, filepath.Join(alpha.Dir, "authorized_keys"), other+"\n")
	for i, n := range nodes {
		out, errOut, code := pair(n, "--write", lines[nodes[1-i].Name])
		if code != exitOK || strings.Count(out, "paired with") != 2 {
			t.Fatalf("%s: pair --write = exit %d\n%s%s", n.Name, code, out, errOut)
		}
		out, _, code = pair(n, "--write", lines[nodes[1-i].Name])
		if code != exitOK || strings.Count(out, "unchanged") != 2 {
			t.Errorf("%s: pair --write again = exit %d, want both files unchanged:\n%s", n.Name, code, out)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(alpha.Dir, "authorized_keys")); string(b) != other+"\n"+lines["beta"]+"\n" {
		t.Errorf("alpha's authorized_keys = %q, want the other line kept and beta's added", b)
	}

	// The pair by hand works: both daemons connect to each other.
	startDaemon(t, alpha)
	startDaemon(t, beta)
	for _, n := range nodes {
		waitPeer(t, n, "connected", func(p PeerStatus) bool { return p.Connected && p.Inbound })
	}
}
