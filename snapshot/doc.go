// Package snapshot keeps point-in-time copies of the synced trees and
// databases: hard-link snapshots built from the previous snapshot and the
// index's changes, their manifests, consistent database dumps, rotation by
// age buckets, restore and verify.
//
// # Layout
//
// A Store is one directory (the [snapshot] dir). Each snapshot is a
// directory in it named by its UTC time, 2026-11-22T031500Z:
//
//	<id>/snapshot.json        Info: status, time, per-root index seq, GTID, totals
//	<id>/manifest.tsv.zst     one line per path: type, mode, owner, size, mtime, BLAKE3;
//	                          or, usually, a delta: the lines that differ from the parent's
//	<id>/manifest-<id>.tsv.zst the manifests a delta builds on, hard links to their files
//	<id>/files/<root>/...     each synced root (by [[sync]] name, path-escaped)
//	<id>/db/<database>/<table>.sql.zst   the database dump, when enabled
//	.tmp-<id>/                a snapshot being built (or left by a crash)
//	.del-<id>/                a snapshot being deleted
//	.lock                     flock held while taking or pruning
//
// # Taking a snapshot
//
// Take builds the new snapshot under .tmp-<id> and renames it to <id> only
// once everything is written and synced, so a crash leaves the older
// snapshots and at worst a temp dir, which the next Take removes. A path
// unchanged since the previous complete snapshot is a hard link to that
// snapshot's copy, never to the live file (an in-place write or chmod of
// the live file must not reach any snapshot); a changed file is copied
// (reflink first), then re-checked: a file that keeps changing during the
// copy is recorded as such in the manifest. What changed comes from the
// index (Changes: every path whose record changed after the sequence the
// previous snapshot recorded); when the index cannot say (no previous
// snapshot for the root, the index was rebuilt), Take walks the live tree
// and compares each path's stat with the previous manifest.
//
// The manifest is a delta against the parent's (the paths added, changed
// and removed), and names the parent; the parent's manifest file, and the
// ones it builds on in turn, are hard-linked into the new snapshot's
// directory, so pruning the parent leaves the chain readable. Every
// manifestChainMax snapshots (or when the deltas grow heavy) a full
// manifest starts a new chain. A full manifest of 100,000 files is about
// 4.4 MB compressed (the hashes do not compress); a delta for 1% of them
// changed, about 50 KB.
//
// A snapshot that fails is recorded as failed (its partial data removed,
// its error kept in snapshot.json); it never counts as the previous
// snapshot of the next one and never causes rotation.
//
// # Databases
//
// Dumper writes one zstd-compressed SQL file per table, every table read
// inside one START TRANSACTION WITH CONSISTENT SNAPSHOT, and records the
// binlog position and GTID of that snapshot. A table whose CHECKSUM TABLE
// and definition are unchanged since the previous snapshot is a hard link
// to the previous dump. RestoreDB loads a dump back, into the same or
// another database.
//
// # Retention
//
// Plan is a pure function of the snapshot list, the time and Keep: the
// newest complete snapshot of each of the last N hours, days, weeks and
// months is kept, and always the newest complete one; failed snapshots
// go once a newer complete one exists. Scheduler runs takes every
// cfg.Every and prunes in the background at idle I/O priority.
//
// The package does not watch files (package watcher does) nor talk to
// the peer; restoring into a live tree writes through temp+rename, and the
// watcher replicates the result like any change.
package snapshot
