package main

import (
	"bytes"
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/tandemhost/tandem/binlog"
	"github.com/tandemhost/tandem/failover"
	"github.com/tandemhost/tandem/internal/duration"
	"github.com/tandemhost/tandem/internal/setting"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/snapshot"
	"github.com/tandemhost/tandem/watcher"
)

// Config is the whole config file. Each part owns its section's type;
// Config only composes them and checks what spans sections (the peer is not
// this node, no sync tree holds the state dir, ...).
type Config struct {
	// Node is this node's name: [a-z0-9][a-z0-9-]{0,62}.
	Node string `toml:"node"`
	// StateDir holds the index, the node key and the control socket.
	StateDir string `toml:"state_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string           `toml:"log_level"`
	SSH      pipe.Config      `toml:"ssh"`
	Peers    []pipe.Peer      `toml:"peer"`
	Sync     []watcher.Config `toml:"sync"`
	MySQL    binlog.Config    `toml:"mysql"`
	Failover failover.Config  `toml:"failover"`
	Snapshot snapshot.Config  `toml:"snapshot"`

	// file is the config file's path as the user gave it, for messages.
	file string
	// lines maps a key's path ("ssh.listen", "sync.1.path", "peer.0") to the
	// line that sets it, so that problems found after decoding still point
	// into the file.
	lines map[string]int
}

// DefaultConfigPath is where the config file is when -c is not given.
const DefaultConfigPath = "/etc/tandem/tandem.toml"

// Defaults for keys left out of the config file.
const (
	DefaultStateDir = "/var/lib/tandem"
	DefaultLogLevel = "info"
	// Key files default to names next to the config file: with the config at
	// DefaultConfigPath they are /etc/tandem/authorized_keys and
	// /etc/tandem/known_hosts.
	DefaultAuthorizedKeys = "authorized_keys"
	DefaultKnownHosts     = "known_hosts"
)

// nodeName is what node and peer names look like: they end up in the names
// of conflict copies and in logs, so they stay short and plain.
var nodeName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// A Problem is one thing wrong with a config file.
type Problem struct {
	File string // the config file, as given
	Line int    // 1-based; 0 when the key is not in the file
	Key  string // the TOML key concerned ("ssh.listen", "sync.path"); "" if none
	Msg  string // what is wrong and what to do; names the key itself
}

// Error returns "FILE:LINE: MSG", or "FILE: MSG" when the line is unknown.
func (p *Problem) Error() string {
	file := cmp.Or(p.File, "config")
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", file, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", file, p.Msg)
}

// ConfigError lists every problem found in a config file, so that the user
// can fix them all in one go.
type ConfigError struct {
	Problems []*Problem // sorted: problems without a line first, then by line
}

// Error returns one problem per line.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, for errors.As.
func (e *ConfigError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// newConfigError returns nil for no problems, else a *ConfigError with the
// problems in file order.
func newConfigError(problems []*Problem) error {
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b *Problem) int { return cmp.Compare(a.Line, b.Line) })
	return &ConfigError{Problems: problems}
}

// LoadConfig reads the config file at path, applies defaults and checks
// it, including that the sync trees exist (CheckPaths). It does not require
// the key files to exist, since `tandem init` runs before they do: commands
// that need them call CheckFiles. Problems come back together as a
// *ConfigError.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w; create it (tandem.example.toml is a commented example) or pass another file with -c", err)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, problems := parseConfig(data, path)
	if c != nil {
		problems = append(problems, c.checkPaths()...)
	}
	if err := newConfigError(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseConfig decodes a config file's contents, applies defaults and checks
// everything that can be checked without looking at the filesystem. path is
// used in messages, and relative key file paths are resolved against its
// directory. Problems come back together as a *ConfigError.
func ParseConfig(data []byte, path string) (*Config, error) {
	c, problems := parseConfig(data, path)
	if err := newConfigError(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// parseConfig returns the config, or nil if it could not be decoded, and
// every problem found.
func parseConfig(data []byte, path string) (*Config, []*Problem) {
	lines, problems, syntaxOK := scanConfig(data, path)
	if syntaxOK && len(problems) > 0 {
		return nil, problems
	}
	c := &Config{file: path, lines: lines}
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(c); err != nil {
		// A syntax error, or something scanConfig does not check (a key
		// set twice, a table redefined). go-toml knows where it is.
		return nil, decodeProblems(path, err)
	}
	if !syntaxOK {
		// The scanner and the decoder share a parser; they cannot disagree.
		return nil, []*Problem{{File: path, Msg: "the file is not valid TOML"}}
	}
	c.applyDefaults()
	return c, c.validate()
}

// decodeProblems turns a go-toml error into problems with positions.
func decodeProblems(file string, err error) []*Problem {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var problems []*Problem
		for _, e := range strict.Errors {
			line, _ := e.Position()
			key := strings.Join(e.Key(), ".")
			problems = append(problems, &Problem{File: file, Line: line, Key: key, Msg: "unknown key " + key})
		}
		return problems
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := "invalid TOML: " + strings.TrimPrefix(de.Error(), "toml: ")
		return []*Problem{{File: file, Line: line, Key: strings.Join(de.Key(), "."), Msg: msg}}
	}
	return []*Problem{{File: file, Msg: err.Error()}}
}

func (c *Config) applyDefaults() {
	c.StateDir = cmp.Or(c.StateDir, DefaultStateDir)
	c.LogLevel = cmp.Or(c.LogLevel, DefaultLogLevel)
	dir := filepath.Dir(c.file)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	c.SSH.AuthorizedKeys = relativeTo(dir, cmp.Or(c.SSH.AuthorizedKeys, DefaultAuthorizedKeys))
	c.SSH.KnownHosts = relativeTo(dir, cmp.Or(c.SSH.KnownHosts, DefaultKnownHosts))
	if c.SSH.Heartbeat == 0 {
		c.SSH.Heartbeat = duration.Duration(pipe.DefaultHeartbeat)
	}
	if c.SSH.Timeout == 0 {
		c.SSH.Timeout = duration.Duration(pipe.DefaultTimeout)
	}
	c.MySQL.ApplyDefaults()
	c.Failover.ApplyDefaults()
	c.Snapshot.ApplyDefaults()
}

// relativeTo resolves a relative path against dir.
func relativeTo(dir, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(dir, path)
}

// problems collects problems found in a decoded Config.
type problems struct {
	c    *Config
	list []*Problem
}

// add records a problem about the key at path ("sync.1.path"), pointing at
// the line that sets it or, if it is not set, at its table's header.
func (ps *problems) add(path, format string, args ...any) {
	ps.list = append(ps.list, &Problem{File: ps.c.file, Line: ps.c.line(path), Key: displayKey(path), Msg: fmt.Sprintf(format, args...)})
}

// line returns the line that sets the key at path, or that opens the nearest
// enclosing table; 0 if none is in the file.
func (c *Config) line(path string) int {
	for {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

// displayKey drops the indexes from a key's path: "sync.1.path" is
// "sync.path" in the file.
func displayKey(path string) string {
	parts := strings.Split(path, ".")
	parts = slices.DeleteFunc(parts, func(p string) bool {
		_, err := strconv.Atoi(p)
		return err == nil
	})
	return strings.Join(parts, ".")
}

func (c *Config) validate() []*Problem {
	ps := &problems{c: c}

	switch {
	case c.Node == "":
		ps.add("node", `node is missing; name this server at the top of the file, like node = "alpha" (the name its peer has in [[peer]])`)
	case !nodeName.MatchString(c.Node):
		ps.add("node", "node %q is not a valid name; use 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit", c.Node)
	}

	if !filepath.IsAbs(c.StateDir) {
		ps.add("state_dir", "state_dir %q is not an absolute path; write it from the root, like %q", c.StateDir, DefaultStateDir)
	} else {
		c.StateDir = filepath.Clean(c.StateDir)
	}

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		ps.add("log_level", "log_level %q is not one of debug, info, warn, error", c.LogLevel)
	}

	c.validateSSH(ps)
	c.validatePeers(ps)
	c.validateSync(ps)
	for _, part := range []struct {
		section  string
		problems []setting.Problem
	}{
		{"mysql", c.MySQL.Validate()},
		{"failover", c.Failover.Validate()},
		{"snapshot", c.Snapshot.Validate()},
	} {
		for _, p := range part.problems {
			path := part.section
			if p.Key != "" {
				path += "." + p.Key
			}
			ps.add(path, "%s: %s", displayKey(path), p.Msg)
		}
	}
	return ps.list
}

func (c *Config) validateSSH(ps *problems) {
	if c.SSH.Listen == "" {
		ps.add("ssh.listen", `ssh.listen is missing; set listen = "0.0.0.0:2222" in [ssh], the address this node's SSH server listens on`)
	} else if err := checkHostPort(c.SSH.Listen, false); err != nil {
		ps.add("ssh.listen", `ssh.listen %q %v; write it like "0.0.0.0:2222" or "[::]:2222"`, c.SSH.Listen, err)
	}
	if hb, to := c.SSH.Heartbeat.Std(), c.SSH.Timeout.Std(); to < 2*hb {
		key := "ssh.timeout"
		if _, set := c.lines[key]; !set {
			key = "ssh.heartbeat" // the default timeout is not in the file
		}
		ps.add(key, "ssh.timeout (%v) is less than twice ssh.heartbeat (%v), so one late heartbeat would drop the link; raise timeout to at least %v or lower heartbeat", to, hb, 2*hb)
	}
}

