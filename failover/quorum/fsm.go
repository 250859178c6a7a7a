package quorum

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// The replicated state is one field: the operator's preferred primary.
// Commands are one byte of kind followed by the argument.
const cmdPrefer = 1

func encodePrefer(node string) []byte { return append([]byte{cmdPrefer}, node...) }

// fsm holds the replicated state.
type fsm struct {
	mu        sync.Mutex // guards preferred
	preferred string
}

var _ raft.FSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) interface{} {
	if len(l.Data) == 0 {
		return fmt.Errorf("apply log %d: empty command", l.Index)
	}
	switch l.Data[0] {
	case cmdPrefer:
		f.mu.Lock()
		f.preferred = string(l.Data[1:])
		f.mu.Unlock()
		return nil
	default:
		// A newer tandem wrote a command this one does not know: keep
		// going, the state it carries is advisory.
		return fmt.Errorf("apply log %d: unknown command %d", l.Index, l.Data[0])
	}
}

func (f *fsm) get() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.preferred
}

type fsmState struct {
	Preferred string `json:"preferred"`
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return fsmState{Preferred: f.get()}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st fsmState
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return fmt.Errorf("restore quorum state: %w", err)
	}
	f.mu.Lock()
	f.preferred = st.Preferred
	f.mu.Unlock()
	return nil
}

func (s fsmState) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist quorum state: %w", err)
	}
	return sink.Close()
}

func (fsmState) Release() {}
