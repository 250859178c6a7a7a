//go:build !linux

package dns

import "net"

// quickAck is Linux-only; elsewhere delayed ACKs may slow pipelined
// answers a little.
func quickAck(net.Conn) {}
