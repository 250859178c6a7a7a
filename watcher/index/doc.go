// Package index is the durable state of every synced tree: for each path,
// what it looks like (a Record), its version vector and the local sequence
// number of its last change; and the scanner that brings that state up to
// date with the disk.
//
// The index is the replication journal. Every change to a record, local (Put,
// Scan) or applied from the peer (Apply), gets the next sequence number of its
// tree, so Since(root, seq) yields everything that changed after seq, in
// order. Deleted paths stay as tombstones so deletes replicate and conflicts
// can be decided. Apply moves the peer's watermark in the same transaction as
// the records it stores, so a restart resumes exactly where the last durable
// apply left off.
//
// Each record also carries a local stat cache (inode, device, ctime): Scan
// hashes only the files whose lstat no longer matches it, and a file whose
// bytes and metadata are unchanged only refreshes the cache (no new version,
// nothing to replicate). A file hashed within a couple of seconds of its last
// change is hashed again by the next scan, since a write in the same
// timestamp tick would not show in its stat. Scan never follows symbolic
// links, skips special files, and refuses to tombstone a tree whose root has
// vanished or emptied (ErrRootVanished): an unmounted disk must not delete
// the peer's copy.
//
// Scans race with the receiver writing the peer's changes. A scan stores what
// it saw only if the record it compared against is still the current one,
// and never for a path the receiver holds (DB.Hold), so the receiver's own
// writes do not come back as local changes.
//
// Layout of the bbolt file (format 1):
//
//	meta/format            = 1
//	roots/<root>/paths     key: path with '/' replaced by 0x00, value: record body
//	roots/<root>/seqs      key: big-endian seq, value: path; its bucket sequence is the tree's seq
//	roots/<root>/peers     key: peer node, value: big-endian watermark
//	roots/<root>/counts    live files, dirs, symlinks, bytes and tombstones
//
// Replacing '/' by 0x00, the smallest byte, makes key order the tree's
// pre-order: a directory comes right before its contents and every subtree is
// one contiguous key range.
//
// The package does not watch for events (package watcher does), send anything
// to the peer (pipe) nor compare versions to decide conflicts (conflict).
package index
