// Command tandem-bench measures tandem end to end against what users would
// pick instead, on this machine, and prints markdown tables of the figures
// with their ratios to tandem's:
//
//   - files: rsync over SSH, lsyncd, Unison and Syncthing, each through the
//     same in-process latency proxy as tandem;
//   - db: tandem's row replication against MariaDB's own replication, on
//     the same sysbench load (go test -bench BenchmarkRows ./cmd/tandem);
//   - failover: the time from killing the primary to DNS answering the
//     survivor, through BIND9 and through tandem's own DNS server
//     (go test -run TestFailoverWithBIND ./cmd/tandem).
//
// For files it starts, under one scratch directory it removes at the end:
// two tandem daemons, an OpenSSH server on loopback for the SSH-based
// tools, and each installed peer in turn. The db and failover parts start
// their servers (four MariaDB servers, BIND9) through the repository's own
// test helpers, in temp dirs. Only loopback is used. It stops everything it
// started when it ends or on Ctrl-C.
//
// Run it from the repository root (it builds ./cmd/tandem unless --tandem
// names a binary, and runs go test for the db and failover parts):
//
//	go run ./cmd/tandem-bench                    # everything, 20-30 min
//	go run ./cmd/tandem-bench --tree 100000      # the tree size
//	go run ./cmd/tandem-bench --parts db,failover
package main
