package dns

import (
	"net"
	"syscall"
)

// quickAck asks Linux to acknowledge the next segments at once instead of
// delaying the ACK (up to 40 ms). A name server that sends pipelined
// answers with Nagle's algorithm on holds the second answer until the
// first is acknowledged, so without this each batch stalls on our delayed
// ACK. The kernel falls back to delayed ACKs by itself, hence a call
// before every read. Best effort: errors are ignored.
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
