package bindtest

// This test starts a real named and checks the helper's own promises.

import (
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestStart(t *testing.T) {
	s := Start(t, Options{Zone: "Site.Test", Records: []string{"www 30 IN A 192.0.2.1", "v6 30 IN AAAA 2001:db8::1"}})
	if s.Zone != "site.test." {
		t.Errorf("Zone = %q, want site.test.", s.Zone)
	}
	if got := s.Addrs("www.site.test."); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("www = %v", got)
	}
	if got := s.Addrs("v6.site.test."); !slices.Equal(got, []string{"2001:db8::1"}) {
		t.Errorf("v6 = %v", got)
	}
	if got := s.Addrs("nope.site.test."); len(got) != 0 {
		t.Errorf("nope = %v, want nothing", got)
	}
	serial := s.Serial()
	s.Set("www.site.test.", "192.0.2.2", "2001:db8::2")
	s.WaitAddrs("www.site.test.", []string{"2001:db8::2", "192.0.2.2"}, 5*time.Second)
	if s.Serial() == serial {
		t.Error("serial unchanged by Set")
	}
	if _, err := s.Lookup("www.elsewhere.test.", dns.TypeA); err == nil {
		t.Error("a zone the server does not have answered without error")
	}
	s.Stop()
	if _, err := s.Lookup("www.site.test.", dns.TypeA); err == nil {
		t.Error("named still answers after Stop")
	}
}
