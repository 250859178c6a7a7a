package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/binlog"
)

// TestPrintStatusRows: the database lines name what was sent and what it
// took on the link, and the errors of each direction.
func TestPrintStatusRows(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	var b strings.Builder
	printStatus(&b, Status{Node: "alpha", Started: now.Add(-time.Hour), Rows: &binlog.Status{
		Read: "0-1-90", Sent: 90, Acked: 80, InFlight: 10, TxPerSec: 12.5,
		SentBytes: 3 << 20, WireBytes: 1 << 20, Applied: 7, AppliedGTID: "0-2-7",
		ApplyError: "duplicate key",
	}}, now)
	out := b.String()
	for _, want := range []string{
		"database: read up to 0-1-90; to peer: 90 sent, 80 committed there, 10 in flight",
		"sent 3.0 MiB of transactions as 1.0 MiB on the link",
		"from peer: applied up to 0-2-7 (seq 7)",
		"APPLY ERROR: duplicate key",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printStatus(&b, Status{Node: "alpha", Started: now, Rows: &binlog.Status{}}, now)
	if strings.Contains(b.String(), "on the link") {
		t.Errorf("a node that sent nothing shows bytes sent:\n%s", b.String())
	}
}
