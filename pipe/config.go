package pipe

import (
	"time"

	"github.com/tandemhost/tandem/internal/duration"
)

// Config is the [ssh] section of the config file.
type Config struct {
	// Listen is the address the embedded SSH server listens on ("0.0.0.0:2222").
	Listen string `toml:"listen"`
	// AuthorizedKeys is an OpenSSH authorized_keys file: the peer's key.
	AuthorizedKeys string `toml:"authorized_keys"`
	// KnownHosts is an OpenSSH known_hosts file with the peer's host key as a
	// "[host]:port ssh-ed25519 AAAA..." entry.
	KnownHosts string `toml:"known_hosts"`
	// Heartbeat is how often a ping goes to the peer (default 1s).
	Heartbeat duration.Duration `toml:"heartbeat"`
	// Timeout is how long the link may stay silent before it is dropped and
	// redialed (default 5s; at least two heartbeats).
	Timeout duration.Duration `toml:"timeout"`
}

// Peer is one [[peer]] entry: the other node of the pair.
type Peer struct {
	// Name is the peer's node name, as it says in its config's node key.
	Name string `toml:"name"`
	// Address is where the peer's SSH server listens ("203.0.113.7:2222").
	Address string `toml:"address"`
}

// Defaults for Config fields left zero.
const (
	DefaultHeartbeat = time.Second
	DefaultTimeout   = 5 * time.Second
)
