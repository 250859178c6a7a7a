package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/binlog"
	"github.com/tandemhost/tandem/failover"
	"github.com/tandemhost/tandem/internal/duration"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/snapshot"
	"github.com/tandemhost/tandem/watcher"
)

const examplePath = "../../deploy/tandem.example.toml"

// minimal is the smallest valid config file.
const minimal = `node = "alpha"
[ssh]
listen = "0.0.0.0:2222"
[[peer]]
name = "beta"
address = "203.0.113.7:2222"
[[sync]]
path = "/var/www"
`

// TestParseConfigProblems feeds broken config files to ParseConfig and checks
// that each problem is reported with its line and a way out.
func TestParseConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // substrings of the error, in any order
	}{
		// Unknown keys and tables.
		{"unknown key in table", `node = "alpha"
[ssh]
listn = "0.0.0.0:2222"
`, []string{"tandem.toml:3: unknown key ssh.listn (did you mean listen?); known keys in [ssh]: listen, authorized_keys, known_hosts, heartbeat, timeout"}},
		{"unknown top-level key", "nod = \"alpha\"\n", []string{
			"tandem.toml:1: unknown key nod (did you mean node?); known top-level keys: node, state_dir, log_level, [ssh], [[peer]], [[sync]]"}},
		{"unknown key in array table", minimal + "[[peer]]\nnmae = \"gamma\"\n", []string{
			"tandem.toml:10: unknown key peer.nmae (did you mean name?); known keys in [[peer]]: name, address"}},
		{"unknown table", "node = \"alpha\"\n\n[postgres]\nhost = \"x\"\n", []string{
			"tandem.toml:3: unknown table [postgres]; known top-level keys:"}},
		{"unknown subtable", "[ssh.opts]\n", []string{"tandem.toml:1: unknown table [ssh.opts]; known keys in [ssh]:"}},
		{"unknown dotted key", "ssh.listen = \"0.0.0.0:2222\"\nssh.port = 22\n", []string{"tandem.toml:2: unknown key ssh.port"}},
		{"unknown key in inline table", "sync = [{path = \"/a\"}, {paht = \"/b\"}]\n", []string{
			"tandem.toml:1: unknown key sync[1].paht (did you mean path?); known keys in sync[1]: name, path, exclude"}},
		{"top-level key below a table", minimal + "state_dir = \"/srv/tandem\"\n", []string{
			"tandem.toml:9: unknown key sync.state_dir (state_dir is a top-level key: move it above the first [table])"}},
		{"all unknown keys at once", "nod = 1\n[ssh]\nlistn = 2\n", []string{"tandem.toml:1: unknown key nod", "tandem.toml:3: unknown key ssh.listn"}},

		// Values of the wrong type.
		{"string wanted", "node = \"alpha\"\n[ssh]\nlisten = 2222\n", []string{
			"tandem.toml:3: ssh.listen must be a string in quotes, not a number"}},
		{"table wanted", "ssh = \"0.0.0.0:2222\"\n", []string{"tandem.toml:1: ssh must be a table [ssh], not a string"}},
		{"table list wanted", "peer = \"beta\"\n", []string{"tandem.toml:1: peer must be a list of [[peer]] tables, not a string"}},
		{"value wanted, not table", "[node]\n", []string{"tandem.toml:1: node must be a string in quotes, not a table"}},
		{"single brackets for a list", "[sync]\npath = \"/var/www\"\n", []string{"tandem.toml:1: [sync] must be written [[sync]]"}},
		{"double brackets for a table", "[[ssh]]\n", []string{"tandem.toml:1: [[ssh]] must be written [ssh]"}},
		{"dotted key into a list", "sync.path = \"/var/www\"\n", []string{"tandem.toml:1: sync must be a list of [[sync]] tables, not a table"}},
		{"array wanted", minimal + "exclude = \"*.tmp\"\n", []string{`tandem.toml:9: sync.exclude must be an array of strings, like ["a", "b"], not a string`}},
		{"array element", minimal + "exclude = [\n  \"*.tmp\",\n  2,\n]\n", []string{"tandem.toml:11: sync.exclude[1] must be a string in quotes, not a number"}},
		{"integer duration", "[ssh]\nheartbeat = 5\n", []string{`tandem.toml:2: ssh.heartbeat must be a duration in quotes, like "5s" or "250ms", not a number`}},
		{"bad duration", "[ssh]\ntimeout = \"5\"\n", []string{`tandem.toml:2: ssh.timeout: "5" is not a duration`}},
		{"negative duration", "[ssh]\ntimeout = \"-5s\"\n", []string{`tandem.toml:2: ssh.timeout: "-5s" is negative`}},
		{"all type errors at once", "node = 1\nlog_level = true\n", []string{"tandem.toml:1: node must be", "tandem.toml:2: log_level must be a string in quotes, not a boolean"}},

		// Not TOML.
		{"syntax", "node = \"alpha\"\nstate_dir = \n", []string{"tandem.toml:2: invalid TOML: "}},
		{"unterminated string", "node = \"alpha\n", []string{"tandem.toml:1: invalid TOML: "}},
		{"key set twice", "node = \"alpha\"\nnode = \"beta\"\n", []string{"tandem.toml:2: invalid TOML: key node is already defined"}},

		// Top-level values.
		{"node missing", strings.Replace(minimal, "node = \"alpha\"\n", "", 1), []string{
			"tandem.toml: node is missing; name this server at the top of the file, like node = \"alpha\""}},
		{"node invalid", strings.Replace(minimal, `"alpha"`, `"Alpha"`, 1), []string{
			`tandem.toml:1: node "Alpha" is not a valid name; use 1 to 63 lower-case letters, digits and dashes`}},
		{"node too long", strings.Replace(minimal, `"alpha"`, `"`+strings.Repeat("a", 64)+`"`, 1), []string{"is not a valid name"}},
		{"state_dir relative", "state_dir = \"var/lib/tandem\"\n" + minimal, []string{
			`tandem.toml:1: state_dir "var/lib/tandem" is not an absolute path`}},
		{"log_level", "log_level = \"verbose\"\n" + minimal, []string{
			`tandem.toml:1: log_level "verbose" is not one of debug, info, warn, error`}},

		// [ssh]
		{"listen missing", strings.Replace(minimal, "listen = \"0.0.0.0:2222\"\n", "", 1), []string{
			"tandem.toml:2: ssh.listen is missing; set listen = \"0.0.0.0:2222\" in [ssh]"}},
		{"listen without port", strings.Replace(minimal, `"0.0.0.0:2222"`, `"0.0.0.0"`, 1), []string{
			`tandem.toml:3: ssh.listen "0.0.0.0" is not host:port`}},
		{"listen port 0", strings.Replace(minimal, `"0.0.0.0:2222"`, `":0"`, 1), []string{
			`tandem.toml:3: ssh.listen ":0" has port "0", which is not a number from 1 to 65535; write it like "0.0.0.0:2222"`}},
		{"timeout below two heartbeats", strings.Replace(minimal, "[ssh]\n", "[ssh]\nheartbeat = \"2s\"\ntimeout = \"3s\"\n", 1), []string{
			"tandem.toml:4: ssh.timeout (3s) is less than twice ssh.heartbeat (2s)", "raise timeout to at least 4s"}},
		{"heartbeat above default timeout", strings.Replace(minimal, "[ssh]\n", "[ssh]\nheartbeat = \"3s\"\n", 1), []string{
			"tandem.toml:3: ssh.timeout (5s) is less than twice ssh.heartbeat (3s)"}},

		// [[peer]]
		{"peer missing", "node = \"alpha\"\n[ssh]\nlisten = \":2222\"\n", []string{"tandem.toml: [[peer]] is missing; add a [[peer]] table"}},
		{"two peers", minimal + "[[peer]]\nname = \"gamma\"\naddress = \"203.0.113.8:2222\"\n", []string{
			"tandem.toml:9: there are 2 [[peer]] tables; tandem pairs exactly two nodes"}},
		{"peer is this node", strings.Replace(minimal, `"beta"`, `"alpha"`, 1), []string{
			`tandem.toml:5: peer name "alpha" is this node's own name`}},
		{"peer name invalid", strings.Replace(minimal, `"beta"`, `"beta_2"`, 1), []string{`tandem.toml:5: peer name "beta_2" is not a valid name`}},
		{"peer name missing", strings.Replace(minimal, "name = \"beta\"\n", "", 1), []string{"tandem.toml:4: [[peer]] name is missing"}},
		{"peer address missing", strings.Replace(minimal, "address = \"203.0.113.7:2222\"\n", "", 1), []string{"tandem.toml:4: [[peer]] address is missing"}},
		{"peer address without port", strings.Replace(minimal, "203.0.113.7:2222", "203.0.113.7", 1), []string{
			`tandem.toml:6: peer address "203.0.113.7" is not host:port`}},
		{"peer address without host", strings.Replace(minimal, "203.0.113.7:2222", ":2222", 1), []string{`peer address ":2222" has no host`}},
		{"peer port named", strings.Replace(minimal, "203.0.113.7:2222", "beta:ssh", 1), []string{`peer address "beta:ssh" has port "ssh", which is not a number`}},
		{"peer port too big", strings.Replace(minimal, "203.0.113.7:2222", "beta:65536", 1), []string{`has port "65536", which is not`}},
		{"peer ipv6 without brackets", strings.Replace(minimal, "203.0.113.7:2222", "2001:db8::7:2222", 1), []string{"is not host:port (IPv6 hosts go in brackets)"}},

		// [[sync]]
		{"sync path missing", minimal + "[[sync]]\nexclude = []\n", []string{"tandem.toml:9: [[sync]] path is missing"}},
		{"sync path relative", strings.Replace(minimal, `"/var/www"`, `"var/www"`, 1), []string{
			`tandem.toml:8: sync path "var/www" is not an absolute path`}},
		{"sync path twice", minimal + "[[sync]]\npath = \"/var/www/\"\n", []string{
			"tandem.toml:10: sync path /var/www is listed twice (also at line 8)"}},
		{"sync path nested", minimal + "[[sync]]\npath = \"/var/www/site\"\n", []string{
			"tandem.toml:10: sync path /var/www/site is inside sync path /var/www (line 8)"}},
		{"sync path contains", minimal + "[[sync]]\npath = \"/var\"\n", []string{
			"tandem.toml:10: sync path /var contains sync path /var/www (line 8)"}},
		{"sync path in state_dir", "state_dir = \"/srv/tandem\"\n" + strings.Replace(minimal, "/var/www", "/srv/tandem/www", 1), []string{
			"tandem.toml:9: sync path /srv/tandem/www is inside state_dir /srv/tandem"}},
		{"sync path is state_dir", "state_dir = \"/srv/tandem\"\n" + strings.Replace(minimal, "/var/www", "/srv/tandem", 1), []string{
			"tandem.toml:9: sync path /srv/tandem is inside state_dir /srv/tandem"}},
		{"state_dir in sync path", "state_dir = \"/var/www/.tandem\"\n" + minimal, []string{
			"tandem.toml:1: state_dir /var/www/.tandem is inside sync path /var/www"}},
		{"sync root is /", strings.Replace(minimal, `"/var/www"`, `"/"`, 1), []string{"tandem.toml:8: state_dir /var/lib/tandem is inside sync path /, so tandem's own files would be synced to the peer; move state_dir out of the tree"}},
		{"empty exclude", minimal + "exclude = [\"*.tmp\", \" \"]\n", []string{
			"tandem.toml:9: [[sync]] exclude pattern 2 is empty"}},

		// Everything at once.
		{"all problems together", `node = "Alpha"
log_level = "loud"
[ssh]
listen = "nowhere"
[[peer]]
name = "Alpha"
address = "beta"
[[sync]]
path = "www"
`, []string{
			`tandem.toml:1: node "Alpha"`,
			`tandem.toml:2: log_level "loud"`,
			`tandem.toml:4: ssh.listen "nowhere"`,
			`tandem.toml:6: peer name "Alpha"`,
			`tandem.toml:7: peer address "beta"`,
			`tandem.toml:9: sync path "www"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.text), "tandem.toml")
			if err == nil {
				t.Fatalf("ParseConfig(%q) = %+v, want an error", tt.text, c)
			}
			if c != nil {
				t.Errorf("ParseConfig returned a config with error %v", err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseConfig error %T %v, want a *ConfigError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseConfig error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(ce.Problems) {
				t.Errorf("error has %d lines for %d problems:\n%v", n, len(ce.Problems), err)
			}
		})
	}
}

func TestParseConfigUnknownTableKeysNotReported(t *testing.T) {
	_, err := ParseConfig([]byte("[postgres]\nhost = \"x\"\nport = 3306\n"), "tandem.toml")
	if err == nil || strings.Contains(err.Error(), "host") || strings.Contains(err.Error(), "port") {
		t.Errorf("ParseConfig error:\n%v\nwant only [postgres] reported, not the keys in it", err)
	}
}

func TestParseConfigProblemsInFileOrder(t *testing.T) {
	text := "log_level = \"loud\"\n[ssh]\nlisten = \"x\"\n" // node and peer missing: no line
	_, err := ParseConfig([]byte(text), "tandem.toml")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("ParseConfig error %v, want a *ConfigError", err)
	}
	var lines []int
	for _, p := range ce.Problems {
		lines = append(lines, p.Line)
	}
	if want := []int{0, 0, 1, 3}; !reflect.DeepEqual(lines, want) {
		t.Errorf("problem lines = %v, want %v\n%v", lines, want, err)
	}
	var p *Problem
	if !errors.As(err, &p) || p.Key != "node" {
		t.Errorf("errors.As(err, *Problem) = %+v, want the node problem first", p)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(minimal), "/etc/tandem/tandem.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Node:     "alpha",
		StateDir: "/var/lib/tandem",
		LogLevel: "info",
		SSH: pipe.Config{
			Listen:         "0.0.0.0:2222",
			AuthorizedKeys: "/etc/tandem/authorized_keys",
			KnownHosts:     "/etc/tandem/known_hosts",
			Heartbeat:      duration.Duration(pipe.DefaultHeartbeat),
			Timeout:        duration.Duration(pipe.DefaultTimeout),
		},
		Peers: []pipe.Peer{{Name: "beta", Address: "203.0.113.7:2222"}},
		Sync:  []watcher.Config{{Path: "/var/www"}},
	}
	want.MySQL.ApplyDefaults()
	want.Failover.ApplyDefaults()
	want.Snapshot.ApplyDefaults()
	if !sameConfig(c, &want) {
		t.Errorf("ParseConfig(minimal) = %+v, want %+v", *c, want)
	}
}

// sameConfig compares the exported fields of two configs.
func sameConfig(a, b *Config) bool {
	a2, b2 := *a, *b
	a2.file, a2.lines, b2.file, b2.lines = "", nil, "", nil
	return reflect.DeepEqual(a2, b2)
}

func TestParseConfigKeyFilePaths(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		configPath, authorizedKeys, wantAuthorizedKeys, wantKnownHosts string
	}{
		{"/etc/tandem/tandem.toml", "", "/etc/tandem/authorized_keys", "/etc/tandem/known_hosts"},
		{"/opt/t/tandem.toml", "keys/peer", "/opt/t/keys/peer", "/opt/t/known_hosts"},
		{"/opt/t/tandem.toml", "/etc/ssh/../tandem/ak", "/etc/tandem/ak", "/opt/t/known_hosts"},
		{"tandem.toml", "ak", filepath.Join(wd, "ak"), filepath.Join(wd, "known_hosts")},
	}
	for _, tt := range tests {
		text := minimal
		if tt.authorizedKeys != "" {
			text = strings.Replace(minimal, "[ssh]\n", "[ssh]\nauthorized_keys = \""+tt.authorizedKeys+"\"\n", 1)
		}
		c, err := ParseConfig([]byte(text), tt.configPath)
		if err != nil {
			t.Fatal(err)
		}
		if c.SSH.AuthorizedKeys != tt.wantAuthorizedKeys || c.SSH.KnownHosts != tt.wantKnownHosts {
			t.Errorf("config %s with authorized_keys %q: keys at %s and %s, want %s and %s", tt.configPath, tt.authorizedKeys,
				c.SSH.AuthorizedKeys, c.SSH.KnownHosts, tt.wantAuthorizedKeys, tt.wantKnownHosts)
		}
	}
}

func TestParseConfigInlineTables(t *testing.T) {
	text := `node = "alpha"
ssh = {listen = ":2222", heartbeat = "2s"}
peer = [{name = "beta", address = "[2001:db8::7]:2222"}]
sync = [{path = "/a"}, {path = "/b", exclude = ["x"]}]
`
	c, err := ParseConfig([]byte(text), "tandem.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.SSH.Heartbeat.Std() != 2*time.Second || len(c.Sync) != 2 || c.Sync[1].Exclude[0] != "x" || c.Peers[0].Address != "[2001:db8::7]:2222" {
		t.Errorf("ParseConfig = %+v", c)
	}
}

func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data, "/etc/tandem/tandem.toml")
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	want := Config{
		Node:     "alpha",
		StateDir: "/var/lib/tandem",
		LogLevel: "info",
		SSH: pipe.Config{
			Listen:         "0.0.0.0:2222",
			AuthorizedKeys: "/etc/tandem/authorized_keys",
			KnownHosts:     "/etc/tandem/known_hosts",
			Heartbeat:      duration.Duration(time.Second),
			Timeout:        duration.Duration(5 * time.Second),
		},
		Peers: []pipe.Peer{{Name: "beta", Address: "203.0.113.7:2222"}},
		Sync:  []watcher.Config{{Name: "www", Path: "/var/www", Exclude: []string{"*.tmp", "cache/"}}},
		MySQL: binlog.Config{DSN: "tandem:secret@tcp(127.0.0.1:3306)/", ServerID: 1001, Databases: []string{"shop"}, Conflict: "newer"},
		Failover: failover.Config{
			Address: "198.51.100.1", Priority: 100,
			Heartbeat: duration.Duration(time.Second), DeadAfter: duration.Duration(10 * time.Second),
			Checks: []failover.Check{{HTTP: "http://127.0.0.1/", Expect: 200, Timeout: duration.Duration(2 * time.Second)}},
			Rise:   3, Fall: 2, MinDwell: duration.Duration(30 * time.Second), MaxFailoversPerHour: 3,
			DNS: failover.DNS{
				Zone: "example.test.", Names: []string{"www.example.test.", "example.test."}, TTL: 30, Mode: "failover",
				TSIGKey: "tandem-key.", TSIGSecretFile: "/etc/tandem/tsig.secret",
			},
		},
		Snapshot: snapshot.Config{
			Dir: "/var/backups/tandem", Every: duration.Duration(time.Hour),
			Keep: snapshot.Keep{Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12}, MySQLDump: true,
		},
	}
	if !sameConfig(c, &want) {
		t.Errorf("example config = %+v, want %+v", *c, want)
	}

	// The example's sync path need not exist here: point it at one that does.
	dir := t.TempDir()
	text := strings.Replace(string(data), `path = "/var/www"`, `path = "`+dir+`"`, 1)
	if text == string(data) {
		t.Fatal(`example config has no path = "/var/www" line to replace`)
	}
	file := filepath.Join(t.TempDir(), "tandem.toml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(file); err != nil {
		t.Errorf("LoadConfig(example with sync path %s): %v", dir, err)
	}
}

// TestExampleConfigHasEveryKey keeps the example complete as sections are
// added: every key Config knows must be set in it, so it is documented.
func TestExampleConfigHasEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data, "tandem.toml")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for f := range typ.Fields() {
			name, ok := tomlName(f)
			if !ok {
				continue
			}
			key := name
			if path != "" {
				key = path + "." + name
			}
			ft := f.Type
			if isTableList(ft) {
				key += ".0"
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != durationType {
				walk(ft, key)
				continue
			}
			if _, ok := c.lines[key]; !ok {
				t.Errorf("example config does not set %s; add it with a comment", displayKey(key))
			}
		}
	}
	walk(configType, "")
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	file := filepath.Join(dir, "tandem.toml")
	mustMkdir(t, www)

	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	config := func(paths ...string) string {
		text := strings.Replace(minimal, "[[sync]]\npath = \"/var/www\"\n", "", 1)
		for _, p := range paths {
			text += "[[sync]]\npath = \"" + p + "\"\n"
		}
		return text
	}

	write(config(www))
	c, err := LoadConfig(file)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if c.SSH.AuthorizedKeys != filepath.Join(dir, "authorized_keys") {
		t.Errorf("authorized_keys = %s, want it next to the config file", c.SSH.AuthorizedKeys)
	}

	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(www, link); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	write("state_dir = \"" + link + "/.tandem\"\n" + config(www, missing, notDir, link+"/sub"))
	mustMkdir(t, filepath.Join(www, "sub"))
	_, err = LoadConfig(file)
	for _, want := range []string{
		file + ":11: sync path " + missing + " does not exist; create it or fix [[sync]].path",
		file + ":13: sync path " + notDir + " is not a directory",
		file + ":15: sync path " + link + "/sub (really " + www + "/sub) overlaps sync path " + www + " (line 9)",
		file + ":9: sync path " + www + " overlaps state_dir " + link + "/.tandem (really " + www + "/.tandem)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig error:\n%v\nwant it to contain:\n%s", err, want)
		}
	}
	// The paths as written do not overlap, so ParseConfig found nothing and
	// the problems above are all.
	if err != nil && strings.Count(err.Error(), "\n") != 3 {
		t.Errorf("LoadConfig error has %d lines, want 4:\n%v", strings.Count(err.Error(), "\n")+1, err)
	}

	// Problems from parsing and from the filesystem come together.
	write(strings.Replace(config(missing), `"alpha"`, `"Alpha"`, 1))
	_, err = LoadConfig(file)
	if err == nil || !strings.Contains(err.Error(), "Alpha") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("LoadConfig error:\n%v\nwant both the node and the sync path problem", err)
	}

	_, err = LoadConfig(filepath.Join(dir, "nope.toml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "pass another file with -c") {
		t.Errorf("LoadConfig(missing file) error %v, want fs.ErrNotExist and what to do", err)
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tandem.toml")
	c, err := ParseConfig([]byte(strings.Replace(minimal, "[ssh]\n", "[ssh]\nauthorized_keys = \"peer.pub\"\n", 1)), file)
	if err != nil {
		t.Fatal(err)
	}
	errs := c.CheckFiles()
	if len(errs) != 2 {
		t.Fatalf("CheckFiles() = %v, want 2 problems", errs)
	}
	for i, want := range []string{
		file + ":3: ssh.authorized_keys file " + filepath.Join(dir, "peer.pub") + " does not exist; put the peer's public key there",
		file + ":2: ssh.known_hosts file " + filepath.Join(dir, "known_hosts") + " does not exist",
	} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("CheckFiles()[%d] = %v, want it to contain %s", i, errs[i], want)
		}
	}

	mustMkdir(t, filepath.Join(dir, "peer.pub"))
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	errs = c.CheckFiles()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "is not a regular file") {
		t.Errorf("CheckFiles() = %v, want authorized_keys reported as not a regular file", errs)
	}
}

func mustMkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseConfig(f *testing.F) {
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(string(data))
	}
	for _, s := range []string{
		minimal,
		"",
		"sync = [{path = \"/a\", exclude = [1, [2], {x = 3}]}]\n[sync.x]\n",
		"[[sync]]\n[sync.exclude]\n[[sync.path]]\n",
		"[ssh]\nheartbeat = 5\ntimeout = \"1h\"\n[ssh.heartbeat]\n",
		"a.b.c = 1\n[peer.name]\n[[peer.x.y]]\n",
		"peer = []\n[[peer]]\n",
		"node = 'x'\nnode = 'y'\n\"\" = 1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseConfig([]byte(text), "f.toml")
		if err != nil {
			var ce *ConfigError
			if c != nil || !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("ParseConfig(%q) = %v, %T %v; want nil and a *ConfigError with problems", text, c, err, err)
			}
			return
		}
		if c.Node == "" || len(c.Peers) != 1 || c.SSH.Timeout < 2*c.SSH.Heartbeat {
			t.Fatalf("ParseConfig(%q) accepted an invalid config: %+v", text, c)
		}
	})
}
