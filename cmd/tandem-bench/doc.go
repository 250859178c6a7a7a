// Command tandem-bench measures tandem's file replication end to end against
// the tools users would pick instead (rsync over SSH, lsyncd, Unison,
// Syncthing), on this machine, each through the same in-process latency
// proxy, and prints a markdown table of the figures with their ratios to
// tandem's.
//
// It starts, under one scratch directory it removes at the end: two tandem
// daemons, an OpenSSH server on loopback for the SSH-based tools, and each
// installed peer in turn. Only loopback is used. It stops everything it
// started when it ends or on Ctrl-C.
//
// Run it from the repository root (it builds ./cmd/tandem unless --tandem
// names a binary):
//
//	go run ./cmd/tandem-bench                    # quick sizes
//	go run ./cmd/tandem-bench --tree 100000      # the tree size
package main
