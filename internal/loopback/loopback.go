// Package loopback picks 127.0.0.1 ports for servers that another process
// will bind (a tandem daemon, mariadbd, named, sshd), for the tests, the
// demo and tandem-bench.
//
// Asking the kernel for port 0 and releasing it is racy in a busy test
// run: the port comes from the ephemeral range, which is also where every
// outbound connection gets its source port, so between the release and
// the child's bind a connection elsewhere can take it ("address already in
// use"). Ports below the ephemeral range are never handed out that way;
// FreePort picks one of those at random and checks that it is free.
package loopback

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
)

// low is the lowest port FreePort picks: below it are well-known services.
const low = 10000

// FreePort returns a 127.0.0.1 port that nothing listens on, for TCP or
// UDP, outside the kernel's ephemeral port range.
func FreePort() (int, error) {
	hi := ephemeralLow()
	for range 200 {
		port := low + rand.IntN(hi-low)
		if free(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free 127.0.0.1 port in %d-%d after 200 tries", low, hi-1)
}

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

func free(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default 32768 when it cannot be read or leaves too little below it).
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(data), &lo, &hi); err == nil && lo > low+1000 {
			return lo
		}
	}
	return 32768
}
