package failover

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver of the [mysql] DSN
)

// Checker runs this node's own health checks.
type Checker struct {
	checks []Check
	dsn    string
	client *http.Client

	mu sync.Mutex // guards db
	db *sql.DB
}

// NewChecker returns a checker for checks. mysqlDSN (a go-sql-driver/mysql
// DSN) is what mysql = true checks ping; it must be set when one does.
func NewChecker(checks []Check, mysqlDSN string) (*Checker, error) {
	for i, ch := range checks {
		if ps := ch.validate(); len(ps) > 0 {
			return nil, fmt.Errorf("failover check %d: %s", i, ps[0].Msg)
		}
		if ch.MySQL && mysqlDSN == "" {
			return nil, fmt.Errorf("failover check %d: mysql = true needs the [mysql] dsn to be set", i)
		}
	}
	return &Checker{
		checks: checks,
		dsn:    mysqlDSN,
		client: &http.Client{
			// A redirect is an answer: the check compares its status.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		},
	}, nil
}

// Run runs every check at once, each within its timeout, and reports
// whether all passed; detail says what failed ("" when all passed).
func (c *Checker) Run(ctx context.Context) (ok bool, detail string) {
	errs := make([]error, len(c.checks))
	var wg sync.WaitGroup
	for i, ch := range c.checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, ch.Timeout.Or(DefaultCheckTimeout))
			defer cancel()
			errs[i] = c.run(ctx, ch)
		})
	}
	wg.Wait()
	var fails []string
	for _, err := range errs {
		if err != nil {
			fails = append(fails, err.Error())
		}
	}
	return len(fails) == 0, strings.Join(fails, "; ")
}

// Close releases the MySQL connection pool.
func (c *Checker) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil {
		return c.db.Close()
	}
	return nil
}

func (c *Checker) run(ctx context.Context, ch Check) error {
	switch {
	case ch.HTTP != "":
		return c.checkHTTP(ctx, ch)
	case ch.TCP != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", ch.TCP)
		if err != nil {
			return fmt.Errorf("tcp %s: %w", ch.TCP, err)
		}
		conn.Close()
		return nil
	case ch.MySQL:
		db, err := c.mysql()
		if err != nil {
			return fmt.Errorf("mysql: %w", err)
		}
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("mysql ping: %w", err)
		}
		return nil
	case ch.Command != "":
		return checkCommand(ctx, ch.Command)
	}
	return errors.New("empty check")
}

func (c *Checker) checkHTTP(ctx context.Context, ch Check) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ch.HTTP, nil)
	if err != nil {
		return fmt.Errorf("http %s: %w", ch.HTTP, err)
	}
	req.Header.Set("User-Agent", "tandem-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("http %s: %w", ch.HTTP, urlError(err))
	}
	defer resp.Body.Close()
	want := ch.Expect
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return fmt.Errorf("http %s: status %d, want %d", ch.HTTP, resp.StatusCode, want)
	}
	if ch.Body == "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("http %s: read body: %w", ch.HTTP, err)
	}
	if !bytes.Contains(body, []byte(ch.Body)) {
		return fmt.Errorf("http %s: body (first MiB) does not contain %q", ch.HTTP, ch.Body)
	}
	return nil
}

func (c *Checker) mysql() (*sql.DB, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		db, err := sql.Open("mysql", c.dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(2)
		c.db = db
	}
	return c.db, nil
}

// checkCommand runs cmd with sh -c; it passes when it exits 0.
func checkCommand(ctx context.Context, cmd string) error {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.WaitDelay = time.Second // a child that keeps the pipes open cannot hang the check
	if err := c.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out: %w", ctx.Err())
		}
		msg := strings.TrimSpace(out.String())
		if len(msg) > 200 {
			msg = msg[len(msg)-200:]
		}
		if msg != "" {
			return fmt.Errorf("command %q: %w: %s", cmd, err, msg)
		}
		return fmt.Errorf("command %q: %w", cmd, err)
	}
	return nil
}

// checkPeerSite fetches the peer's site (peer_check): any HTTP answer
// below 500 means it serves.
func checkPeerSite(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "tandem-peer-check")
	resp, err := client.Do(req)
	if err != nil {
		return urlError(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// urlError strips the "Get URL:" wrapping of an http.Client error, since
// the caller names the URL itself.
func urlError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
