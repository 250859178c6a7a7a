package quorum

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// A control conn carries one request from a follower to the leader and one
// reply:
//
//	request: uint8 op (opTransfer) | uint8 length | node name
//	reply:   uint16 big-endian length | error text ("" when done)
const (
	opTransfer   = 1
	maxReplyText = 1 << 10
)

// forwardTransfer asks leader to run Transfer(to).
func (q *Quorum) forwardTransfer(leader, to string) error {
	conn, err := q.layer.dialPurpose(leader, purposeControl, q.timeouts.IO)
	if err != nil {
		return fmt.Errorf("transfer to %s: forward to leader %s: %w", to, leader, err)
	}
	defer conn.Close()
	// The leader may wait for a commit and then for the transfer, each
	// bounded by about an election timeout.
	_ = conn.SetDeadline(time.Now().Add(q.timeouts.IO + 4*q.timeouts.Election))
	req := append([]byte{opTransfer, byte(len(to))}, to...)
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("transfer to %s: forward to leader %s: %w", to, leader, err)
	}
	var n [2]byte
	if _, err := io.ReadFull(conn, n[:]); err != nil {
		return fmt.Errorf("transfer to %s: reply from leader %s: %w", to, leader, err)
	}
	size := binary.BigEndian.Uint16(n[:])
	if size > maxReplyText {
		return fmt.Errorf("transfer to %s: reply from leader %s: %d bytes, limit %d", to, leader, size, maxReplyText)
	}
	text := make([]byte, size)
	if _, err := io.ReadFull(conn, text); err != nil {
		return fmt.Errorf("transfer to %s: reply from leader %s: %w", to, leader, err)
	}
	if size > 0 {
		return fmt.Errorf("transfer to %s: leader %s: %s", to, leader, text)
	}
	return nil
}

// serveControl answers one forwarded request on conn.
func (q *Quorum) serveControl(conn net.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(q.timeouts.IO))
	var hdr [2]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return fmt.Errorf("control request from %s: %w", conn.RemoteAddr(), err)
	}
	if hdr[0] != opTransfer {
		return fmt.Errorf("control request from %s: unknown op %d", conn.RemoteAddr(), hdr[0])
	}
	name := make([]byte, hdr[1])
	if _, err := io.ReadFull(conn, name); err != nil {
		return fmt.Errorf("control request from %s: %w", conn.RemoteAddr(), err)
	}
	var result error
	switch to := string(name); {
	case !slices.Contains(q.nodes, to):
		result = fmt.Errorf("%q is not a node (nodes: %v)", to, q.nodes)
	case q.r.State() != raft.Leader:
		leader, _ := q.Leader()
		result = fmt.Errorf("%s is no longer the leader (leader: %q); try again", q.opts.Node, leader)
	default:
		result = q.transferLocal(to)
	}
	text := ""
	if result != nil {
		text = result.Error()
		if text == "" {
			text = "failed"
		}
		if len(text) > maxReplyText {
			text = text[:maxReplyText]
		}
	}
	_ = conn.SetWriteDeadline(time.Now().Add(q.timeouts.IO))
	reply := binary.BigEndian.AppendUint16(nil, uint16(len(text)))
	if _, err := conn.Write(append(reply, text...)); err != nil {
		return errors.Join(fmt.Errorf("control reply to %s: %w", conn.RemoteAddr(), err), result)
	}
	return nil
}
