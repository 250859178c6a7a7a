package failover

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	got, err := LoadState(dir)
	if err != nil || got != (Persisted{}) {
		t.Fatalf("LoadState(empty dir) = %+v, %v; want zero, nil", got, err)
	}
	for _, st := range []Persisted{{Epoch: 1, Role: Primary}, {Epoch: 1 << 60, Role: Standby}} {
		if err := SaveState(dir, st); err != nil {
			t.Fatal(err)
		}
		got, err := LoadState(dir)
		if err != nil || got != st {
			t.Errorf("LoadState after SaveState(%+v) = %+v, %v", st, got, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != StateFile {
		t.Errorf("state dir holds %v, want only %s (no temp files left)", entries, StateFile)
	}
}

func TestLoadStateDamaged(t *testing.T) {
	for _, content := range []string{"", "{", `{"epoch": 3, "role": "leader"}`, `{"epoch": -1}`} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadState(dir); err == nil || !strings.Contains(err.Error(), "epoch 0") {
			t.Errorf("LoadState(%q) error = %v, want one saying how to recover", content, err)
		}
	}
}

func TestSaveStateUnwritable(t *testing.T) {
	if err := SaveState(filepath.Join(t.TempDir(), "missing"), Persisted{Epoch: 1}); err == nil {
		t.Error("SaveState into a missing dir succeeded")
	}
}
