package control

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServeAndGet(t *testing.T) {
	path := SocketPath(t.TempDir())
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %04o, want 0600", fi.Mode().Perm())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"node": "alpha"})
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusConflict, "cannot do that now")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, mux) }()

	// A second daemon on the same state dir is refused.
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another tandem") {
		t.Errorf("second Listen = %v, want 'another tandem is running'", err)
	}

	c := NewClient(path)
	var got map[string]string
	if err := c.Get(context.Background(), "/status", &got); err != nil || got["node"] != "alpha" {
		t.Fatalf("Get /status = %v, %v", got, err)
	}
	if err := c.Post(context.Background(), "/fail", struct{}{}, nil); err == nil || err.Error() != "cannot do that now" {
		t.Errorf("Post /fail = %v, want the daemon's error", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if err := c.Get(context.Background(), "/status", &got); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Get after shutdown = %v, want ErrNotRunning", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale file: %v", err)
	}
	ln.Close()
}
