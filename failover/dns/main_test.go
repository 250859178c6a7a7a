package dns

import (
	"net"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func splitAddr(t testing.TB, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// requireTool skips the test when a tool is missing, or fails it when
// TANDEM_REQUIRE_INTEGRATION is set.
func requireTool(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
		t.Fatalf("%s not installed: %v; TANDEM_REQUIRE_INTEGRATION is set, so this cannot be skipped", what, err)
	}
	t.Skipf("%s not installed: %v", what, err)
}
