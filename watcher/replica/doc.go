// Package replica replicates one node's synced trees to its peer and applies
// the peer's changes to this node's trees.
//
// It owns the file stream protocol spoken over pipe streams, the sender that
// streams index records above the peer's watermark (then live changes), and
// the receiver that decides each incoming change (conflict.Decide), applies
// it to the tree through os.Root (temp file, fsync, rename), records it in
// the index together with the new watermark, and acks.
//
// It does not detect local changes (watcher and watcher/index do), decide
// winners (conflict does) or move bytes between machines (pipe does).
//
// Data flow for one root, alpha sending to beta:
//
//	alpha: index.Since(watermark) --Change{seq, record, inline data}--> beta receiver
//	                                  <--Want{seq, signature}--------- (large files only)
//	       bulk streams x K ------------Range{seq, off, delta}------->  (pwrite into temp)
//	                                  <--Ack{seq}--------------------- after index.Apply
//
// The sender opens one "files" stream per root on its outbound session and K
// "files-bulk" streams shared by all roots: one SSH channel's 2 MiB window
// caps it at about 20 MB/s on a 100 ms link, so large content is cut into
// ranges spread over the bulk streams, each range a delta (pipe/delta)
// against the receiver's current copy, its literal data zstd-compressed.
// Small files travel inline in their Change, so a new small file costs one
// one-way trip.
//
// Acks and watermarks: the receiver acks the highest sequence number S such
// that every change it received with a number up to S is durably applied
// (file renamed into place, directory fsynced, index and watermark
// committed in one bbolt transaction). The sender keeps at most a window of
// unacked changes in flight and never needs to remember more: on reconnect
// it starts again from the watermark the receiver reports.
//
// No echoes: the receiver holds a path in the index (index.DB.Hold) while it
// writes it and records the new file's stat with the change, so the
// watcher's event for the write finds nothing new; records whose origin is
// the peer are never sent back to it.
//
// Safety: every path from the peer is checked (relative, clean, no "..", no
// NUL, valid UTF-8, bounded length) and then opened through os.Root, so a
// hostile peer cannot write outside the root, even through a symlink.
package replica
