package snapshot

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Test trees are written just before they are snapshotted; the racy
	// window would make every stat untrusted. TestRacyCopy turns it on.
	racyWindow = 0
	goleak.VerifyTestMain(m)
}
