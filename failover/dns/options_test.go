package dns

import (
	"context"
	"strings"
	"testing"
)

// Both ways of moving DNS satisfy the call the failover runner makes.
var (
	_ interface {
		Point(context.Context, []string) error
	} = (*Updater)(nil)
	_ interface {
		Point(context.Context, []string) error
	} = (*Server)(nil)
)

func TestNewUpdaterRejects(t *testing.T) {
	good := UpdaterOptions{Server: "127.0.0.1:53", Zone: "example.test.", Names: []string{"www.example.test."}, TSIGKey: "k.", TSIGSecret: "c2VjcmV0"}
	tests := []struct {
		name   string
		change func(*UpdaterOptions)
		want   string
	}{
		{"no server", func(o *UpdaterOptions) { o.Server = "" }, "primary name server"},
		{"bad server", func(o *UpdaterOptions) { o.Server = "1.2.3.4:5:6" }, "too many colons"},
		{"no zone", func(o *UpdaterOptions) { o.Zone = "" }, "dns zone: empty"},
		{"no names", func(o *UpdaterOptions) { o.Names = nil }, "list the names"},
		{"name outside zone", func(o *UpdaterOptions) { o.Names = []string{"www.example.com"} }, "outside zone example.test."},
		{"negative ttl", func(o *UpdaterOptions) { o.TTL = -1 }, "negative"},
		{"key without secret", func(o *UpdaterOptions) { o.TSIGSecret = "" }, "set both"},
		{"secret not base64", func(o *UpdaterOptions) { o.TSIGSecret = "!!" }, "not base64"},
		{"unknown algorithm", func(o *UpdaterOptions) { o.TSIGAlgorithm = "hmac-md4" }, "use hmac-sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.change(&o)
			if _, err := NewUpdater(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewUpdater(%+v) = %v, want an error containing %q", o, err, tt.want)
			}
		})
	}
	u, err := NewUpdater(UpdaterOptions{Server: "ns1.example.net", Zone: "Example.TEST", Names: []string{"WWW.example.test", "www.example.test."}})
	if err != nil {
		t.Fatalf("NewUpdater without port or TSIG: %v", err)
	}
	if u.server != "ns1.example.net:53" || u.zone != "example.test." || len(u.names) != 1 || u.names[0] != "www.example.test." || u.ttl != DefaultTTL {
		t.Errorf("defaults: server %q zone %q names %q ttl %d", u.server, u.zone, u.names, u.ttl)
	}
	if err := u.Point(context.Background(), []string{"192.0.2.1", "not-an-ip"}); err == nil || !strings.Contains(err.Error(), `"not-an-ip": not an IP address`) {
		t.Errorf("Point with a bad address = %v", err)
	}
	if err := u.Point(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "no addresses") {
		t.Errorf("Point with no address = %v", err)
	}
}

func TestNewServerRejects(t *testing.T) {
	good := ServerOptions{Addr: "127.0.0.1:0", Zone: "example.test.", Names: []string{"www.example.test."}}
	tests := []struct {
		name   string
		change func(*ServerOptions)
		want   string
	}{
		{"no addr", func(o *ServerOptions) { o.Addr = "" }, "set serve"},
		{"addr without port", func(o *ServerOptions) { o.Addr = "127.0.0.1" }, "missing port"},
		{"name outside zone", func(o *ServerOptions) { o.Names = []string{"example.com."} }, "outside zone"},
		{"glue for a non-NS", func(o *ServerOptions) { o.Glue = map[string][]string{"www.example.test.": {"192.0.2.1"}} }, "only NS names"},
		{"bad glue", func(o *ServerOptions) { o.Glue = map[string][]string{"ns1.example.test.": {"x"}} }, "not an IP"},
		{"udp size", func(o *ServerOptions) { o.MaxUDPSize = 100 }, "want 512..65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.change(&o)
			if _, err := NewServer(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewServer(%+v) = %v, want an error containing %q", o, err, tt.want)
			}
		})
	}
}

func TestServerListenErrors(t *testing.T) {
	a := startServer(t, ServerOptions{})
	b, err := NewServer(ServerOptions{Addr: a.Addr(), Zone: "example.test.", Names: []string{"www.example.test."}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(t.Context()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Serve on a taken port = %v, want address already in use", err)
	}
}
