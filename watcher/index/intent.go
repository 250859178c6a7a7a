package index

import (
	"fmt"

	"go.etcd.io/bbolt"
)

// Intents guard against one crash window. The receiver writes the peer's
// version of a path to disk, then records it here with Apply. Killed in
// between, it leaves the peer's content on disk that the index does not
// know; the next scan would take it for a new local change and give it a
// version of this node's own, which then competes with the peer's later
// versions of the path (a file the peer deleted since comes back to life).
//
// So before it writes, the receiver records its intent: the peer's records
// it is about to write. A scan that finds a path not matching the index
// but matching an intent (same type and content) adopts the intent's
// version instead of making one of its own. Apply clears the intents of
// the paths it records; an adoption clears its own.

var bucketIntents = []byte("intents")

// Intend records that recs are about to be written to disk in root.
func (db *DB) Intend(root string, recs ...Record) error {
	if err := validateAll(recs); err != nil {
		return fmt.Errorf("intend: %w", err)
	}
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		t, err := writeTree(tx, root)
		if err != nil {
			return err
		}
		b, err := t.root.CreateBucketIfNotExists(bucketIntents)
		if err != nil {
			return err
		}
		for i := range recs {
			if err := b.Put(pathKey(recs[i].Path), appendBody(nil, &recs[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record intents in %s: %w", root, err)
	}
	return nil
}

// intent returns the recorded intent for path, if any.
func (db *DB) intent(root, path string) (Record, bool) {
	var r Record
	found := false
	db.bolt.View(func(tx *bbolt.Tx) error {
		t := readTree(tx, root)
		if t == nil {
			return nil
		}
		b := t.root.Bucket(bucketIntents)
		if b == nil {
			return nil
		}
		v := b.Get(pathKey(path))
		if v == nil {
			return nil
		}
		found = decodeBody(path, v, &r) == nil
		return nil
	})
	return r, found
}

// clearIntents deletes the intents for paths within tx.
func (t *tree) clearIntents(paths ...string) error {
	b := t.root.Bucket(bucketIntents)
	if b == nil {
		return nil
	}
	for _, p := range paths {
		if err := b.Delete(pathKey(p)); err != nil {
			return err
		}
	}
	return nil
}

// sameContent reports whether two live records hold the same thing: type
// and, for files, hash and size, for symlinks the target.
func sameContent(a, b *Record) bool {
	if a.Deleted || b.Deleted || a.Type != b.Type {
		return false
	}
	switch a.Type {
	case File:
		return a.Hash == b.Hash && a.Size == b.Size
	case Symlink:
		return a.Target == b.Target
	}
	return true
}
