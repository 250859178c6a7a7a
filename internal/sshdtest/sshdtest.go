package sshdtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/internal/loopback"
	"golang.org/x/crypto/ssh"
)

// Path is where Debian's openssh-server installs sshd.
const Path = "/usr/sbin/sshd"

// Server is a running sshd.
type Server struct {
	Port       int
	User       string        // the current user, who may log in
	Identity   string        // the operator's private key file (OpenSSH format, 0600)
	KnownHosts string        // a known_hosts file holding the server's key
	HostKey    ssh.PublicKey // the server's host key
	log        *buffer
}

// Addr is 127.0.0.1:Port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Log returns what sshd wrote so far.
func (s *Server) Log() string { return s.log.String() }

// Start starts sshd for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("OpenSSH server %s is missing and TANDEM_REQUIRE_INTEGRATION is set", Path)
		}
		t.Skip("OpenSSH server not installed (apt-get install openssh-server)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if u.Uid == "0" {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("create /run/sshd for sshd: %v", err)
		}
	}
	dir := t.TempDir()
	host, _, err := deploy.EnsureKey(filepath.Join(dir, "host"), "test sshd")
	if err != nil {
		t.Fatal(err)
	}
	client, _, err := deploy.EnsureKey(filepath.Join(dir, "operator"), "operator")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{User: u.Username, Identity: deploy.KeyPath(filepath.Join(dir, "operator")), HostKey: host.PublicKey(), log: &buffer{}}
	write(t, filepath.Join(dir, "authorized_keys"), deploy.AuthorizedLine(client.PublicKey(), "operator")+"\n")
	sftpServer := "internal-sftp"
	if _, err := os.Stat("/usr/lib/openssh/sftp-server"); err == nil {
		sftpServer = "/usr/lib/openssh/sftp-server"
	}
	for attempt := 0; ; attempt++ {
		port, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Port = port
		cfg := filepath.Join(dir, "sshd_config")
		write(t, cfg, fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UseDNS no
PrintMotd no
PrintLastLog no
Subsystem sftp %s
`, s.Port, deploy.KeyPath(filepath.Join(dir, "host")), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"), sftpServer))
		s.log = &buffer{}
		cmd := exec.Command(Path, "-D", "-e", "-f", cfg)
		cmd.Stderr = s.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start sshd: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if err := waitBanner(s.Addr(), done); err != nil {
			cmd.Process.Kill()
			<-done
			if attempt < 3 && strings.Contains(s.log.String(), "Address already in use") {
				continue // the port was taken between choosing and binding
			}
			t.Fatalf("sshd did not come up: %v\n%s", err, s.log.String())
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("sshd log:\n%s", s.log.String())
			}
		})
		break
	}
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	write(t, s.KnownHosts, deploy.KnownHostsLine(s.Addr(), s.HostKey)+"\n")
	return s
}

// waitBanner polls until addr answers with an SSH banner, or sshd exits.
func waitBanner(addr string, exited <-chan error) error {
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("sshd exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 8)
			_, err = c.Read(buf)
			c.Close()
			if err == nil && bytes.HasPrefix(buf, []byte("SSH-2.0")) {
				return nil
			}
		}
		last = err
		time.Sleep(20 * time.Millisecond) // polling interval, not a synchronisation
	}
	return fmt.Errorf("no SSH banner on %s within 15s: %v", addr, last)
}

func write(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// buffer is a bytes.Buffer safe for sshd's writes and the test's reads.
type buffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