func (c *Config) validatePeers(ps *problems) {
	if c.Node == witnessName {
		// A witness has both nodes as peers, and nothing to sync.
		if len(c.Peers) != 2 {
			ps.add("peer", `a witness (node = "witness") needs exactly two [[peer]] tables, one per node, each with name and address`)
		}
		if len(c.Sync) > 0 || c.MySQL.Enabled() || c.Failover.Enabled() || c.Snapshot.Enabled() {
			ps.add("node", `a witness keeps no data and runs no failover of its own: remove [[sync]], [mysql], [failover] and [snapshot] from its config`)
		}
		if len(c.Peers) != 2 {
			return
		}
	}
	switch n := len(c.Peers); {
	case n == 2 && c.Node == witnessName:
	case n == 0:
		ps.add("peer", `[[peer]] is missing; add a [[peer]] table with the other node's name and address, like name = "beta" and address = "203.0.113.7:2222"`)
	case n == 1:
	default:
		ps.add("peer.1", "there are %d [[peer]] tables; tandem pairs exactly two nodes, so keep only the other node's", len(c.Peers))
	}
	for i, p := range c.Peers {
		at := "peer." + strconv.Itoa(i)
		switch {
		case p.Name == "":
			ps.add(at+".name", `[[peer]] name is missing; set name to the peer's node name, like name = "beta"`)
		case !nodeName.MatchString(p.Name):
			ps.add(at+".name", "peer name %q is not a valid name; use 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit", p.Name)
		case p.Name == c.Node:
			ps.add(at+".name", "peer name %q is this node's own name; set it to the other node's name (node = ... in its config)", p.Name)
		}
		if p.Address == "" {
			ps.add(at+".address", `[[peer]] address is missing; set it to where the peer's SSH server listens, like address = "203.0.113.7:2222"`)
		} else if err := checkHostPort(p.Address, true); err != nil {
			ps.add(at+".address", `peer address %q %v; write it like "203.0.113.7:2222" or "beta.example.com:2222"`, p.Address, err)
		}
	}
}

