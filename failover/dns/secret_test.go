package dns

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSecret(t *testing.T) {
	const sec = "q+6rt3m9nfDTRcCf+RtbrlaydZK3okFcbGH6N1eP1rI="
	tests := []struct {
		name    string
		text    string
		want    TSIGSecret
		wantErr string
	}{
		{"bare", sec + "\n", TSIGSecret{Secret: sec}, ""},
		{"bare with comment", "# made by tsig-keygen\n" + sec, TSIGSecret{Secret: sec}, ""},
		{"tsig-keygen block", "key \"tandem-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + sec + "\";\n};\n",
			TSIGSecret{Name: "tandem-key", Algorithm: "hmac-sha256", Secret: sec}, ""},
		{"block on one line, unquoted name", `key tandem-key. { algorithm HMAC-SHA512; secret "` + sec + `"; };`,
			TSIGSecret{Name: "tandem-key.", Algorithm: "hmac-sha512", Secret: sec}, ""},
		{"empty", "\n\n", TSIGSecret{}, "empty"},
		{"not base64", "not-base64!!", TSIGSecret{}, "not valid base64"},
		{"two words", sec + " " + sec, TSIGSecret{}, "neither a bare base64 secret nor"},
		{"block without secret", "key \"k\" { algorithm hmac-sha256; };", TSIGSecret{}, "no `secret"},
		{"block with bad secret", "key \"k\" { algorithm hmac-sha256; secret \"%%%\"; };", TSIGSecret{}, "not valid base64"},
		{"named.conf options", "options { directory \"/var/cache/bind\"; };", TSIGSecret{}, "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSecret(%q) = %+v, %v; want error containing %q", tt.text, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSecret(%q) = %+v, %v; want %+v", tt.text, got, err, tt.want)
			}
		})
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	const sec = "q+6rt3m9nfDTRcCf+RtbrlaydZK3okFcbGH6N1eP1rI="

	if s, err := ReadSecretFile(write("ok", sec, 0o600)); err != nil || s.Secret != sec {
		t.Errorf("0600 bare secret: %+v, %v", s, err)
	}
	if s, err := ReadSecretFile(write("group", sec, 0o640)); err != nil || s.Secret != sec {
		t.Errorf("0640 bare secret: %+v, %v", s, err)
	}
	p := write("world", sec, 0o644)
	if _, err := ReadSecretFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Errorf("0644 file: %v, want a refusal saying chmod 600", err)
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	p = write("garbage", "hello world", 0o600)
	if _, err := ReadSecretFile(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("garbage: %v, want an error naming the file", err)
	}

	// The real thing: what tsig-keygen prints.
	keygen, err := exec.LookPath("tsig-keygen")
	if err != nil {
		if keygen, err = exec.LookPath("/usr/sbin/tsig-keygen"); err != nil {
			requireTool(t, "tsig-keygen (apt-get install bind9)", err)
		}
	}
	out, err := exec.Command(keygen, "-a", "hmac-sha256", "tandem-key").Output()
	if err != nil {
		t.Fatalf("tsig-keygen: %v", err)
	}
	s, err := ReadSecretFile(write("keygen", string(out), 0o600))
	if err != nil {
		t.Fatalf("tsig-keygen output %q: %v", out, err)
	}
	if s.Name != "tandem-key" || s.Algorithm != "hmac-sha256" || !strings.Contains(string(out), `"`+s.Secret+`"`) {
		t.Errorf("tsig-keygen output %q read as %+v", out, s)
	}
}
