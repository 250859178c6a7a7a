package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestEnsureKeyIsIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s1, created, err := EnsureKey(dir, "alpha")
	if err != nil || !created {
		t.Fatalf("EnsureKey first = created %v, err %v; want created", created, err)
	}
	s2, created, err := EnsureKey(dir, "alpha")
	if err != nil || created {
		t.Fatalf("EnsureKey second = created %v, err %v; want existing key", created, err)
	}
	if string(s1.PublicKey().Marshal()) != string(s2.PublicKey().Marshal()) {
		t.Fatal("EnsureKey replaced an existing key")
	}
	if s1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type = %s, want %s", s1.PublicKey().Type(), ssh.KeyAlgoED25519)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, KeyPath(dir): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("mode of %s = %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
	// The file is a standard OpenSSH private key.
	b, _ := os.ReadFile(KeyPath(dir))
	if !strings.HasPrefix(string(b), "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Errorf("key file does not start with the OpenSSH header: %.40q", b)
	}
	line := AuthorizedLine(s1.PublicKey(), "tandem@alpha")
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || comment != "tandem@alpha" || string(pub.Marshal()) != string(s1.PublicKey().Marshal()) {
		t.Errorf("AuthorizedLine = %q does not parse back (err %v, comment %q)", line, err, comment)
	}
}

func TestLoadKeyRefusesLooseMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, _, err := EnsureKey(dir, "alpha"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(KeyPath(dir), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKey(KeyPath(dir))
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadKey(0644 file) = %v, want an error telling to chmod 600", err)
	}
}

func TestEnsureStateDirRefusesOpenDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStateDir(dir); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("EnsureStateDir(0755) = %v, want an error telling to chmod 700", err)
	}
}

func TestKnownHostsLine(t *testing.T) {
	s, _, err := EnsureKey(filepath.Join(t.TempDir(), "s"), "")
	if err != nil {
		t.Fatal(err)
	}
	got := KnownHostsLine("127.0.0.1:2222", s.PublicKey())
	if !strings.HasPrefix(got, "[127.0.0.1]:2222 ssh-ed25519 ") {
		t.Errorf("KnownHostsLine = %q, want a [host]:port entry", got)
	}
}
