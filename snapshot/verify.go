package snapshot

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"os"
	"path/filepath"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"
)

// Problem is something wrong in a snapshot that verify found.
type Problem struct {
	// Path is "ROOT/PATH" for a file of a synced tree, "db/FILE" for a dump.
	Path string `json:"path"`
	// Kind is "missing", "corrupted" (content differs from its hash),
	// "size", "type" or "target".
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

func (p Problem) String() string { return p.Kind + ": " + p.Path + ": " + p.Detail }

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// SamplePercent of the files (and dumps) are re-hashed; 0 or 100 means
	// all. Every path is checked for presence, type and size regardless.
	SamplePercent float64
	// Seed picks the sample; the same seed picks the same files.
	Seed uint64
}

// VerifyResult is what Verify checked and found.
type VerifyResult struct {
	ID       string    `json:"id"`
	Entries  int64     `json:"entries"` // manifest entries checked for presence
	Hashed   int64     `json:"hashed"`  // files and dumps re-hashed
	Bytes    int64     `json:"bytes"`   // bytes re-hashed
	Problems []Problem `json:"problems"`
}

// Manifest calls fn for every entry of snapshot id's manifest, in order.
func (s *Store) Manifest(id string, fn func(*Entry) error) error {
	if _, err := s.Get(id); err != nil {
		return err
	}
	return readManifest(filepath.Join(s.dir, id), fn)
}

// Verify checks snapshot id against its manifest: every path is there with
// its type, size and symlink target, and a sample of the files and dumps
// still has the content its hash says. Problems are results, not errors:
// the error is for a snapshot that cannot be checked at all.
func (s *Store) Verify(ctx context.Context, id string, o VerifyOptions) (VerifyResult, error) {
	res := VerifyResult{ID: id, Problems: []Problem{}}
	info, err := s.Get(id)
	if err != nil {
		return res, err
	}
	if !info.Good() {
		return res, fmt.Errorf("snapshot %s is %s (%s): there is nothing to verify", id, info.Status, info.Error)
	}
	pick := sampler(o)
	h := blake3.New()
	buf := make([]byte, 256<<10)
	n := 0
	err = readManifest(filepath.Join(s.dir, id), func(e *Entry) error {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		res.Entries++
		name := e.Root + "/" + e.Path
		p := filepath.Join(s.RootPath(id, e.Root), filepath.FromSlash(e.Path))
		problem := func(kind, format string, args ...any) {
			res.Problems = append(res.Problems, Problem{Path: name, Kind: kind, Detail: fmt.Sprintf(format, args...)})
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				problem("missing", "not in the snapshot")
				return nil
			}
			problem("missing", "%v", err)
			return nil
		}
		if t := typeOfMode(st.Mode); t != e.Type {
			problem("type", "is a %v, the manifest says %v", t, e.Type)
			return nil
		}
		switch e.Type {
		case Symlink:
			if t, err := os.Readlink(p); err != nil || t != e.Target {
				problem("target", "points to %q, the manifest says %q", t, e.Target)
			}
		case File:
			if st.Size != e.Size {
				problem("size", "%d bytes, the manifest says %d", st.Size, e.Size)
				return nil
			}
			if !pick(name) {
				return nil
			}
			sum, n, err := hashFile(p, h, buf)
			res.Hashed++
			res.Bytes += n
			if err != nil {
				problem("corrupted", "cannot be read: %v", err)
			} else if sum != e.Hash {
				problem("corrupted", "content hash %x, the manifest says %x", sum[:8], e.Hash[:8])
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for _, t := range info.Tables {
		name := "db/" + t.File
		if !validRel(t.File) {
			res.Problems = append(res.Problems, Problem{Path: name, Kind: "corrupted", Detail: "snapshot.json names a bad dump path"})
			continue
		}
		p := filepath.Join(s.dir, id, dbDir, filepath.FromSlash(t.File))
		fi, err := os.Stat(p)
		if err != nil {
			res.Problems = append(res.Problems, Problem{Path: name, Kind: "missing", Detail: err.Error()})
			continue
		}
		if fi.Size() != t.Size {
			res.Problems = append(res.Problems, Problem{Path: name, Kind: "size", Detail: fmt.Sprintf("%d bytes, snapshot.json says %d", fi.Size(), t.Size)})
			continue
		}
		if !pick(name) {
			continue
		}
		sum, n, err := hashFile(p, h, buf)
		res.Hashed++
		res.Bytes += n
		if err != nil || hex.EncodeToString(sum[:]) != t.Hash {
			res.Problems = append(res.Problems, Problem{Path: name, Kind: "corrupted", Detail: "the dump's hash differs from snapshot.json's"})
		}
	}
	return res, nil
}

// sampler returns whether to hash a path: a hash of the seed and the path
// below the percentage, so a sample is random but repeatable.
func sampler(o VerifyOptions) func(string) bool {
	if o.SamplePercent <= 0 || o.SamplePercent >= 100 {
		return func(string) bool { return true }
	}
	limit := uint64(o.SamplePercent / 100 * float64(1<<32))
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], o.Seed)
	return func(p string) bool {
		h := blake3.New()
		h.Write(seed[:])
		h.Write([]byte(p))
		var sum [8]byte
		h.Digest().Read(sum[:])
		return uint64(binary.LittleEndian.Uint32(sum[:])) < limit
	}
}

func hashFile(p string, h *blake3.Hasher, buf []byte) (sum [32]byte, n int64, err error) {
	f, err := os.Open(p)
	if err != nil {
		return sum, 0, err
	}
	defer f.Close()
	h.Reset()
	n, err = io.CopyBuffer(h, onlyReader{f}, buf)
	if err != nil {
		return sum, n, err
	}
	return hashOf(h), n, nil
}
