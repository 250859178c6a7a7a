package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newPub(t *testing.T) ssh.PublicKey {
	t.Helper()
	s, _, err := EnsureKey(filepath.Join(t.TempDir(), "k"), "")
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

func TestMergeAuthorized(t *testing.T) {
	beta, betaOld, other := newPub(t), newPub(t), newPub(t)
	line := AuthorizedLine(beta, "tandem@beta")
	otherLine := AuthorizedLine(other, "backup@elsewhere")
	for _, c := range []struct {
		name, have, want string
		changed          bool
	}{
		{"empty", "", line + "\n", true},
		{"present", line + "\n", line + "\n", false},
		{"others kept", "# keys\n" + otherLine + "\n", "# keys\n" + otherLine + "\n" + line + "\n", true},
		{"old key of the same peer dropped", AuthorizedLine(betaOld, "tandem@beta") + "\n" + otherLine + "\n", otherLine + "\n" + line + "\n", true},
		{"duplicate dropped", line + "\n" + line + "\n", line + "\n", true},
		{"no trailing newline", line, line + "\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, changed, err := MergeAuthorized([]byte(c.have), line)
			if err != nil || string(out) != c.want || changed != c.changed {
				t.Errorf("MergeAuthorized(%q) = %q, %v, %v; want %q, %v", c.have, out, changed, err, c.want, c.changed)
			}
		})
	}
	for _, bad := range []string{"", "ssh-ed25519", "ssh-ed25519 !!!! x", line + "\n" + otherLine} {
		if _, _, err := MergeAuthorized(nil, bad); err == nil {
			t.Errorf("MergeAuthorized(line %q) = nil error, want one", bad)
		}
	}
}

func TestMergeKnownHosts(t *testing.T) {
	beta, betaOld, other := newPub(t), newPub(t), newPub(t)
	want := KnownHostsLine("203.0.113.7:2222", beta)
	otherLine := KnownHostsLine("198.51.100.1:2222", other)
	for _, c := range []struct {
		name, have, want string
		changed          bool
	}{
		{"empty", "", want + "\n", true},
		{"present", want + "\n", want + "\n", false},
		{"other hosts kept", otherLine + "\n", otherLine + "\n" + want + "\n", true},
		{"old key dropped", KnownHostsLine("203.0.113.7:2222", betaOld) + "\n", want + "\n", true},
		{"same key at another port kept", KnownHostsLine("203.0.113.7:22", beta) + "\n", KnownHostsLine("203.0.113.7:22", beta) + "\n" + want + "\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, changed := MergeKnownHosts([]byte(c.have), "203.0.113.7:2222", beta)
			if string(out) != c.want || changed != c.changed {
				t.Errorf("MergeKnownHosts(%q) = %q, %v; want %q, %v", c.have, out, changed, c.want, c.changed)
			}
		})
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	p := filepath.Join(t.TempDir(), "known_hosts")
	for _, data := range []string{"one\n", "two\n"} {
		if err := WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != data {
			t.Errorf("after WriteFile(%q) the file holds %q", data, b)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("WriteFile left %d files, want 1 (no temp files)", len(entries))
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "missing", "x"), nil, 0o644); err == nil || !strings.Contains(err.Error(), "write ") {
		t.Errorf("WriteFile into a missing dir = %v, want an error naming the file", err)
	}
}

func TestParseHost(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Host
		err  bool
	}{
		{"root@vps1.example.com", Host{"root", "vps1.example.com", 22}, false},
		{"root@203.0.113.7:2200", Host{"root", "203.0.113.7", 2200}, false},
		{"admin@[2001:db8::7]:22", Host{"admin", "2001:db8::7", 22}, false},
		{"admin@[2001:db8::7]", Host{"admin", "2001:db8::7", 22}, false},
		{"vps1", Host{}, true},
		{"@vps1", Host{}, true},
		{"root@", Host{}, true},
		{"root@vps1:0", Host{}, true},
		{"root@vps1:x", Host{}, true},
	} {
		got, err := ParseHost(c.in, 22)
		if (err != nil) != c.err || (err == nil && got != c.want) {
			t.Errorf("ParseHost(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestNodeName(t *testing.T) {
	for in, want := range map[string]string{
		"vps1.example.com": "vps1",
		"VPS2":             "vps2",
		"203.0.113.7":      "203-0-113-7",
		"2001:db8::7":      "2001-db8--7",
		"_bad.example":     "",
	} {
		got, err := NodeName(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("NodeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/local/bin/tandem": "/usr/local/bin/tandem",
		"/tmp/my dir/x":         `'/tmp/my dir/x'`,
		"it's":                  `'it'\''s'`,
		"":                      "''",
		"$(reboot)":             `'$(reboot)'`,
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestParseNodeConfig(t *testing.T) {
	var c nodeConfig
	err := parseNodeConfig([]byte("node = \"alpha\"\n[ssh]\nlisten = \"0.0.0.0:2222\"\nknown_hosts = \"/etc/kh\"\n[[peer]]\nname = \"beta\"\naddress = \"192.0.2.1:2222\"\n[[sync]]\npath = \"/srv/www\"\n[snapshot]\ndir = \"/srv/snap\"\n[mysql]\ndsn = \"x\"\n"), "/etc/tandem/tandem.toml", &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node != "alpha" || c.StateDir != DefaultStateDir || c.SSH.AuthorizedKeys != "/etc/tandem/authorized_keys" ||
		c.SSH.KnownHosts != "/etc/kh" || c.Peer[0].Address != "192.0.2.1:2222" || c.Sync[0].Path != "/srv/www" || c.Snapshot.Dir != "/srv/snap" {
		t.Errorf("parseNodeConfig = %+v", c)
	}
	if err := parseNodeConfig([]byte("node = \n"), "f", &c); err == nil {
		t.Error("parseNodeConfig(invalid TOML) = nil error")
	}
}
