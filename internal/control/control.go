// Package control is the local control socket between the tandem daemon and
// its CLI: HTTP with JSON bodies over a Unix socket in the state dir, mode
// 0600, so only root (or the daemon's user) can ask or command.
//
// It owns the socket's lifecycle (a stale socket left by a crash is
// replaced; a live one means another daemon runs) and the client side's
// errors. What is served is up to the daemon's wiring.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// SocketName is the control socket's name in the state dir.
const SocketName = "tandem.sock"

// SocketPath returns the control socket's path for a state dir.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, SocketName) }

// ErrNotRunning: no daemon answers on the socket.
var ErrNotRunning = errors.New("tandem is not running")

// Listen creates the control socket at path with mode 0600. A socket file
// that nobody answers on (left by a crash) is removed first; one that
// answers means another daemon uses this state dir, and is an error.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another tandem is running with this state dir (it answers on %s); stop it first", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	// Create the socket with no permissions for group and others from the
	// start, so there is no window where others could connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx ends, then shuts down, giving requests in
// flight a moment to finish, and removes the socket file.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control socket: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}

// Client talks to a daemon's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{path: path, hc: &http.Client{Transport: &http.Transport{
		// One request per connection: callers make a client per question
		// and must not leave idle connections (and descriptors) behind.
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

// Get fetches url (e.g. "/status") and decodes the JSON answer into v.
func (c *Client) Get(ctx context.Context, url string, v any) error {
	return c.do(ctx, http.MethodGet, url, nil, v)
}

// Post sends body as JSON to url and decodes the JSON answer into v (when
// not nil).
func (c *Client) Post(ctx context.Context, url string, body, v any) error {
	return c.do(ctx, http.MethodPost, url, body, v)
}

func (c *Client) do(ctx context.Context, method, url string, body, v any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tandem"+url, r)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (nothing answers on %s); start it with `systemctl start tandem` or `tandem run -c FILE`", ErrNotRunning, c.path)
		}
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("control socket %s: permission denied; run as the daemon's user (usually root)", c.path)
		}
		return fmt.Errorf("control socket: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("daemon's answer: %w", err)
	}
	return nil
}

// WriteJSON writes v as the JSON answer with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError answers with code and {"error": msg}.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}