// checkHostPort says what is wrong with a host:port address, in words that
// follow the address in a message. needHost is false for listen addresses,
// where an empty host means every interface.
func checkHostPort(addr string, needHost bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("is not host:port (IPv6 hosts go in brackets)")
	}
	if needHost && host == "" {
		return errors.New("has no host")
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("has an invalid host %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("has port %q, which is not a number from 1 to 65535", port)
	}
	return nil
}

func (c *Config) validateSync(ps *problems) {
	type root struct {
		path string
		at   string
	}
	var roots []root
	for i := range c.Sync {
		s := &c.Sync[i]
		at := "sync." + strconv.Itoa(i)
		for j, pat := range s.Exclude {
			if strings.TrimSpace(pat) == "" {
				ps.add(at+".exclude", "[[sync]] exclude pattern %d is empty; remove it or write a pattern like \"*.tmp\"", j+1)
			}
		}
		switch {
		case s.Path == "":
			ps.add(at+".path", `[[sync]] path is missing; set it to the tree to keep in sync, like path = "/var/www"`)
			continue
		case !filepath.IsAbs(s.Path):
			ps.add(at+".path", "sync path %q is not an absolute path; write it from the root, like \"/var/www\"", s.Path)
			continue
		}
		s.Path = filepath.Clean(s.Path)
		if filepath.IsAbs(c.StateDir) {
			switch {
			case s.Path == c.StateDir || within(s.Path, c.StateDir):
				ps.add(at+".path", "sync path %s is inside state_dir %s, where tandem keeps its own files; sync another tree or move state_dir", s.Path, c.StateDir)
			case within(c.StateDir, s.Path):
				key := "state_dir"
				if _, set := c.lines[key]; !set {
					key = at + ".path" // point at the cause: the default is not in the file
				}
				ps.add(key, "state_dir %s is inside sync path %s, so tandem's own files would be synced to the peer; move state_dir out of the tree", c.StateDir, s.Path)
			}
		}
		for _, r := range roots {
			switch {
			case s.Path == r.path:
				ps.add(at+".path", "sync path %s is listed twice (also at line %d); remove one of the [[sync]] tables", s.Path, c.line(r.at))
			case within(s.Path, r.path):
				ps.add(at+".path", "sync path %s is inside sync path %s (line %d); a file can belong to only one tree, so drop one of them", s.Path, r.path, c.line(r.at))
			case within(r.path, s.Path):
				ps.add(at+".path", "sync path %s contains sync path %s (line %d); a file can belong to only one tree, so drop one of them", s.Path, r.path, c.line(r.at))
			}
		}
		roots = append(roots, root{s.Path, at + ".path"})
	}
}

