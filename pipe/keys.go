package pipe

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Errors a caller can branch on.
var (
	// ErrRefused: the peer answered the handshake with a refusal.
	ErrRefused = errors.New("refused by peer")
	// ErrUnknownHost: the peer's host key is not in known_hosts.
	ErrUnknownHost = errors.New("peer host key unknown")
	// ErrHostKeyMismatch: known_hosts has a different key for the peer.
	ErrHostKeyMismatch = errors.New("peer host key mismatch")
	// ErrVersion: the two nodes share no protocol version.
	ErrVersion = errors.New("incompatible protocol version")
	// ErrUnexpectedPeer: the node that answered is not the configured peer.
	ErrUnexpectedPeer = errors.New("unexpected peer name")
)

// loadAuthorizedKeys reads an OpenSSH authorized_keys file. Options on a
// line are ignored; comments and blank lines are skipped. A line that does
// not parse is an error naming its line number: a typo must not silently
// lock the peer out.
func loadAuthorizedKeys(path string) ([]ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authorized_keys: %w", err)
	}
	var keys []ssh.PublicKey
	for n, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v; each line must be one key as `tandem init` prints it", path, n+1, err)
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

// authorize checks a client key against the authorized_keys file, read anew
// for every attempt so that an operator's fix takes effect without a restart.
func authorize(path string, key ssh.PublicKey) error {
	keys, err := loadAuthorizedKeys(path)
	if err != nil {
		return err
	}
	want := key.Marshal()
	for _, k := range keys {
		if bytes.Equal(k.Marshal(), want) {
			return nil
		}
	}
	return fmt.Errorf("key %s is not in %s; if this is the peer, add the line its `tandem init` prints",
		ssh.FingerprintSHA256(key), path)
}

// hostKeyCallback checks the peer's host key against known_hosts, read anew
// for every dial, and turns knownhosts' errors into ones that say what to do.
func hostKeyCallback(path string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		cb, err := knownhosts.New(path)
		if err != nil {
			return fmt.Errorf("known_hosts %s: %w", path, err)
		}
		err = cb(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			host := knownhosts.Normalize(hostname)
			if len(ke.Want) == 0 {
				return fmt.Errorf("%w: %s presented %s, which is not in %s; add the peer's `tandem init` line there as \"%s <key>\"",
					ErrUnknownHost, host, ssh.FingerprintSHA256(key), path, host)
			}
			return fmt.Errorf("%w: %s presented %s but %s:%d expects %s; if the peer was reinstalled, replace that line, otherwise someone may be intercepting the link",
				ErrHostKeyMismatch, host, ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line, ssh.FingerprintSHA256(ke.Want[0].Key))
		}
		return err
	}
}
