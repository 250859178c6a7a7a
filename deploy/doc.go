// Package deploy sets tandem up on a node: keys, config files, the systemd
// unit and remote installation over SSH.
//
// It owns the node key file (one ed25519 key per node, both its SSH host key
// and its client identity, stored in OpenSSH format with mode 0600 in the
// state dir) and the lines that pair two nodes (authorized_keys and
// known_hosts entries, merged into existing files by MergeAuthorized and
// MergeKnownHosts), the systemd unit (tandem.service, embedded, adapted by
// RenderUnit), and the remote install behind `tandem deploy`: Dial logs in
// to a host as the operator (x/crypto/ssh, known_hosts checked, no trust on
// first use), Remote runs commands and writes files atomically over SFTP,
// and Deploy installs, pairs and starts two nodes, idempotently, rolling
// back a binary that does not run. Private node keys are made on their node
// (by `tandem init` there) and never travel.
//
// It reads no flags, environment or config files of its own: cmd/tandem
// passes everything in Options.
package deploy
