package dns

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/tandemhost/tandem/failover/dns/bindtest"
	"go.uber.org/zap"
)

// BenchmarkServeUDP measures the embedded server's answers per second over
// real loopback UDP, one client socket per parallel worker.
func BenchmarkServeUDP(b *testing.B) {
	s := startServer(b, ServerOptions{Log: zap.NewNop()})
	point(b, s, "192.0.2.1", "2001:db8::1")
	q := question("www.example.test.", dns.TypeA)
	q.SetEdns0(1232, false)
	query, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("udp", s.Addr())
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		buf := make([]byte, 1500)
		for pb.Next() {
			if _, err := conn.Write(query); err != nil {
				b.Error(err)
				return
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				b.Error(err)
				return
			}
			if n < 12 || buf[3]&0x0f != 0 {
				b.Errorf("bad reply %x", buf[:n])
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
}

// BenchmarkRespond measures building one answer, without the network.
func BenchmarkRespond(b *testing.B) {
	s, err := NewServer(ServerOptions{Addr: "127.0.0.1:0", Zone: "example.test.", Names: []string{"www.example.test."}})
	if err != nil {
		b.Fatal(err)
	}
	point(b, s, "192.0.2.1")
	q := question("www.example.test.", dns.TypeA)
	for b.Loop() {
		if r := s.respond(q, true); len(r.Answer) != 1 {
			b.Fatal(r)
		}
	}
}

// BenchmarkUpdaterPointBIND measures a flip against a real BIND: from the
// Point call to BIND answering the new address to a fresh query. Each op
// flips www between two addresses (read, guarded update, read back).
func BenchmarkUpdaterPointBIND(b *testing.B) {
	srv := bindtest.Start(b, bindtest.Options{})
	u := newTestUpdater(b, srv, UpdaterOptions{Log: zap.NewNop()})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		addr := fmt.Sprintf("192.0.2.%d", 10+i%2)
		if err := u.Point(ctx, []string{addr}); err != nil {
			b.Fatal(err)
		}
		if got, err := srv.Lookup("www.example.test.", dns.TypeA); err != nil || len(got) != 1 || got[0] != addr {
			b.Fatalf("after Point(%s) BIND answers %v, %v", addr, got, err)
		}
	}
}
