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
// It does not read or write the synced trees, nor the index: the receiver
// does, following the Decision.
//
// # Deciding
//
// Decide(path, local, remote, taken) compares the two versions' vectors and,
// for concurrent ones, picks a winner by rules both nodes apply the same way:
// a live version beats a delete, a directory beats a file or symlink, then
// the newer mtime, then the greater node name. See Decide for the rules and
// for why the resolved vector is the plain merge of the two.
//
// What the receiver does with a Decision d:
//
//	Ignore    nothing.
//	Apply     install remote at path (or delete it); record remote with d.Merged.
//	Merge     same content on both: record d.Merged; if d.Winner is Remote,
//	          also take remote's metadata (mode, owner, mtime).
//	Conflict  1. keep the loser at d.KeepLoserAs (if not ""): a local loser
//	             is renamed there, a remote loser written there; record the
//	             copy with d.CopyVector;
//	          2. if d.Winner is Remote, install remote at path;
//	          3. record the path's winner with d.Merged;
//	          4. Log.Append(NewEntry(root, path, local, remote, d)).
//
// Both nodes act on the same pair of versions, so both end with the same
// content under the same vectors: nothing about the conflict itself needs to
// be sent. As for any apply, the receiver records what it wrote in the index
// before the watcher's event for it is handled, so nothing echoes.
//
// Conflict copies (ConflictName, IsConflictName) are ordinary paths: they
// sync, and can conflict, like any other.
//
// # The log
//
// Open (the daemon, one process, enforced by a lock) appends entries and
// resolutions to conflicts.jsonl and fsyncs each line; Load (the CLI) reads
// the file while the daemon writes. The log is append-only: an entry's line
// never changes, MarkResolved adds a line, and readers show the latest state.
// Unreadable lines are skipped and counted, never fatal. Entry has room for
// MySQL row conflicts (Kind "row", Row with the row images) logged by
// package binlog.
package conflict
