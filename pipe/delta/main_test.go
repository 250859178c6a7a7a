package delta

import (
	"testing"

	"go.uber.org/goleak"
)

// The shared zstd coders must start no goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
