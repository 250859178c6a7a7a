package index

import (
	"os"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/tandemhost/tandem/conflict"
)

// A receiver killed after writing the peer's versions but before Apply
// recorded them: the next scan adopts the peer's versions for the paths
// whose content matches the intent, and makes local versions only for the
// others.
func TestScanAdoptsIntents(t *testing.T) {
	s := newScanTree(t)
	s.write("keep.txt", "old")
	s.write("gone.txt", "peer deletes this")
	s.scan()
	peer := conflict.Vector{}.Update("beta")
	intents := []Record{
		{Path: "new.txt", Type: File, Mode: 0o644, Size: 4, Hash: blake3.Sum256([]byte("peer")), Vector: peer, Origin: "beta"},
		{Path: "dir", Type: Dir, Mode: 0o755, Vector: peer, Origin: "beta"},
		{Path: "other.txt", Type: File, Mode: 0o644, Size: 4, Hash: blake3.Sum256([]byte("peer")), Vector: peer, Origin: "beta"},
		{Path: "gone.txt", Type: File, Deleted: true, Vector: conflict.Vector{}.Update("alpha").Update("beta"), Origin: "beta"},
	}
	if err := s.db.Intend(s.dir, intents...); err != nil {
		t.Fatal(err)
	}
	s.write("new.txt", "peer")                            // what the receiver wrote
	s.mkdir("dir")                                        // likewise
	s.write("other.txt", "mine")                          // a local write, not the intended content
	if err := os.Remove(s.path("gone.txt")); err != nil { // the receiver's delete
		t.Fatal(err)
	}
	got := byPath(s.scan())
	if r, want := got["gone.txt"], intents[3].Vector.String(); !r.Deleted || r.Vector.String() != want || r.Origin != "beta" || !r.PeerHas {
		t.Errorf("gone.txt = %+v, want the peer's delete at %s", r, want)
	}
	for _, p := range []string{"new.txt", "dir"} {
		r := got[p]
		if r.Vector.String() != "{beta:1}" || r.Origin != "beta" || !r.PeerHas {
			t.Errorf("%s = %+v, want the peer's version {beta:1} from beta, marked PeerHas", p, r)
		}
	}
	if r := got["other.txt"]; r.Vector.String() != "{alpha:1}" || r.Origin != "alpha" {
		t.Errorf("other.txt = %+v, want a local version {alpha:1}: its content is not the intent's", r)
	}
	if _, ok := s.db.intent(s.dir, "new.txt"); ok {
		t.Error("an adopted intent is still recorded")
	}
	// Apply clears what is left.
	if _, err := s.db.Apply(s.dir, "beta", 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.db.intent(s.dir, "other.txt"); ok {
		t.Error("Apply left an intent behind")
	}
}
