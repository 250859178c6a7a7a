// Package conflict decides what to do with an incoming change and keeps the
// conflict log.
//
// It owns version vectors (Compare, Merge, Update), the decision for an
// incoming change (apply, ignore, conflict), the deterministic winner both
// peers compute identically (newer mtime, then node name), the name under
// which a losing version is kept, and the conflict log: JSON lines in the
// state dir, with queries for the CLI.
//
// Decisions are pure: no I/O, no clock. Only the log store touches disk.
package conflict
