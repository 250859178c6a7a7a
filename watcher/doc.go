// Package watcher turns a synced directory tree into a stream of changes.
//
// It owns recursive fsnotify watching (a watch per directory, each new
// directory walked right after it is watched), per-path debouncing, queue
// overflow recovery by rescan, the periodic safety-net rescan, exclude
// patterns, and the file index: what each path looks like (type, size, mtime,
// mode, owner, link target, BLAKE3 hash), its version vector and the local
// sequence number bumped on every change.
//
// It does not send anything to the peer (pipe does) nor decide conflicts
// (conflict does).
package watcher
