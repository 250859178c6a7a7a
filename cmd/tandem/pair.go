package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/tandemhost/tandem/deploy"
)

const pairHelp = `For two nodes set up by hand: makes this node trust its peer. Give the line
"tandem init -c FILE" printed on the peer (as arguments, or on stdin with -
or no argument). Prints the two lines this node needs:
  - for ssh.authorized_keys: the peer's key, as given;
  - for ssh.known_hosts: "[host]:port" and the key, where host:port is
    [[peer]].address in the config (or --address).
With --write, puts them in those files instead (atomically; other lines
stay; an older key of the same peer is replaced) and says what changed.
Refuses a line whose comment names another node than [[peer]].name, or this
node's own key.

Run it on both nodes, each with the other's line; then "tandem check".`

func pairFlags(fs *flag.FlagSet, e *env) {
	fs.String("address", "", "HOST:PORT where this node dials the peer (default: [[peer]].address)")
	fs.Bool("write", false, "write the lines into ssh.authorized_keys and ssh.known_hosts")
}

func cmdPair(e *env, args []string) int {
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	line := strings.Join(args, " ")
	if line == "" || line == "-" {
		sc := bufio.NewScanner(os.Stdin)
		if sc.Scan() {
			line = sc.Text()
		}
	}
	pub, comment, err := deploy.ParseAuthorizedLine(line)
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem pair: %v\n", err)
		return exitUsage
	}
	peer := cfg.Peers[0]
	if own, err := deploy.LoadKey(deploy.KeyPath(cfg.StateDir)); err == nil && bytes.Equal(own.PublicKey().Marshal(), pub.Marshal()) {
		fmt.Fprintf(e.stderr, "tandem pair: that is this node's own key; give the line `tandem init` prints on the peer %s\n", peer.Name)
		return exitUsage
	}
	if name, ok := strings.CutPrefix(comment, "tandem@"); ok && name != peer.Name {
		fmt.Fprintf(e.stderr, "tandem pair: the key line is node %s's (%s), but this node's peer is %s; paste the line `tandem init` prints on %s\n", name, comment, peer.Name, peer.Name)
		return exitUsage
	}
	address := e.flags.Lookup("address").Value.String()
	if address == "" {
		address = peer.Address
	} else if err := checkHostPort(address, true); err != nil {
		fmt.Fprintf(e.stderr, "tandem pair: --address %q %v\n", address, err)
		return exitUsage
	}
	authLine := deploy.AuthorizedLine(pub, comment)
	if !e.flags.Lookup("write").Value.(flag.Getter).Get().(bool) {
		fmt.Fprintf(e.stdout, "# add to %s:\n%s\n# add to %s:\n%s\n", cfg.SSH.AuthorizedKeys, authLine,
			cfg.SSH.KnownHosts, deploy.KnownHostsLine(address, pub))
		return exitOK
	}
	failed := false
	update := func(file string, merge func([]byte) ([]byte, bool, error)) {
		have, err := os.ReadFile(file)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(e.stderr, "tandem pair: %v\n", err)
			failed = true
			return
		}
		out, changed, err := merge(have)
		if err == nil && changed {
			err = deploy.WriteFile(file, out, 0o644)
		}
		switch {
		case err != nil:
			fmt.Fprintf(e.stderr, "tandem pair: %v\n", err)
			failed = true
		case changed:
			fmt.Fprintf(e.stdout, "%s: paired with %s\n", file, peer.Name)
		default:
			fmt.Fprintf(e.stdout, "%s: unchanged\n", file)
		}
	}
	update(cfg.SSH.AuthorizedKeys, func(b []byte) ([]byte, bool, error) { return deploy.MergeAuthorized(b, authLine) })
	update(cfg.SSH.KnownHosts, func(b []byte) ([]byte, bool, error) {
		out, changed := deploy.MergeKnownHosts(b, address, pub)
		return out, changed, nil
	})
	if failed {
		return exitFailure
	}
	return exitOK
}
