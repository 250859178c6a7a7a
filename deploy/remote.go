package deploy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host is an SSH destination: user@host:port.
type Host struct {
	User string
	Host string // a name or an IP address, without brackets
	Port int
}

// ParseHost parses "user@host", "user@host:port" or "user@[v6addr]:port";
// defaultPort applies when there is no port. The user is required: deploy
// needs to know whether it logs in as root.
func ParseHost(s string, defaultPort int) (Host, error) {
	user, hostport, ok := strings.Cut(s, "@")
	if !ok || user == "" || hostport == "" {
		return Host{}, fmt.Errorf("host %q is not user@host; write it like root@203.0.113.7 or root@vps1.example.com", s)
	}
	h := Host{User: user, Host: hostport, Port: defaultPort}
	if host, port, err := net.SplitHostPort(hostport); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return Host{}, fmt.Errorf("host %q has port %q, which is not a number from 1 to 65535", s, port)
		}
		h.Host, h.Port = host, n
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		h.Host = hostport[1 : len(hostport)-1]
	} else if strings.Count(hostport, ":") == 1 {
		return Host{}, fmt.Errorf("host %q: %v", s, err)
	}
	if h.Host == "" || strings.ContainsAny(h.Host, " \t/@") {
		return Host{}, fmt.Errorf("host %q has an invalid host name", s)
	}
	return h, nil
}

// Addr is host:port for dialing.
func (h Host) Addr() string { return net.JoinHostPort(h.Host, strconv.Itoa(h.Port)) }

// String is user@host:port.
func (h Host) String() string { return h.User + "@" + h.Addr() }

// DialOptions say how the operator logs in to a host.
type DialOptions struct {
	// Identities are private key files to offer. Unencrypted ones are used;
	// encrypted ones must be in the agent instead.
	Identities []string
	// IdentitiesRequired makes a missing or unusable identity an error
	// (when the operator named it) rather than skipped (a default path).
	IdentitiesRequired bool
	// AgentSocket is SSH_AUTH_SOCK; "" for no agent.
	AgentSocket string
	// KnownHosts are known_hosts files; the host's key must be in one.
	KnownHosts []string
	// Timeout bounds the TCP connect and the SSH handshake. Default 20s.
	Timeout time.Duration
}

// Remote is an SSH connection to a host, with an SFTP session on it.
type Remote struct {
	Host    Host
	client  *ssh.Client
	sftp    *sftp.Client
	agent   net.Conn // nil without agent
	Version string   // the server's SSH version string
}

// Dial connects to h as the operator, checking its host key against the
// known_hosts files. An unknown host or a changed key is an error that says
// what to do.
func Dial(ctx context.Context, h Host, o DialOptions) (*Remote, error) {
	r := &Remote{Host: h}
	auth, err := r.authMethods(o)
	if err != nil {
		return nil, err
	}
	hostKey, algos, err := hostKeyCheck(h, o.KnownHosts)
	if err != nil {
		r.Close()
		return nil, err
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	cfg := &ssh.ClientConfig{
		User:              h.User,
		Auth:              auth,
		HostKeyCallback:   hostKey,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", h.Addr())
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("connect to %s: %w", h.Addr(), err)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, h.Addr(), cfg)
	if err != nil {
		conn.Close()
		r.Close()
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) || errors.Is(err, errUnknownHost) {
			return nil, err
		}
		return nil, fmt.Errorf("ssh %s: %w (is the operator's key in %s's ~/.ssh/authorized_keys?)", h, err, h.User)
	}
	conn.SetDeadline(time.Time{})
	r.client = ssh.NewClient(c, chans, reqs)
	r.Version = string(c.ServerVersion())
	if r.sftp, err = sftp.NewClient(r.client, sftp.UseConcurrentWrites(true)); err != nil {
		r.Close()
		return nil, fmt.Errorf("sftp on %s: %w (the server needs the sftp subsystem)", h, err)
	}
	return r, nil
}

