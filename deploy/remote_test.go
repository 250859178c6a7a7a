package deploy_test

// The Remote tests log in to a real OpenSSH server (internal/sshdtest) on
// loopback.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/internal/sshdtest"
)

func dial(t *testing.T, s *sshdtest.Server, o deploy.DialOptions) *deploy.Remote {
	t.Helper()
	r, err := deploy.Dial(t.Context(), deploy.Host{User: s.User, Host: "127.0.0.1", Port: s.Port}, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRemoteFilesAndCommands(t *testing.T) {
	s := sshdtest.Start(t)
	r := dial(t, s, deploy.DialOptions{Identities: []string{s.Identity}, IdentitiesRequired: true, KnownHosts: []string{s.KnownHosts}})
	ctx := t.Context()
	dir := t.TempDir()

	out, err := r.Run(ctx, "echo hello; echo oops >&2")
	if err != nil || string(out) != "hello\n" {
		t.Errorf("Run(echo) = %q, %v", out, err)
	}
	_, err = r.Run(ctx, "echo 'bad things' >&2; exit 7")
	var ce *deploy.CommandError
	if !errors.As(err, &ce) || ce.Status != 7 || !strings.Contains(err.Error(), "bad things") {
		t.Errorf("Run(exit 7) = %v, want a *CommandError with status 7 and the stderr", err)
	}

	p := filepath.Join(dir, "sub", "file")
	if _, err := r.ReadFile(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want fs.ErrNotExist", err)
	}
	if ok, err := r.Exists(p); ok || err != nil {
		t.Errorf("Exists(missing) = %v, %v", ok, err)
	}
	if err := r.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{"first\n", "second, longer\n"} {
		if err := r.WriteFile(p, strings.NewReader(data), 0o640); err != nil {
			t.Fatal(err)
		}
		if got, err := r.ReadFile(p); err != nil || string(got) != data {
			t.Errorf("ReadFile after WriteFile(%q) = %q, %v", data, got, err)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("written file: %v, mode %v; want 0640", err, fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(p)); di.Mode().Perm() != 0o750 {
		t.Errorf("MkdirAll made mode %v, want 0750", di.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(p)); len(entries) != 1 {
		t.Errorf("WriteFile left %d entries, want only the file (no temp files)", len(entries))
	}
	sum := sha256.Sum256([]byte("second, longer\n"))
	if got, err := r.Sha256(ctx, p); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Errorf("Sha256 = %q, %v; want %x", got, err, sum)
	}
	if got, err := r.Sha256(ctx, p+".missing"); err != nil || got != "" {
		t.Errorf("Sha256(missing) = %q, %v; want empty", got, err)
	}

	// A command is stopped when its context ends.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := r.Run(cctx, "sleep 30"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run(sleep 30) with a 200ms context = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("Run returned %v after its context ended", el)
	}
}

// TestRemoteAgent logs in with a key held by an ssh-agent (x/crypto's
// keyring, served on a unix socket as ssh-agent does).
func TestRemoteAgent(t *testing.T) {
	s := sshdtest.Start(t)
	b, err := os.ReadFile(s.Identity)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { agent.ServeAgent(keyring, c); c.Close() })
		}
	})
	r := dial(t, s, deploy.DialOptions{AgentSocket: sock, KnownHosts: []string{s.KnownHosts}})
	if out, err := r.Run(t.Context(), "echo via agent"); err != nil || string(out) != "via agent\n" {
		t.Errorf("Run over an agent login = %q, %v", out, err)
	}
	r.Close()
}

func TestDialErrors(t *testing.T) {
	s := sshdtest.Start(t)
	h := deploy.Host{User: s.User, Host: "127.0.0.1", Port: s.Port}
	other := filepath.Join(t.TempDir(), "other")
	if _, _, err := deploy.EnsureKey(other, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    deploy.DialOptions
		want string
	}{
		{"no key at all", deploy.DialOptions{Identities: []string{filepath.Join(t.TempDir(), "id_ed25519")}, KnownHosts: []string{s.KnownHosts}}, "no SSH key to log in with"},
		{"named key missing", deploy.DialOptions{Identities: []string{filepath.Join(t.TempDir(), "nope")}, IdentitiesRequired: true, KnownHosts: []string{s.KnownHosts}}, "identity:"},
		{"key not authorized", deploy.DialOptions{Identities: []string{deploy.KeyPath(other)}, KnownHosts: []string{s.KnownHosts}}, "is the operator's key in"},
		{"no known_hosts file", deploy.DialOptions{Identities: []string{s.Identity}, KnownHosts: []string{filepath.Join(t.TempDir(), "kh")}}, "ssh-keyscan -p"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := deploy.Dial(t.Context(), h, c.o)
			if err == nil {
				r.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Dial = %v, want it to say %q", err, c.want)
			}
		})
	}
}
