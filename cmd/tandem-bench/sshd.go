package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/internal/pairsetup"
	"golang.org/x/crypto/ssh"
)

// sshdPath is where Debian's openssh-server installs sshd.
const sshdPath = "/usr/sbin/sshd"

// hostAlias is the name the ssh clients know the bench's sshd by, whatever
// proxy port they reach it through.
const hostAlias = "tandem-bench-sshd"

// sshServer is an OpenSSH server on loopback for the SSH-based peers (rsync,
// lsyncd, Unison), as the internal/sshdtest package starts one for tests:
// current user, new host key, new client key, nothing outside dir.
type sshServer struct {
	addr       string
	identity   string // client private key
	knownHosts string
	proc       *proc
}

func startSSHD(dir string) (*sshServer, error) {
	if _, err := os.Stat(sshdPath); err != nil {
		return nil, fmt.Errorf("OpenSSH server not installed (apt-get install openssh-server): %w", err)
	}
	if os.Getuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation dir
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	host, _, err := deploy.EnsureKey(filepath.Join(dir, "host"), "tandem-bench sshd")
	if err != nil {
		return nil, err
	}
	client, _, err := deploy.EnsureKey(filepath.Join(dir, "client"), "tandem-bench")
	if err != nil {
		return nil, err
	}
	s := &sshServer{identity: deploy.KeyPath(filepath.Join(dir, "client")), knownHosts: filepath.Join(dir, "known_hosts")}
	files := map[string]string{
		"authorized_keys": deploy.AuthorizedLine(client.PublicKey(), "tandem-bench") + "\n",
		"known_hosts":     hostAlias + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(host.PublicKey()))) + "\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		addr, err := pairsetup.FreeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		cfg := filepath.Join(dir, "sshd_config")
		conf := fmt.Sprintf(`Port %s
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
MaxStartups 100
MaxSessions 100
`, port, deploy.KeyPath(filepath.Join(dir, "host")), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		logPath := filepath.Join(dir, "sshd.log")
		p, err := startProc("sshd", logPath, nil, sshdPath, "-D", "-e", "-f", cfg)
		if err != nil {
			return nil, err
		}
		if err := waitBanner(addr, p); err != nil {
			p.stop(time.Second)
			log, _ := os.ReadFile(logPath)
			if attempt < 3 && bytes.Contains(log, []byte("Address already in use")) {
				continue
			}
			return nil, fmt.Errorf("sshd did not come up: %w\n%s", err, log)
		}
		s.addr, s.proc = addr, p
		return s, nil
	}
}

// sshCommand is the ssh client command line that reaches the server at
// addr (a proxy in front of it) with the bench's key, and nothing from the
// user's own ssh config.
func (s *sshServer) sshCommand(addr string) []string {
	_, port, _ := net.SplitHostPort(addr)
	return []string{"ssh", "-F", "/dev/null", "-p", port, "-i", s.identity,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + s.knownHosts, "-o", "HostKeyAlias=" + hostAlias,
		"-o", "StrictHostKeyChecking=yes"}
}

// sessions returns the pids of the processes sshd runs for its clients (not
// the listener itself), which are part of what an SSH-based tool costs.
func (s *sshServer) sessions() []int {
	var out []int
	for _, pid := range descendants([]int{s.proc.cmd.Process.Pid}) {
		if pid != s.proc.cmd.Process.Pid {
			out = append(out, pid)
		}
	}
	return out
}

// waitBanner polls until addr answers with an SSH banner, or p exits.
func waitBanner(addr string, p *proc) error {
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("sshd exited")
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
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	return fmt.Errorf("no SSH banner on %s within 15s: %v", addr, last)
}
