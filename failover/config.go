package failover

import (
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/tandemhost/tandem/internal/duration"
	"github.com/tandemhost/tandem/internal/setting"
)

// Config is the [failover] section. Failover is on when Address is set.
type Config struct {
	// Address is this node's public address: what DNS answers when this
	// node is primary.
	Address string `toml:"address"`
	// Priority makes a node the preferred primary: higher wins, ties by
	// node name. Default: 100.
	Priority int `toml:"priority"`
	// Heartbeat is how often the nodes exchange health. Default: "1s".
	Heartbeat duration.Duration `toml:"heartbeat"`
	// DeadAfter is how long the peer may be silent before it counts as
	// dead. Default: "10s".
	DeadAfter duration.Duration `toml:"dead_after"`
	// Witness is the host:port of a `tandem witness`, the third raft voter.
	// Empty: no witness.
	Witness string `toml:"witness"`
	// PeerCheck is a URL of the peer's site reached over the public
	// network: while it answers, a silent link does not promote this node.
	PeerCheck string `toml:"peer_check"`
	// Checks test this node's own service; a node whose checks fail yields
	// the primary role.
	Checks []Check `toml:"checks"`
	// OnPromote and OnDemote are shell commands run after a role change.
	OnPromote string `toml:"on_promote"`
	OnDemote  string `toml:"on_demote"`
	// Rise is how many consecutive passing rounds of checks it takes for
	// this node to count as healthy; Fall how many failing ones to count
	// as unhealthy. Rise must exceed Fall. Defaults: 3 and 2.
	Rise int `toml:"rise"`
	Fall int `toml:"fall"`
	// MinDwell is how long a node holds a role before it changes it on its
	// own (operators and safety demotions do not wait). Default: "30s".
	MinDwell duration.Duration `toml:"min_dwell"`
	// MaxFailoversPerHour caps automatic promotions in any hour; past it
	// only an operator promotes. Default: 3.
	MaxFailoversPerHour int `toml:"max_failovers_per_hour"`
	// Failback lets the preferred node take the role back from a live
	// primary once it is healthy again. Default: false (a recovered node
	// stays standby until `tandem promote`).
	Failback bool `toml:"failback"`
	DNS      DNS  `toml:"dns"`
}

// Check is one health check of this node's own service. Exactly one of
// HTTP, TCP, MySQL and Command is set.
type Check struct {
	HTTP    string            `toml:"http"`    // URL to GET
	Expect  int               `toml:"expect"`  // HTTP status wanted; default 200
	Body    string            `toml:"body"`    // text the HTTP body must contain
	TCP     string            `toml:"tcp"`     // host:port to connect to
	MySQL   bool              `toml:"mysql"`   // ping the [mysql] server
	Command string            `toml:"command"` // shell command that must exit 0
	Timeout duration.Duration `toml:"timeout"` // default 2s
}

// DNS is the [failover.dns] section.
type DNS struct {
	Zone           string   `toml:"zone"`
	Names          []string `toml:"names"`
	TTL            int      `toml:"ttl"`
	Mode           string   `toml:"mode"`   // "failover" (default) or "roundrobin"
	Serve          string   `toml:"serve"`  // listen address of the embedded authoritative server
	Update         string   `toml:"update"` // host:port of the primary name server for RFC 2136 updates
	TSIGKey        string   `toml:"tsig_key"`
	TSIGSecretFile string   `toml:"tsig_secret_file"`
}

// Defaults.
const (
	DefaultPriority  = 100
	DefaultHeartbeat = time.Second
	DefaultDeadAfter = 10 * time.Second
	DefaultTTL       = 30
	// Applied where the machine's parameters are built (Config.Params), so
	// that a config without these keys reads back as written.
	DefaultRise                = 3
	DefaultFall                = 2
	DefaultMinDwell            = 30 * time.Second
	DefaultMaxFailoversPerHour = 3
	DefaultCheckTimeout        = 2 * time.Second
)

// Enabled reports whether the section turns failover on.
func (c *Config) Enabled() bool { return c.Address != "" }

// ApplyDefaults fills the keys left out.
func (c *Config) ApplyDefaults() {
	if c.Priority == 0 {
		c.Priority = DefaultPriority
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = duration.Duration(DefaultHeartbeat)
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = duration.Duration(DefaultDeadAfter)
	}
	if c.DNS.TTL == 0 {
		c.DNS.TTL = DefaultTTL
	}
	if c.DNS.Mode == "" {
		c.DNS.Mode = "failover"
	}
}