// within reports whether path is strictly below dir; both are clean and
// absolute.
func within(path, dir string) bool {
	if dir == "/" {
		return path != "/"
	}
	return strings.HasPrefix(path, dir+"/")
}

// CheckPaths checks the sync trees on this machine: each exists and is a
// directory, and none holds another or the state dir once symlinks are
// resolved. LoadConfig calls it; the returned errors are *Problem.
func (c *Config) CheckPaths() []error { return problemErrors(c.checkPaths()) }

func (c *Config) checkPaths() []*Problem {
	ps := &problems{c: c}
	type root struct {
		path, real, at string
	}
	var roots []root
	stateReal := realPath(c.StateDir)
	for i, s := range c.Sync {
		if !filepath.IsAbs(s.Path) {
			continue // validate has said so
		}
		at := "sync." + strconv.Itoa(i) + ".path"
		fi, err := os.Stat(s.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ps.add(at, "sync path %s does not exist; create it or fix [[sync]].path", s.Path)
			continue
		case err != nil:
			ps.add(at, "sync path %s: %v", s.Path, err)
			continue
		case !fi.IsDir():
			ps.add(at, "sync path %s is not a directory; tandem syncs directory trees, so point [[sync]].path at one", s.Path)
			continue
		}
		// Only what symlinks hid: validate has compared the paths as written.
		r := root{path: s.Path, real: realPath(s.Path), at: at}
		if filepath.IsAbs(c.StateDir) && !overlaps(s.Path, c.StateDir) && overlaps(r.real, stateReal) {
			ps.add(at, "sync path %s overlaps state_dir %s, where tandem keeps its own files; sync another tree or move state_dir",
				really(s.Path, r.real), really(c.StateDir, stateReal))
		}
		for _, o := range roots {
			if !overlaps(s.Path, o.path) && overlaps(r.real, o.real) {
				ps.add(at, "sync path %s overlaps sync path %s (line %d); a file can belong to only one tree, so drop one of them",
					really(s.Path, r.real), really(o.path, o.real), c.line(o.at))
			}
		}
		roots = append(roots, r)
	}
	return ps.list
}

