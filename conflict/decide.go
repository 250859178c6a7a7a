package conflict

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Type is what a path is on disk.
type Type uint8

const (
	TypeUnknown Type = iota // not set; Decide treats a live version of unknown type as a file
	TypeFile                // a regular file; its content is Hash and Size
	TypeDir                 // a directory; it has no content of its own (its entries are paths of their own)
	TypeSymlink             // a symbolic link; its content is Target
)

var typeNames = [...]string{TypeUnknown: "", TypeFile: "file", TypeDir: "dir", TypeSymlink: "symlink"}

func (t Type) String() string {
	if int(t) < len(typeNames) && t != TypeUnknown {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// MarshalText writes t as "file", "dir" or "symlink".
func (t Type) MarshalText() ([]byte, error) {
	if int(t) < len(typeNames) && t != TypeUnknown {
		return []byte(typeNames[t]), nil
	}
	return nil, fmt.Errorf("cannot encode %v", t)
}

// UnmarshalText reads "file", "dir" or "symlink".
func (t *Type) UnmarshalText(b []byte) error {
	for i, name := range typeNames {
		if name != "" && string(b) == name {
			*t = Type(i)
			return nil
		}
	}
	return fmt.Errorf("unknown type %q", b)
}

// Hash is a BLAKE3-256 content hash. The zero Hash means "no content" (a
// directory, a symlink, a deleted path).
type Hash [32]byte

// String returns h in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText writes h in lower-case hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 2*len(h) {
		return fmt.Errorf("hash %q: want %d hex digits", b, 2*len(h))
	}
	var v Hash
	if _, err := hex.Decode(v[:], b); err != nil {
		return fmt.Errorf("hash %q: %w", b, err)
	}
	*h = v
	return nil
}

// Version is one node's idea of a path: what Decide compares. The index holds
// more (mode, owner, sequence); only what decides a conflict is here, and it
// is also what the conflict log records.
type Version struct {
	// Node is the node this version comes from: this node for the local
	// version, the sending peer for the remote one.
	Node string `json:"node"`
	// Vector is the path's version vector on Node.
	Vector Vector `json:"vector"`
	// Type is what the path is (or, when Deleted, what it was, if known).
	Type Type `json:"type,omitzero"`
	// Deleted marks a tombstone: the path was removed.
	Deleted bool `json:"deleted,omitempty"`
	// Hash and Size are a regular file's content.
	Hash Hash  `json:"hash,omitzero"`
	Size int64 `json:"size,omitempty"`
	// Mtime is the modification time; the newer one wins a conflict.
	Mtime time.Time `json:"mtime,omitzero"`
	// Target is a symlink's content.
	Target string `json:"target,omitempty"`
}

// Side names one of the two versions given to Decide.
type Side uint8

const (
	Local  Side = iota // the version this node has
	Remote             // the version the peer sent
)

func (s Side) String() string {
	switch s {
	case Local:
		return "local"
	case Remote:
		return "remote"
	}
	return fmt.Sprintf("Side(%d)", uint8(s))
}

// Of returns the version on side s.
func (s Side) Of(local, remote Version) Version {
	if s == Remote {
		return remote
	}
	return local
}

// Other returns the other side.
func (s Side) Other() Side {
	if s == Remote {
		return Local
	}
	return Remote
}

// Action is what the receiver does with an incoming change.
type Action uint8

const (
	// Ignore: the local version has seen the remote one (or they are the
	// same version). Nothing changes, not even the vector.
	Ignore Action = iota
	// Apply: the remote version has seen the local one. Install it and
	// record its vector.
	Apply
	// Conflict: concurrent versions that differ. The winner holds the path,
	// the loser is kept at KeepLoserAs (unless it is a delete), both sides
	// record Merged, and an entry goes to the conflict log.
	Conflict
	// Merge: concurrent versions with the same content (the same bytes, the
	// same symlink target, two directories, two deletes). Not a conflict:
	// no copy, no log entry. Both sides record Merged, and the path takes
	// the winner's metadata (mode, owner, mtime) so the nodes converge.
	Merge
)

