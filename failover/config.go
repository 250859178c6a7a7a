package failover

import (
	"net"
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
	DNS       DNS    `toml:"dns"`
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
	return ps
}