// overlaps reports whether a and b are the same or one holds the other.
func overlaps(a, b string) bool { return a == b || within(a, b) || within(b, a) }

// realPath resolves symlinks in path. Of a path that does not exist (yet),
// it resolves the part that does.
func realPath(path string) string {
	rest := ""
	for p := path; ; {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// really names a path and, if symlinks make it another, that one.
func really(path, real string) string {
	if real == path {
		return path
	}
	return path + " (really " + real + ")"
}

// CheckFiles checks that the SSH key files exist. `tandem run` and
// `tandem check` need them; `tandem init`, which runs before the node is
// paired, does not. The returned errors are *Problem.
func (c *Config) CheckFiles() []error {
	ps := &problems{c: c}
	checkFile := func(key, path, fix string) {
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ps.add(key, "%s file %s does not exist; %s, or fix %s", key, path, fix, key)
		case err != nil:
			ps.add(key, "%s: %v", key, err)
		case !fi.Mode().IsRegular():
			ps.add(key, "%s %s is not a regular file; point %s at an OpenSSH-format file", key, path, key)
		}
	}
	checkFile("ssh.authorized_keys", c.SSH.AuthorizedKeys, "put the peer's public key there (the line `tandem init` prints on the peer)")
	checkFile("ssh.known_hosts", c.SSH.KnownHosts, `put the peer's host key there as "[host]:port ssh-ed25519 AAAA..."`)
	return problemErrors(ps.list)
}

func problemErrors(list []*Problem) []error {
	var errs []error
	for _, p := range list {
		errs = append(errs, p)
	}
	return errs
}

// The scan: before go-toml decodes the file, scanConfig walks its syntax tree
// against the shape of Config. go-toml stops at the first value of the wrong
// type and words it in Go types; the scan reports every unknown key and
// wrong value at once, in the words of the file, and rejects an integer
// duration, which go-toml would silently take as nanoseconds. It also
// records each key's line for later messages. The syntax tree comes from
// go-toml's unstable package, whose API may change with a go-toml upgrade.

var (
	configType   = reflect.TypeFor[Config]()
	durationType = reflect.TypeFor[duration.Duration]()
	textType     = reflect.TypeFor[encoding.TextUnmarshaler]()
)

type scanner struct {
	p        unstable.Parser
	file     string
	newlines []int          // offsets of '\n' in the document
	lines    map[string]int // as Config.lines
	arrays   map[string]int // the number of [[x]] tables seen so far, by path
	problems []*Problem
}

// scope is where the key-values after a table header go.
type scope struct {
	typ  reflect.Type // nil: an unknown table, whose keys are not checked
	path []string     // as in Config.lines, with indexes: "sync", "0"
	key  []string     // the TOML key: "sync"
}

// scanConfig checks data against Config's shape. syntaxOK is false when data
// is not valid TOML; the decoder then says where.
func scanConfig(data []byte, file string) (lines map[string]int, problems []*Problem, syntaxOK bool) {
	s := &scanner{file: file, lines: map[string]int{}, arrays: map[string]int{}}
	for i, b := range data {
		if b == '\n' {
			s.newlines = append(s.newlines, i)
		}
	}
	s.p.Reset(data)
	cur := scope{typ: configType}
	for s.p.NextExpression() {
		e := s.p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			if cur.typ != nil {
				s.keyValue(cur, e)
			}
		case unstable.Table, unstable.ArrayTable:
			cur = s.header(e)
		}
	}
	if s.p.Error() != nil {
		return nil, nil, false
	}
	return s.lines, s.problems, true
}

// lineOf returns the line of a node that has a range, else def.
func (s *scanner) lineOf(n *unstable.Node, def int) int {
	if n == nil || n.Raw.Length == 0 {
		return def
	}
	i, _ := slices.BinarySearch(s.newlines, int(n.Raw.Offset))
	return i + 1
}