func (a Action) String() string {
	switch a {
	case Ignore:
		return "ignore"
	case Apply:
		return "apply"
	case Conflict:
		return "conflict"
	case Merge:
		return "merge"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Decision is what to do with an incoming change. See Decide.
type Decision struct {
	Action Action
	// Winner is the side whose version the path holds afterwards: Local for
	// Ignore, Remote for Apply, the rule's pick for Conflict and Merge.
	Winner Side
	// Kind classifies a Conflict for the log; empty for other actions.
	Kind Kind
	// KeepLoserAs is the path (relative to the sync root, like the path given
	// to Decide) where the losing version is kept, "" when nothing is kept:
	// every action but Conflict, and a Conflict whose loser is a delete.
	KeepLoserAs string
	// CopyVector is the vector to record for the copy at KeepLoserAs: the
	// loser's vector, so that the copy both nodes make is the same version.
	CopyVector Vector
	// Merged is the vector to record for the path afterwards, whatever the
	// action: local.Vector for Ignore, remote.Vector for Apply, their merge
	// otherwise. Both nodes compute the same Merged for a pair of versions.
	Merged Vector
}

func (d Decision) String() string {
	var b strings.Builder
	b.WriteString(d.Action.String())
	if d.Kind != "" {
		fmt.Fprintf(&b, "(%s)", d.Kind)
	}
	fmt.Fprintf(&b, " winner=%v merged=%v", d.Winner, d.Merged)
	if d.KeepLoserAs != "" {
		fmt.Fprintf(&b, " keep=%s copy=%v", d.KeepLoserAs, d.CopyVector)
	}
	return b.String()
}

// Decide says what to do with remote, the version of path that the peer
// sent, given local, this node's version of it. A path this node has never
// seen is a Version with Deleted set and an empty Vector. taken reports
// whether a candidate name for the loser's copy is occupied by something
// other than the loser's content (nil: nothing is); see ConflictName.
//
// Decide is pure: given the same versions the other way round (and the same
// answers from taken), the peer reaches the same result, and that is what
// keeps the two nodes identical without talking about the conflict.
//
// Ordered vectors decide alone, whatever the mtimes say: when remote's
// vector is greater, Apply; when local's is greater or equal, Ignore. (Equal
// vectors with different content cannot arise from the protocol; local is
// kept.)
//
// Concurrent vectors: the winner is chosen by the first of these rules
// that separates the two versions:
//
//  0. A delete beats a live version whose content is exactly what the
//     delete removed (same type, and same hash and size or target; a
//     tombstone keeps them): that version modified nothing, so deleting it
//     loses nothing. The action is Merge, with the delete the winner:
//     nothing is copied or logged, and where the peer deleted, the delete
//     is applied.
//  1. A live version beats a delete ("modify beats delete"), whatever the
//     mtimes.
//  2. A directory beats a file or symlink, whatever the mtimes: its
//     children are paths with versions of their own, and keeping the
//     directory keeps them. The file or symlink is kept beside it as a
//     conflict copy. (So a live directory never loses, and never needs a
//     copy.)
//  3. The newer mtime wins.
//  4. On equal mtimes, the greater node name (byte order) wins: "beta"
//     beats "alpha".
//  5. Only when both claim the same node (a caller bug): the greater hash,
//     then target, size and type, so that the order stays total.
//
// Then, if both versions have the same content (both deleted, two
// directories, the same symlink target, the same file hash and size), the
// action is Merge: nothing would be lost, so no copy and no log entry.
// Otherwise it is Conflict, and the loser, unless it is a delete, is kept
// at ConflictName(path, loser.Node, loser.Mtime, taken). Symlinks are
// content like files: file against symlink and symlink against symlink
// follow the mtime rule, and a losing symlink is kept as a symlink with
// the same target (never followed).
//
// Vectors. Merged is local.Vector.Merge(remote.Vector) with no increment:
// both nodes compute it from the same pair, so after acting both hold the
// same content under the same vector, the next comparison is Equal, and
// nothing is sent back and forth. Incrementing (each node bumping its own
// counter) would make the two results concurrent again and the conflict
// would ping-pong forever. A node whose local version won still records
// Merged, so its next change dominates the peer's losing version.
//
// The copy at KeepLoserAs is a new path made on both nodes by the same
// decision, from the same content. It gets CopyVector, the loser's vector,
// on both: the copies are then the same version, and when one node's copy
// reaches the other (before or after that node has decided the conflict)
// the comparison is Equal or a plain Apply of identical content, never a
// conflict of its own. If the copy name is taken on one node only (taken
// differs), the nodes choose different names; each copy then replicates as
// an ordinary new file, so both nodes end up with both copies: untidy, not
// lossy.
//
// A known benign case: if a node changes the path again before it learns
// of the conflict, the peer sees that change as concurrent with Merged
// and keeps one more copy (of content that node already replaced).
// Nothing is lost.
func Decide(path string, local, remote Version, taken func(name string) bool) Decision {
	merged := local.Vector.Merge(remote.Vector)
	switch local.Vector.Compare(remote.Vector) {
	case Equal, Greater:
		return Decision{Action: Ignore, Winner: Local, Merged: merged}
	case Lesser:
		return Decision{Action: Apply, Winner: Remote, Merged: merged}
	}
	d := Decision{Winner: Remote, Merged: merged}
	if stale, del := staleAgainstDelete(local, remote); stale {
		// The live side holds only what the delete removed: nothing is
		// lost by deleting it, so the delete wins without a conflict.
		d.Winner, d.Action = del, Merge
		return d
	}
	if beats(local, remote) {
		d.Winner = Local
	}
	if sameContent(local, remote) {
		d.Action = Merge
		return d
	}
	d.Action = Conflict
	d.Kind = kindOf(local, remote)
	loser := d.Winner.Other().Of(local, remote)
	if !loser.Deleted {
		d.KeepLoserAs = ConflictName(path, loser.Node, loser.Mtime, taken)
		d.CopyVector = loser.Vector.Merge(nil) // a copy: Decision shares no memory with its inputs
	}
	return d
}

// staleAgainstDelete reports whether one of a and b is a delete and the
// other a live version with exactly the content the delete removed (its
// tombstone keeps the type, hash, size and target it had), and which side
// deleted. Such a live version is no modification: it arises when a node
// is killed after writing what the peer sent but before recording it, and
// its next scan takes the file for a new local one; or when both nodes
// made the same content and one then deleted it. Letting "modify beats
// delete" keep it would bring deleted files and directories back to life.
func staleAgainstDelete(a, b Version) (bool, Side) {
	del, live, side := a, b, Local
	if !a.Deleted {
		del, live, side = b, a, Remote
	}
	if !del.Deleted || live.Deleted || del.Type == TypeUnknown {
		return false, 0
	}
	was := del
	was.Deleted = false
	return sameContent(was, live), side
}

// beats reports whether a wins over b when they are concurrent. It is a
// total order: for a != b, exactly one of beats(a, b) and beats(b, a) holds.
func beats(a, b Version) bool {
	if a.Deleted != b.Deleted {
		return !a.Deleted
	}
	if !a.Deleted {
		if aDir, bDir := a.Type == TypeDir, b.Type == TypeDir; aDir != bDir {
			return aDir
		}
	}
	if c := a.Mtime.Round(0).Compare(b.Mtime.Round(0)); c != 0 {
		return c > 0
	}
	if a.Node != b.Node {
		return a.Node > b.Node
	}
	if c := bytes.Compare(a.Hash[:], b.Hash[:]); c != 0 {
		return c > 0
	}
	if a.Target != b.Target {
		return a.Target > b.Target
	}
	if a.Size != b.Size {
		return a.Size > b.Size
	}
	return a.Type >= b.Type
}

// sameContent reports whether a and b would leave the same thing at the
// path, metadata aside.
func sameContent(a, b Version) bool {
	if a.Deleted || b.Deleted {
		return a.Deleted && b.Deleted
	}
	at, bt := liveType(a.Type), liveType(b.Type)
	if at != bt {
		return false
	}
	switch at {
	case TypeDir:
		return true
	case TypeSymlink:
		return a.Target == b.Target
	}
	return a.Hash == b.Hash && a.Size == b.Size
}

// kindOf classifies a conflict between a and b.
func kindOf(a, b Version) Kind {
	at, bt := liveType(a.Type), liveType(b.Type)
	switch {
	case a.Deleted || b.Deleted:
		return KindDelete
	case at == TypeDir || bt == TypeDir:
		return KindDir
	case at == TypeSymlink || bt == TypeSymlink:
		return KindSymlink
	}
	return KindFile
}

func liveType(t Type) Type {
	if t == TypeUnknown {
		return TypeFile
	}
	return t
}
