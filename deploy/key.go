package deploy

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// KeyFile is the name of the node key inside the state dir.
const KeyFile = "node_ed25519"

// KeyPath returns where the node key lives in stateDir.
func KeyPath(stateDir string) string { return filepath.Join(stateDir, KeyFile) }

// EnsureStateDir creates stateDir with mode 0700 if it is missing. An existing
// directory is left as it is, but one that others can read or write is
// refused: it holds the node's private key.
func EnsureStateDir(stateDir string) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	return CheckStateDir(stateDir)
}

// EnsureKey returns the node key in stateDir, creating the state dir (0700)
// and a new ed25519 key (0600, OpenSSH format) when they are missing. It
// reports whether the key was created. An existing key is never replaced.
func EnsureKey(stateDir, comment string) (signer ssh.Signer, created bool, err error) {
	if err := EnsureStateDir(stateDir); err != nil {
		return nil, false, err
	}
	path := KeyPath(stateDir)
	signer, err = LoadKey(path)
	if err == nil {
		return signer, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate node key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, false, fmt.Errorf("encode node key: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, false, fmt.Errorf("write node key: %w", err)
	}
	signer, err = ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, false, err
	}
	return signer, true, nil
}

// LoadKey reads an OpenSSH private key. It refuses a key file that group or
// others may read, as OpenSSH does. A missing file is an error wrapping
// fs.ErrNotExist.
func LoadKey(path string) (ssh.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("node key %s is missing; run `tandem init` to create it: %w", path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("node key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("node key %s has mode %04o; others must not read it, run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("node key %s: %w (it must be an unencrypted OpenSSH private key)", path, err)
	}
	return signer, nil
}

// AuthorizedLine returns the one authorized_keys line for a public key, with
// comment appended when it is not empty, and no trailing newline.
func AuthorizedLine(pub ssh.PublicKey, comment string) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

// KnownHostsLine returns the known_hosts line that trusts pub as the host key
// of the node reachable at address ("host:port").
func KnownHostsLine(address string, pub ssh.PublicKey) string {
	return strings.TrimSpace(knownHostsLine(address, pub))
}

// writeNew writes a file that must not exist yet, durably: temp file, fsync,
// link into place (failing if something appeared meanwhile), fsync the dir.
func writeNew(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tandem-tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CheckStateDir checks, without creating anything, that stateDir is
// a directory that only its owner can open.
func CheckStateDir(stateDir string) error {
	fi, err := os.Stat(stateDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state dir %s does not exist; run `tandem init` to create it", stateDir)
		}
		return fmt.Errorf("state dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state dir %s is not a directory; remove it or fix state_dir", stateDir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("state dir %s has mode %04o; it holds the node key, run: chmod 700 %s", stateDir, fi.Mode().Perm(), stateDir)
	}
	return nil
}