// keyOf returns the parts of a key-value's or header's key and its line.
func (s *scanner) keyOf(n *unstable.Node) (parts []string, line int) {
	it := n.Key()
	for it.Next() {
		if line == 0 {
			line = s.lineOf(it.Node(), 0)
		}
		parts = append(parts, string(it.Node().Data))
	}
	return parts, line
}

func (s *scanner) add(line int, key []string, format string, args ...any) {
	s.problems = append(s.problems, &Problem{File: s.file, Line: line, Key: strings.Join(key, "."), Msg: fmt.Sprintf(format, args...)})
}

func (s *scanner) header(e *unstable.Node) scope {
	key, line := s.keyOf(e)
	typ, path := configType, []string(nil)
	for i, part := range key {
		if isTableList(typ) {
			// [a.b] after [[a]] is about the last a.
			n := max(s.arrays[strings.Join(path, ".")], 1)
			path = append(path, strconv.Itoa(n-1))
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			s.mismatch(line, key[:i], typ, "a table")
			return scope{}
		}
		ft, ok := fieldType(typ, part)
		if !ok {
			s.unknown(line, key[:i], path, typ, part, true)
			return scope{}
		}
		typ = ft
		path = append(path, part)
	}
	name := strings.Join(key, ".")
	switch {
	case e.Kind == unstable.ArrayTable && isTableList(typ):
		p := strings.Join(path, ".")
		n := s.arrays[p]
		s.arrays[p] = n + 1
		path = append(path, strconv.Itoa(n))
		typ = typ.Elem()
	case e.Kind == unstable.Table && typ.Kind() == reflect.Struct:
	case e.Kind == unstable.Table && isTableList(typ):
		s.add(line, key, "[%s] must be written [[%s]], with double brackets: each one is an entry of a list", name, name)
		return scope{}
	case e.Kind == unstable.ArrayTable && typ.Kind() == reflect.Struct:
		s.add(line, key, "[[%s]] must be written [%s], with single brackets: there is only one", name, name)
		return scope{}
	default:
		s.mismatch(line, key, typ, "a table")
		return scope{}
	}
	s.lines[strings.Join(path, ".")] = line
	return scope{typ: typ, path: path, key: key}
}

func (s *scanner) keyValue(in scope, kv *unstable.Node) {
	parts, line := s.keyOf(kv)
	typ := in.typ
	path := slices.Clone(in.path)
	key := slices.Clone(in.key)
	for _, part := range parts {
		if typ.Kind() != reflect.Struct {
			s.mismatch(line, key, typ, "a table")
			return
		}
		ft, ok := fieldType(typ, part)
		if !ok {
			s.unknown(line, key, path, typ, part, false)
			return
		}
		typ = ft
		path = append(path, part)
		key = append(key, part)
	}
	s.lines[strings.Join(path, ".")] = line
	s.value(typ, path, key, kv.Value(), line)
}

// value checks that the TOML value v fits the Go type typ.
func (s *scanner) value(typ reflect.Type, path, key []string, v *unstable.Node, line int) {
	line = s.lineOf(v, line)
	if reflect.PointerTo(typ).Implements(textType) {
		if v.Kind != unstable.String {
			s.mismatch(line, key, typ, kindName(v.Kind))
			return
		}
		if err := reflect.New(typ).Interface().(encoding.TextUnmarshaler).UnmarshalText(v.Data); err != nil {
			s.add(line, key, "%s: %v", strings.Join(key, "."), err)
		}
		return
	}
	ok := true
	switch typ.Kind() {
	case reflect.String:
		ok = v.Kind == unstable.String
	case reflect.Bool:
		ok = v.Kind == unstable.Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		ok = v.Kind == unstable.Integer
	case reflect.Float32, reflect.Float64:
		ok = v.Kind == unstable.Float || v.Kind == unstable.Integer
	case reflect.Slice:
		if v.Kind != unstable.Array {
			ok = false
			break
		}
		i := 0
		for it := v.Children(); it.Next(); {
			el := it.Node()
			if el.Kind == unstable.Comment {
				continue
			}
			elKey := slices.Clone(key)
			elKey[len(elKey)-1] += "[" + strconv.Itoa(i) + "]"
			s.value(typ.Elem(), append(slices.Clip(path), strconv.Itoa(i)), elKey, el, line)
			i++
		}
		return
	case reflect.Struct:
		if v.Kind != unstable.InlineTable {
			ok = false
			break
		}
		s.lines[strings.Join(path, ".")] = line
		for it := v.Children(); it.Next(); {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				s.keyValue(scope{typ: typ, path: path, key: key}, kv)
			}
		}
		return
	}
	if !ok {
		s.mismatch(line, key, typ, kindName(v.Kind))
	}
}

