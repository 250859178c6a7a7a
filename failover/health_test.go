package failover

// These tests run the checks against real things on loopback: an
// httptest server, TCP listeners, sh commands and (mysql) a MariaDB server
// started by internal/mysqltest.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/duration"
	"github.com/tandemhost/tandem/internal/mysqltest"
)

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestChecks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, "<html>shop is open</html>")
		case "/broken":
			http.Error(w, "bad gateway", http.StatusBadGateway)
		case "/old":
			http.Redirect(w, r, "/", http.StatusMovedPermanently)
		}
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	short := duration.Duration(200 * time.Millisecond)

	tests := []struct {
		name  string
		check Check
		want  string // "" for pass, else a substring of the detail
	}{
		{"http ok", Check{HTTP: srv.URL + "/"}, ""},
		{"http body", Check{HTTP: srv.URL + "/", Body: "shop is open"}, ""},
		{"http body missing", Check{HTTP: srv.URL + "/", Body: "closed"}, `does not contain "closed"`},
		{"http status", Check{HTTP: srv.URL + "/broken"}, "status 502, want 200"},
		{"http expect 502", Check{HTTP: srv.URL + "/broken", Expect: 502}, ""},
		{"http redirect is an answer", Check{HTTP: srv.URL + "/old", Expect: 301}, ""},
		{"http refused", Check{HTTP: "http://" + closedPort(t) + "/"}, "connection refused"},
		{"tcp ok", Check{TCP: ln.Addr().String()}, ""},
		{"tcp refused", Check{TCP: closedPort(t)}, "connection refused"},
		{"command ok", Check{Command: "test -d /"}, ""},
		{"command fails", Check{Command: "echo disk full >&2; exit 3"}, "exit status 3: disk full"},
		{"command timeout", Check{Command: "sleep 30", Timeout: short}, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewChecker([]Check{tt.check}, "")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			ok, detail := c.Run(context.Background())
			if tt.want == "" && (!ok || detail != "") {
				t.Errorf("Run(%+v) = %v, %q; want pass", tt.check, ok, detail)
			}
			if tt.want != "" && (ok || !strings.Contains(detail, tt.want)) {
				t.Errorf("Run(%+v) = %v, %q; want fail with %q", tt.check, ok, detail, tt.want)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Run(%+v) took %v", tt.check, took)
			}
		})
	}
}

func TestChecksAllMustPass(t *testing.T) {
	c, err := NewChecker([]Check{{Command: "true"}, {Command: "exit 1"}, {TCP: closedPort(t)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ok, detail := c.Run(context.Background())
	if ok || !strings.Contains(detail, "exit status 1") || !strings.Contains(detail, "connection refused") {
		t.Errorf("Run = %v, %q; want a failure naming both failing checks", ok, detail)
	}
	c, _ = NewChecker(nil, "")
	if ok, detail := c.Run(context.Background()); !ok {
		t.Errorf("Run(no checks) = %v, %q; want pass", ok, detail)
	}
}

func TestNewCheckerRejects(t *testing.T) {
	for _, tt := range []struct {
		checks []Check
		dsn    string
		want   string
	}{
		{[]Check{{}}, "", "exactly one"},
		{[]Check{{HTTP: "http://x/", TCP: "x:1"}}, "", "exactly one"},
		{[]Check{{HTTP: "ftp://x/"}}, "", "not an http"},
		{[]Check{{TCP: "localhost"}}, "", "not host:port"},
		{[]Check{{MySQL: true}}, "", "[mysql] dsn"},
	} {
		if _, err := NewChecker(tt.checks, tt.dsn); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewChecker(%+v) error = %v, want %q", tt.checks, err, tt.want)
		}
	}
}

func TestCheckMySQL(t *testing.T) {
	srv := mysqltest.Start(t, mysqltest.Options{})
	c, err := NewChecker([]Check{{MySQL: true}}, srv.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, detail := c.Run(context.Background()); !ok {
		t.Fatalf("mysql check against a running server: %s", detail)
	}
	srv.Stop()
	if ok, detail := c.Run(context.Background()); ok || !strings.Contains(detail, "mysql ping") {
		t.Errorf("mysql check against a stopped server = %v, %q; want a failed ping", ok, detail)
	}
}

func TestCheckPeerSite(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := checkPeerSite(ctx, srv.Client(), srv.URL+"/"); err != nil {
		t.Errorf("checkPeerSite(up) = %v", err)
	}
	if err := checkPeerSite(ctx, srv.Client(), srv.URL+"/down"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("checkPeerSite(503) = %v, want status 503", err)
	}
	if err := checkPeerSite(ctx, srv.Client(), "http://"+closedPort(t)+"/"); err == nil {
		t.Error("checkPeerSite(closed port) = nil")
	}
}
