package deploy

import (
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func knownHostsLine(address string, pub ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(address)}, pub)
}
