package failover

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// StateFile is the name of the file in the state dir that keeps the role
// and epoch across restarts.
const StateFile = "failover.json"

// stateJSON is the file's layout.
type stateJSON struct {
	Epoch uint64 `json:"epoch"`
	Role  Role   `json:"role"`
}

// LoadState reads the persisted role and epoch from dir. A missing file is
// a node that never had a role: epoch 0, standby. A damaged file is an
// error, not a reset: a node that forgot its epoch could accept claims it
// must refuse.
func LoadState(dir string) (Persisted, error) {
	path := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Persisted{}, nil
	}
	if err != nil {
		return Persisted{}, fmt.Errorf("load failover state: %w", err)
	}
	var s stateJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return Persisted{}, fmt.Errorf("load failover state %s: %w; restore it from the peer's (its epoch is at least as high) or delete it to start from epoch 0", path, err)
	}
	return Persisted(s), nil
}

// SaveState writes the role and epoch to dir atomically: a temp file in
// the same directory, fsync, rename over the old one, fsync the directory.
// When it returns nil the state survives a crash.
func SaveState(dir string, st Persisted) error {
	b, err := json.Marshal(stateJSON(st))
	if err != nil {
		return fmt.Errorf("save failover state: %w", err)
	}
	b = append(b, '\n')
	f, err := os.CreateTemp(dir, "."+StateFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("save failover state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save failover state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save failover state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save failover state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, StateFile)); err != nil {
		return fmt.Errorf("save failover state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save failover state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save failover state: sync %s: %w", dir, err)
	}
	return nil
}