// Validate reports every invalid key.
func (c *Config) Validate() []setting.Problem {
	if !c.Enabled() {
		return nil
	}
	var ps []setting.Problem
	if net.ParseIP(c.Address) == nil {
		ps = append(ps, setting.Problem{Key: "address", Msg: "must be an IP address (what DNS answers for this node)"})
	}
	if c.DeadAfter.Std() < 2*c.Heartbeat.Std() {
		ps = append(ps, setting.Problem{Key: "dead_after", Msg: "must be at least twice heartbeat"})
	}
	switch c.DNS.Mode {
	case "failover", "roundrobin", "":
	default:
		ps = append(ps, setting.Problem{Key: "dns.mode", Msg: "must be \"failover\" or \"roundrobin\""})
	}
	if c.Witness != "" {
		if _, port, err := net.SplitHostPort(c.Witness); err != nil || port == "" {
			ps = append(ps, setting.Problem{Key: "witness", Msg: fmt.Sprintf("%q is not host:port; write the witness's SSH address like \"203.0.113.9:2222\"", c.Witness)})
		}
	}
	ps = append(ps, c.validateDamping()...)
	if c.PeerCheck != "" {
		if err := checkURL(c.PeerCheck); err != nil {
			ps = append(ps, setting.Problem{Key: "peer_check", Msg: err.Error() + `; write the peer's site like "http://203.0.113.7/"`})
		}
	}
	for i, ch := range c.Checks {
		for _, p := range ch.validate() {
			p.Key = fmt.Sprintf("checks.%d.%s", i, p.Key)
			ps = append(ps, p)
		}
	}
	return ps
}

func (c *Config) validateDamping() []setting.Problem {
	var ps []setting.Problem
	for _, v := range []struct {
		key string
		n   int
	}{{"rise", c.Rise}, {"fall", c.Fall}, {"max_failovers_per_hour", c.MaxFailoversPerHour}} {
		if v.n < 0 {
			ps = append(ps, setting.Problem{Key: v.key, Msg: "must not be negative"})
		}
	}
	if p := c.Params("", "", false); len(ps) == 0 && p.Rise <= p.Fall {
		ps = append(ps, setting.Problem{Key: "rise", Msg: fmt.Sprintf("rise (%d) must be greater than fall (%d): slow to trust a recovered node, quick to doubt a failing one", p.Rise, p.Fall)})
	}
	return ps
}

// validate reports the check's problems, with keys relative to the check.
func (ch *Check) validate() []setting.Problem {
	var ps []setting.Problem
	kinds := 0
	for _, set := range []bool{ch.HTTP != "", ch.TCP != "", ch.MySQL, ch.Command != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return []setting.Problem{{Key: "http", Msg: "a check needs exactly one of http = URL, tcp = \"host:port\", mysql = true, command = \"...\""}}
	}
	if ch.HTTP != "" {
		if err := checkURL(ch.HTTP); err != nil {
			ps = append(ps, setting.Problem{Key: "http", Msg: err.Error() + `; write it like "http://127.0.0.1/"`})
		}
	}
	if ch.Expect != 0 && (ch.Expect < 100 || ch.Expect > 599) {
		ps = append(ps, setting.Problem{Key: "expect", Msg: fmt.Sprintf("%d is not an HTTP status (100-599)", ch.Expect)})
	}
	if (ch.Expect != 0 || ch.Body != "") && ch.HTTP == "" {
		ps = append(ps, setting.Problem{Key: "expect", Msg: "expect and body apply only to http checks"})
	}
	if ch.TCP != "" {
		if _, port, err := net.SplitHostPort(ch.TCP); err != nil || port == "" {
			ps = append(ps, setting.Problem{Key: "tcp", Msg: fmt.Sprintf("%q is not host:port; write it like \"127.0.0.1:3306\"", ch.TCP)})
		}
	}
	return ps
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	return nil
}

// Params returns the state machine's parameters for this config, with
// defaults for the keys left out.
func (c *Config) Params(node, peer string, force bool) Params {
	p := Params{
		Node: node, Peer: peer, Address: c.Address, Priority: c.Priority,
		DeadAfter:  c.DeadAfter.Or(DefaultDeadAfter),
		Rise:       c.Rise,
		Fall:       c.Fall,
		MinDwell:   c.MinDwell.Or(DefaultMinDwell),
		MaxPerHour: c.MaxFailoversPerHour,
		Failback:   c.Failback,
		PeerCheck:  c.PeerCheck != "",
		RoundRobin: c.DNS.Mode == "roundrobin",
		Force:      force,
		OnPromote:  c.OnPromote,
		OnDemote:   c.OnDemote,
	}
	if p.Rise == 0 {
		p.Rise = DefaultRise
	}
	if p.Fall == 0 {
		p.Fall = DefaultFall
	}
	if p.MaxPerHour == 0 {
		p.MaxPerHour = DefaultMaxFailoversPerHour
	}
	return p
}
