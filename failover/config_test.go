package failover

import (
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/duration"
)

func TestValidate(t *testing.T) {
	base := func() Config {
		c := Config{Address: "198.51.100.1", Checks: []Check{{HTTP: "http://127.0.0.1/", Expect: 200}}}
		c.ApplyDefaults()
		return c
	}
	if ps := (&Config{}).Validate(); ps != nil {
		t.Errorf("Validate(off) = %v, want nothing", ps)
	}
	if c := base(); c.Validate() != nil {
		t.Errorf("Validate(good) = %v", c.Validate())
	}
	tests := []struct {
		name string
		mod  func(c *Config)
		key  string
		msg  string
	}{
		{"rise not above fall", func(c *Config) { c.Rise, c.Fall = 2, 3 }, "rise", "greater than fall"},
		{"default rise vs fall", func(c *Config) { c.Fall = 3 }, "rise", "rise (3) must be greater than fall (3)"},
		{"negative cap", func(c *Config) { c.MaxFailoversPerHour = -1 }, "max_failovers_per_hour", "negative"},
		{"bad peer_check", func(c *Config) { c.PeerCheck = "203.0.113.7" }, "peer_check", "not an http"},
		{"two kinds", func(c *Config) { c.Checks[0].TCP = "127.0.0.1:80" }, "checks.0.http", "exactly one"},
		{"no kind", func(c *Config) { c.Checks = append(c.Checks, Check{}) }, "checks.1.http", "exactly one"},
		{"bad status", func(c *Config) { c.Checks[0].Expect = 2000 }, "checks.0.expect", "not an HTTP status"},
		{"body on tcp", func(c *Config) { c.Checks = []Check{{TCP: "127.0.0.1:3306", Body: "x"}} }, "checks.0.expect", "only to http"},
		{"witness no port", func(c *Config) { c.Witness = "witness.example" }, "witness", "host:port"},
		{"tcp no port", func(c *Config) { c.Checks = []Check{{TCP: "127.0.0.1"}} }, "checks.0.tcp", "host:port"},
	}
	for _, tt := range tests {
		c := base()
		tt.mod(&c)
		ps := c.Validate()
		found := false
		for _, p := range ps {
			if p.Key == tt.key && strings.Contains(p.Msg, tt.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: Validate = %v, want %s: ...%s...", tt.name, ps, tt.key, tt.msg)
		}
	}
}

func TestParamsDefaults(t *testing.T) {
	c := Config{Address: "198.51.100.1", PeerCheck: "http://203.0.113.7/", DNS: DNS{Mode: "roundrobin"}}
	c.ApplyDefaults()
	p := c.Params("alpha", "beta", true)
	want := Params{Node: "alpha", Peer: "beta", Address: "198.51.100.1", Priority: DefaultPriority,
		DeadAfter: DefaultDeadAfter, Rise: DefaultRise, Fall: DefaultFall, MinDwell: DefaultMinDwell,
		MaxPerHour: DefaultMaxFailoversPerHour, PeerCheck: true, RoundRobin: true, Force: true}
	if p != want {
		t.Errorf("Params = %+v\nwant %+v", p, want)
	}
	c.Rise, c.Fall, c.MinDwell, c.MaxFailoversPerHour = 5, 1, duration.Duration(time.Minute), 1
	if p := c.Params("alpha", "beta", false); p.Rise != 5 || p.Fall != 1 || p.MinDwell != time.Minute || p.MaxPerHour != 1 {
		t.Errorf("Params with keys set = %+v", p)
	}
}
