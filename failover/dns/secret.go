package dns

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// TSIGSecret is a TSIG key as read from a secret file.
type TSIGSecret struct {
	// Name and Algorithm are the key's name and algorithm when the file
	// holds a whole `key "name" { ... };` block; empty for a bare secret.
	Name      string
	Algorithm string
	// Secret is the base64 secret, checked to decode.
	Secret string
}

var (
	keyBlockRe  = regexp.MustCompile(`(?s)\bkey\s+("([^"]*)"|([^\s{]+))\s*\{(.*?)\}\s*;?`)
	algorithmRe = regexp.MustCompile(`\balgorithm\s+"?([A-Za-z0-9.-]+)"?\s*;`)
	secretRe    = regexp.MustCompile(`\bsecret\s+"([^"]*)"\s*;`)
	commentRe   = regexp.MustCompile(`(?m)(#|//).*$`)
)

// ReadSecretFile reads a TSIG secret in either form tsig-keygen prints:
// the bare base64 secret on its own, or the whole block
//
//	key "tandem-key" {
//		algorithm hmac-sha256;
//		secret "base64...";
//	};
//
// It refuses a file that everyone may read, since the secret lets its
// holder repoint the site.
func ReadSecretFile(path string) (TSIGSecret, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return TSIGSecret{}, fmt.Errorf("tsig secret file: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return TSIGSecret{}, fmt.Errorf("tsig secret file %s is readable by everyone (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return TSIGSecret{}, fmt.Errorf("tsig secret file: %w", err)
	}
	s, err := ParseSecret(string(b))
	if err != nil {
		return TSIGSecret{}, fmt.Errorf("tsig secret file %s: %w", path, err)
	}
	return s, nil
}

// ParseSecret parses the contents of a secret file; see ReadSecretFile.
func ParseSecret(text string) (TSIGSecret, error) {
	text = commentRe.ReplaceAllString(text, "")
	text = strings.TrimSpace(text)
	if text == "" {
		return TSIGSecret{}, errors.New("empty: put the base64 secret there, as `tsig-keygen tandem-key` prints it")
	}
	var s TSIGSecret
	if m := keyBlockRe.FindStringSubmatch(text); m != nil {
		s.Name = m[2] + m[3]
		body := m[4]
		if a := algorithmRe.FindStringSubmatch(body); a != nil {
			s.Algorithm = strings.ToLower(a[1])
		}
		sec := secretRe.FindStringSubmatch(body)
		if sec == nil {
			return TSIGSecret{}, fmt.Errorf("key block %q has no `secret \"...\";` line", s.Name)
		}
		s.Secret = sec[1]
	} else {
		if strings.ContainsAny(text, " \t\r\n{};\"") {
			return TSIGSecret{}, errors.New("neither a bare base64 secret nor a `key \"name\" { algorithm ...; secret \"...\"; };` block as tsig-keygen prints")
		}
		s.Secret = text
	}
	raw, err := base64.StdEncoding.DecodeString(s.Secret)
	if err != nil {
		return TSIGSecret{}, fmt.Errorf("secret is not valid base64: %w", err)
	}
	if len(raw) == 0 {
		return TSIGSecret{}, errors.New("secret is empty")
	}
	return s, nil
}
