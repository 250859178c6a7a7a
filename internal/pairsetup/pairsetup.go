// Package pairsetup writes two paired tandem nodes on this machine, alpha
// and beta: each one's key, the other's authorized_keys and known_hosts
// lines, and a config, for `tandem demo`, the end-to-end tests and
// tandem-bench.
package pairsetup

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tandemhost/tandem/deploy"
	"github.com/tandemhost/tandem/internal/loopback"
)

// Node is one node of a pair set up on this machine.
type Node struct {
	Name   string
	Dir    string // holds tandem.toml, the key files and state/
	Listen string // its SSH address
	Dial   string // where its peer dials it (Listen, or a proxy in front)
}

func (n *Node) ConfigPath() string { return filepath.Join(n.Dir, "tandem.toml") }
func (n *Node) StateDir() string   { return filepath.Join(n.Dir, "state") }

// Options shape the configs Setup writes.
type Options struct {
	// Dial maps a node's listen address to the address its peer dials (a
	// proxy's, for latency); nil means the peer dials the listen address.
	Dial func(name, listen string) (string, error)
	// SSH is added to each config's [ssh] section.
	SSH string
	// Extra is appended to each config (e.g. [[sync]] sections), by node.
	Extra map[string]string
	// By names what wrote the configs, in their first line (default
	// "tandem demo").
	By string
}

// Setup creates two paired nodes, alpha and beta, under dir: keys,
// authorized_keys, known_hosts and configs.
func Setup(dir string, o Options) ([2]*Node, error) {
	var nodes [2]*Node
	if o.By == "" {
		o.By = "tandem demo"
	}
	pubs := make([]string, 2)
	for i, name := range []string{"alpha", "beta"} {
		listen, err := FreeLoopbackAddr()
		if err != nil {
			return nodes, err
		}
		n := &Node{Name: name, Dir: filepath.Join(dir, name), Listen: listen, Dial: listen}
		if o.Dial != nil {
			if n.Dial, err = o.Dial(name, listen); err != nil {
				return nodes, err
			}
		}
		if err := os.MkdirAll(n.Dir, 0o755); err != nil {
			return nodes, err
		}
		signer, _, err := deploy.EnsureKey(n.StateDir(), "tandem@"+name)
		if err != nil {
			return nodes, err
		}
		pubs[i] = deploy.AuthorizedLine(signer.PublicKey(), "tandem@"+name)
		nodes[i] = n
	}
	for i, n := range nodes {
		peer := nodes[1-i]
		signer, err := deploy.LoadKey(deploy.KeyPath(peer.StateDir()))
		if err != nil {
			return nodes, err
		}
		files := map[string]string{
			"authorized_keys": pubs[1-i] + "\n",
			"known_hosts":     deploy.KnownHostsLine(peer.Dial, signer.PublicKey()) + "\n",
			"tandem.toml": fmt.Sprintf(`# %s: written by %s
node = %q
state_dir = %q

[ssh]
listen = %q
authorized_keys = "authorized_keys"
known_hosts = "known_hosts"
%s
[[peer]]
name = %q
address = %q
%s`, n.Name, o.By, n.Name, n.StateDir(), n.Listen, o.SSH, peer.Name, peer.Dial, o.Extra[n.Name]),
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(n.Dir, name), []byte(data), 0o600); err != nil {
				return nodes, err
			}
		}
	}
	return nodes, nil
}

// FreeLoopbackAddr returns a 127.0.0.1 address nobody listens on right
// now, for a process to bind (see internal/loopback).
func FreeLoopbackAddr() (string, error) { return loopback.FreeAddr() }