func (r *Remote) authMethods(o DialOptions) ([]ssh.AuthMethod, error) {
	var signers []ssh.Signer
	var problems []string
	for _, file := range o.Identities {
		b, err := os.ReadFile(file)
		if err != nil {
			if o.IdentitiesRequired {
				return nil, fmt.Errorf("identity: %w", err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) {
				err = errors.New("it is encrypted; add it to ssh-agent (ssh-add " + file + ") and run again")
			}
			if o.IdentitiesRequired {
				return nil, fmt.Errorf("identity %s: %w", file, err)
			}
			problems = append(problems, file+": "+err.Error())
			continue
		}
		signers = append(signers, s)
	}
	var agentClient agent.ExtendedAgent
	if o.AgentSocket != "" {
		c, err := net.Dial("unix", o.AgentSocket)
		if err != nil {
			problems = append(problems, "ssh-agent: "+err.Error())
		} else {
			r.agent = c
			agentClient = agent.NewClient(c)
		}
	}
	if len(signers) == 0 && agentClient == nil {
		msg := "no SSH key to log in with: pass --identity FILE or start ssh-agent"
		if len(problems) > 0 {
			msg += " (" + strings.Join(problems, "; ") + ")"
		}
		return nil, errors.New(msg)
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		all := signers
		if agentClient != nil {
			if more, err := agentClient.Signers(); err == nil {
				all = append(append([]ssh.Signer(nil), more...), signers...)
			}
		}
		return all, nil
	})}, nil
}

var errUnknownHost = errors.New("unknown host")

// hostKeyCheck returns the callback that checks h's key against the
// known_hosts files, and the key algorithms those files hold for h (so the
// server offers a key we can check rather than another of its keys).
func hostKeyCheck(h Host, files []string) (ssh.HostKeyCallback, []string, error) {
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	scan := fmt.Sprintf("ssh-keyscan -p %d -t ed25519 %s", h.Port, h.Host)
	where := strings.Join(files, ", ")
	if len(existing) == 0 {
		return nil, nil, fmt.Errorf("%w %s: no known_hosts file (%s); check the host's fingerprint and add its key: %s >> %s",
			errUnknownHost, h.Addr(), where, scan, firstOr(files, "~/.ssh/known_hosts"))
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts: %w", err)
	}
	remote := &net.TCPAddr{Port: h.Port}
	if ip := net.ParseIP(h.Host); ip != nil {
		remote.IP = ip
	} else if a, err := net.ResolveTCPAddr("tcp", h.Addr()); err == nil {
		remote = a
	}
	// Ask the files about a key nobody has: the error lists the keys they
	// do hold for the host.
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	probe, _ := ssh.NewPublicKey(pub)
	var algos []string
	var ke *knownhosts.KeyError
	if err := cb(h.Addr(), remote, probe); errors.As(err, &ke) {
		for _, k := range ke.Want {
			switch t := k.Key.Type(); t {
			case ssh.KeyAlgoRSA:
				algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
			default:
				algos = append(algos, t)
			}
		}
	}
	check := func(hostname string, addr net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, addr, key)
		if !errors.As(err, &ke) {
			return err
		}
		if len(ke.Want) == 0 {
			return fmt.Errorf("%w %s: its key is in none of %s; check the host's fingerprint (%s) and add it: %s >> %s",
				errUnknownHost, h.Addr(), where, ssh.FingerprintSHA256(key), scan, existing[0])
		}
		w := ke.Want[0]
		return fmt.Errorf("HOST KEY MISMATCH for %s: it offers %s %s, but %s:%d holds another key. Someone may be in the middle; if the host was reinstalled, remove the old key (ssh-keygen -R '[%s]:%d' -f %s) and add the new one (%s)",
			h.Addr(), key.Type(), ssh.FingerprintSHA256(key), w.Filename, w.Line, h.Host, h.Port, w.Filename, scan)
	}
	return check, algos, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// Close ends the connection.
func (r *Remote) Close() error {
	var errs []error
	if r.sftp != nil {
		errs = append(errs, r.sftp.Close())
	}
	if r.client != nil {
		errs = append(errs, r.client.Close())
	}
	if r.agent != nil {
		r.agent.Close()
	}
	return errors.Join(errs...)
}

// CommandError is a remote command that exited non-zero.
type CommandError struct {
	Cmd    string
	Status int // exit status; -1 when killed by a signal or the link dropped
	Stderr string
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 2000 {
		msg = msg[:2000] + "..."
	}
	if msg == "" {
		msg = "no output on stderr"
	}
	return fmt.Sprintf("`%s` exited %d: %s", e.Cmd, e.Status, msg)
}

