package snapshot

import (
	"path/filepath"
	"time"

	"github.com/tandemhost/tandem/internal/duration"
	"github.com/tandemhost/tandem/internal/setting"
)

// Config is the [snapshot] section. Snapshots are on when Dir is set.
type Config struct {
	// Dir holds the snapshots, one directory each, named by UTC time. It
	// must be on the same filesystem as nothing in particular, but outside
	// every synced tree.
	Dir string `toml:"dir"`
	// Every is how often a snapshot is taken. Default: "1h".
	Every duration.Duration `toml:"every"`
	// Keep says how many snapshots each age bucket keeps.
	Keep Keep `toml:"keep"`
	// MySQLDump adds a consistent dump of the replicated databases to each
	// snapshot when [mysql] is configured.
	MySQLDump bool `toml:"mysql_dump"`
}

// Keep is the retention: the newest snapshot of each of the last Hourly
// hours, Daily days, Weekly weeks and Monthly months is kept.
type Keep struct {
	Hourly  int `toml:"hourly"`
	Daily   int `toml:"daily"`
	Weekly  int `toml:"weekly"`
	Monthly int `toml:"monthly"`
}

// DefaultEvery is how often snapshots are taken when every is not set.
const DefaultEvery = time.Hour

// Enabled reports whether the section turns snapshots on.
func (c *Config) Enabled() bool { return c.Dir != "" }

// ApplyDefaults fills the keys left out.
func (c *Config) ApplyDefaults() {
	if c.Every == 0 {
		c.Every = duration.Duration(DefaultEvery)
	}
	if c.Keep == (Keep{}) {
		c.Keep = Keep{Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12}
	}
}

// Validate reports every invalid key.
func (c *Config) Validate() []setting.Problem {
	if !c.Enabled() {
		return nil
	}
	var ps []setting.Problem
	if !filepath.IsAbs(c.Dir) {
		ps = append(ps, setting.Problem{Key: "dir", Msg: "must be an absolute path"})
	}
	for _, k := range []struct {
		name string
		n    int
	}{{"keep.hourly", c.Keep.Hourly}, {"keep.daily", c.Keep.Daily}, {"keep.weekly", c.Keep.Weekly}, {"keep.monthly", c.Keep.Monthly}} {
		if k.n < 0 {
			ps = append(ps, setting.Problem{Key: k.name, Msg: "must be 0 or more"})
		}
	}
	return ps
}
