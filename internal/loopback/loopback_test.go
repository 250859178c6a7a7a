package loopback

import (
	"net"
	"testing"
)

func TestFreePortIsFreeAndBelowEphemeral(t *testing.T) {
	hi := ephemeralLow()
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port < low || port >= hi {
			t.Fatalf("FreePort() = %d, want one in [%d, %d)", port, low, hi)
		}
		addr, _ := FreeAddr()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr() = %s, which cannot be bound: %v", addr, err)
		}
		l.Close()
	}
}

func TestFreeSeesABoundPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if free(l.Addr().(*net.TCPAddr).Port) {
		t.Errorf("free(%v) = true for a port in use", l.Addr())
	}
}
