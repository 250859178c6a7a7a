package deploy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ParseAuthorizedLine parses one authorized_keys line, as `tandem init`
// prints it, into the key and its comment.
func ParseAuthorizedLine(line string) (ssh.PublicKey, string, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, "", fmt.Errorf("empty key line; paste the line `tandem init -c FILE` prints on the peer")
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, "", fmt.Errorf("key line %q is not an OpenSSH public key (%v); paste the line `tandem init -c FILE` prints on the peer", abbrev(line), err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, "", fmt.Errorf("key line %q holds more than one key; give one line", abbrev(line))
	}
	return pub, comment, nil
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// MergeAuthorized returns the authorized_keys file existing with the key of
// line in it. A line for the same key is kept as it is; a line with another
// key but the same comment (tandem@NAME: the peer's old key, before it was
// re-created) is dropped; everything else is kept. changed says whether the
// result differs from existing.
func MergeAuthorized(existing []byte, line string) (out []byte, changed bool, err error) {
	pub, comment, err := ParseAuthorizedLine(line)
	if err != nil {
		return nil, false, err
	}
	want := AuthorizedLine(pub, comment)
	var b bytes.Buffer
	found := false
	for _, l := range splitLines(existing) {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			b.WriteString(l + "\n")
			continue
		}
		k, c, _, _, perr := ssh.ParseAuthorizedKey([]byte(t))
		switch {
		case perr == nil && bytes.Equal(k.Marshal(), pub.Marshal()):
			if found {
				continue // a duplicate
			}
			found = true
		case perr == nil && comment != "" && c == comment:
			continue // the same peer's previous key
		}
		b.WriteString(l + "\n")
	}
	if !found {
		b.WriteString(want + "\n")
	}
	return b.Bytes(), !bytes.Equal(b.Bytes(), existing), nil
}

// MergeKnownHosts returns the known_hosts file existing with pub as the only
// key of the host at address ("host:port", as the peer is dialed). Lines
// for other hosts are kept; another key for this host is dropped (the host
// has a new key, and a stale one must not stay trusted).
func MergeKnownHosts(existing []byte, address string, pub ssh.PublicKey) (out []byte, changed bool) {
	pattern := knownhosts.Normalize(address)
	var b bytes.Buffer
	found := false
	for _, l := range splitLines(existing) {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "@") {
			b.WriteString(l + "\n")
			continue
		}
		fields := strings.Fields(t)
		if len(fields) < 3 || !containsHost(fields[0], pattern) {
			b.WriteString(l + "\n")
			continue
		}
		k, err := ssh.ParsePublicKey(decodeB64(fields[2]))
		if err == nil && bytes.Equal(k.Marshal(), pub.Marshal()) && !found {
			found = true
			b.WriteString(l + "\n")
		}
	}
	if !found {
		b.WriteString(KnownHostsLine(address, pub) + "\n")
	}
	return b.Bytes(), !bytes.Equal(b.Bytes(), existing)
}

func containsHost(hosts, pattern string) bool {
	for _, h := range strings.Split(hosts, ",") {
		if h == pattern {
			return true
		}
	}
	return false
}

func decodeB64(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}

// splitLines splits a file into lines without their newlines.
func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// WriteFile replaces the local file p with data atomically: a temp file in
// the same directory, fsync, rename, fsync the directory. A reader sees the
// old or the new file, never a part.
func WriteFile(p string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(p)
	tmp, err := os.CreateTemp(dir, ".tandem-tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync dir: %w", p, err)
	}
	return nil
}
