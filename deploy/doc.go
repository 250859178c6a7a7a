// Package deploy sets tandem up on a node: keys, config files, the systemd
// unit and remote installation over SSH.
//
// It owns the node key file (one ed25519 key per node, both its SSH host key
// and its client identity, stored in OpenSSH format with mode 0600 in the
// state dir) and the lines that pair two nodes (authorized_keys and
// known_hosts entries). Remote install (`tandem deploy`) and `tandem pair`
// come with the deploy issue.
package deploy