// Run runs a shell command on the host and returns its stdout. A non-zero
// exit is a *CommandError carrying stderr. When ctx ends first, Run sends
// the command SIGTERM and returns ctx's error at once.
func (r *Remote) Run(ctx context.Context, cmd string) ([]byte, error) {
	s, err := r.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("ssh session on %s: %w", r.Host, err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Not waiting for the command: the server may let it run to its
		// end. The goroutine ends with the session or the connection.
		s.Signal(ssh.SIGTERM)
		s.Close()
		return nil, fmt.Errorf("%s on %s: %w", cmd, r.Host, ctx.Err())
	}
	if err != nil {
		ce := &CommandError{Cmd: cmd, Status: -1, Stderr: stderr.String()}
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			ce.Status = ee.ExitStatus()
		} else {
			ce.Stderr = err.Error() + "; " + ce.Stderr
		}
		return stdout.Bytes(), ce
	}
	return stdout.Bytes(), nil
}

// ReadFile returns a remote file's contents; a missing file is an error
// wrapping fs.ErrNotExist.
func (r *Remote) ReadFile(p string) ([]byte, error) {
	f, err := r.sftp.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, r.Host.Host, notExist(err))
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, r.Host.Host, err)
	}
	return b, nil
}

// Exists reports whether p exists on the host.
func (r *Remote) Exists(p string) (bool, error) {
	_, err := r.sftp.Lstat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(notExist(err), fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("stat %s on %s: %w", p, r.Host.Host, err)
}

// notExist maps SFTP's "no such file" status to fs.ErrNotExist.
func notExist(err error) error {
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile {
		return fmt.Errorf("%w", fs.ErrNotExist)
	}
	return err
}

// MkdirAll creates a remote directory and its parents.
func (r *Remote) MkdirAll(p string, mode os.FileMode) error {
	if ok, err := r.Exists(p); err != nil || ok {
		return err
	}
	if err := r.sftp.MkdirAll(p); err != nil {
		return fmt.Errorf("mkdir %s on %s: %w", p, r.Host.Host, err)
	}
	if err := r.sftp.Chmod(p, mode); err != nil {
		return fmt.Errorf("chmod %s on %s: %w", p, r.Host.Host, err)
	}
	return nil
}

// WriteFile writes a remote file atomically: a temp file in the same
// directory, fsync, then rename over p. Readers see the old or the new
// file, never a part.
func (r *Remote) WriteFile(p string, data io.Reader, mode os.FileMode) error {
	tmp, err := r.upload(p, data, mode)
	if err != nil {
		return err
	}
	if err := r.rename(tmp, p); err != nil {
		r.sftp.Remove(tmp)
		return err
	}
	return nil
}

// upload writes data to a new temp file next to p and returns its name.
func (r *Remote) upload(p string, data io.Reader, mode os.FileMode) (string, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := path.Join(path.Dir(p), ".tandem-"+hex.EncodeToString(rnd[:])+".tmp")
	f, err := r.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return "", fmt.Errorf("write %s on %s: %w", p, r.Host.Host, err)
	}
	fail := func(err error) (string, error) {
		f.Close()
		r.sftp.Remove(tmp)
		return "", fmt.Errorf("write %s on %s: %w", p, r.Host.Host, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.ReadFrom(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil && !errors.Is(err, sftp.ErrSSHFxOpUnsupported) {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		r.sftp.Remove(tmp)
		return "", fmt.Errorf("write %s on %s: %w", p, r.Host.Host, err)
	}
	return tmp, nil
}

// rename moves from onto to, replacing it atomically.
func (r *Remote) rename(from, to string) error {
	if err := r.sftp.PosixRename(from, to); err != nil {
		return fmt.Errorf("rename %s to %s on %s: %w (the server needs OpenSSH's posix-rename extension)", from, to, r.Host.Host, err)
	}
	return nil
}

// Sha256 returns the hex SHA-256 of a remote file, "" if it is missing.
func (r *Remote) Sha256(ctx context.Context, p string) (string, error) {
	if ok, err := r.Exists(p); err != nil || !ok {
		return "", err
	}
	out, err := r.Run(ctx, "sha256sum -- "+ShellQuote(p))
	if err == nil {
		if sum, _, ok := strings.Cut(string(out), " "); ok && len(sum) == 64 {
			return sum, nil
		}
	}
	// No sha256sum on the host: read it back.
	f, err := r.sftp.Open(p)
	if err != nil {
		return "", fmt.Errorf("hash %s on %s: %w", p, r.Host.Host, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s on %s: %w", p, r.Host.Host, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
