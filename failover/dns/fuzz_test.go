package dns

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeMessage feeds arbitrary bytes, as a packet from the network, to
// the embedded server's request handler: it must never panic, and every
// reply must pack, echo the id, and fit the UDP size when over UDP.
func FuzzServeMessage(f *testing.F) {
	s, err := NewServer(ServerOptions{
		Addr:  "127.0.0.1:0",
		Zone:  "example.test.",
		Names: []string{"www.example.test.", "example.test.", "a.b.example.test."},
		NS:    []string{"ns1.example.test.", "ns2.example.net."},
		Glue:  map[string][]string{"ns1.example.test.": {"192.0.2.53", "2001:db8::53"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Point(f.Context(), manyAddrs(60)); err != nil {
		f.Fatal(err)
	}
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, q := range []struct {
		name string
		typ  uint16
	}{
		{"www.example.test.", dns.TypeA}, {"example.test.", dns.TypeNS}, {"example.test.", dns.TypeSOA},
		{"nope.example.test.", dns.TypeA}, {"b.example.test.", dns.TypeANY}, {"www.example.com.", dns.TypeA},
		{"example.test.", dns.TypeAXFR},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.typ)
		seed(m)
		m.SetEdns0(4096, true)
		seed(m)
	}
	m := new(dns.Msg)
	m.SetUpdate("example.test.")
	m.Insert([]dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "www.example.test.", Rrtype: dns.TypeA, Ttl: 1}, A: []byte{1, 2, 3, 4}}})
	seed(m)
	f.Add([]byte{})
	f.Add(make([]byte, 12))

	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			return // the dns.Server answers FORMERR before our handler
		}
		for _, udp := range []bool{true, false} {
			resp := s.respond(req, udp)
			if resp == nil {
				if !req.Response {
					t.Fatalf("no reply to a query: %v", req)
				}
				continue
			}
			b, err := resp.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, resp)
			}
			if resp.Id != req.Id || !resp.Response {
				t.Fatalf("reply id %d response %v, want id %d and a response", resp.Id, resp.Response, req.Id)
			}
			limit := dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				limit = max(limit, min(int(opt.UDPSize()), DefaultMaxUDPSize))
			}
			if udp && len(b) > limit {
				t.Fatalf("UDP reply %d bytes, limit %d", len(b), limit)
			}
		}
	})
}