// unknown reports key part, not a field of typ, the table at key/path.
func (s *scanner) unknown(line int, key, path []string, typ reflect.Type, part string, isTable bool) {
	full := strings.Join(append(slices.Clone(key), part), ".")
	what := "key " + full
	if isTable {
		what = "table [" + full + "]"
	}
	var known []string
	for f := range typ.Fields() {
		name, ok := tomlName(f)
		if !ok {
			continue
		}
		switch {
		case isTableList(f.Type):
			name = "[[" + name + "]]"
		case f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textType):
			name = "[" + name + "]"
		}
		known = append(known, name)
	}
	hint := ""
	if near := nearest(part, known); near != "" {
		hint = " (did you mean " + near + "?)"
	}
	if _, top := fieldType(configType, part); top && len(key) > 0 && !isTable {
		// The classic: a top-level key written below a table header.
		hint = " (" + part + " is a top-level key: move it above the first [table])"
	}
	where := "top-level keys"
	if len(key) > 0 {
		where = "keys in " + tableName(key, path)
	}
	s.add(line, append(slices.Clone(key), part), "unknown %s%s; known %s: %s", what, hint, where, strings.Join(known, ", "))
}

// tableName is how the file spells the table at key: [ssh], [[sync]].
func tableName(key, path []string) string {
	name := strings.Join(key, ".")
	if strings.HasSuffix(name, "]") { // an inline table in an array
		return name
	}
	if _, err := strconv.Atoi(path[len(path)-1]); err == nil {
		return "[[" + name + "]]"
	}
	return "[" + name + "]"
}

// nearest returns the known name closest to name if it looks like a typo.
func nearest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		bare := strings.Trim(k, "[]")
		if d := editDistance(name, bare); d < bestDist && d < len(bare) {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (s *scanner) mismatch(line int, key []string, typ reflect.Type, got string) {
	name := strings.Join(key, ".")
	if name == "" {
		name = "the top level"
	}
	s.add(line, key, "%s must be %s, not %s", name, expected(typ, key), got)
}

// expected describes what a value of typ looks like in the file.
func expected(typ reflect.Type, key []string) string {
	name := strings.Join(key, ".")
	switch {
	case typ == durationType:
		return `a duration in quotes, like "5s" or "250ms"`
	case reflect.PointerTo(typ).Implements(textType):
		return "a string in quotes"
	case isTableList(typ):
		return "a list of [[" + name + "]] tables"
	}
	switch typ.Kind() {
	case reflect.String:
		return "a string in quotes"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.String {
			return `an array of strings, like ["a", "b"]`
		}
		return "an array"
	case reflect.Struct:
		return "a table [" + name + "]"
	}
	return typ.String()
}

func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Bool:
		return "a boolean"
	case unstable.Integer:
		return "a number"
	case unstable.Float:
		return "a decimal number"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "an inline table"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	}
	return "a " + k.String()
}

func isTableList(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct &&
		!reflect.PointerTo(t.Elem()).Implements(textType)
}

// fieldType returns the type of typ's field that the TOML key name sets.
func fieldType(typ reflect.Type, name string) (reflect.Type, bool) {
	for f := range typ.Fields() {
		if n, ok := tomlName(f); ok && n == name {
			return f.Type, true
		}
	}
	return nil, false
}

// tomlName returns the key a struct field is set by, and false for fields
// the file cannot set.
func tomlName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if tag == "-" {
		return "", false
	}
	return cmp.Or(tag, f.Name), true
}
