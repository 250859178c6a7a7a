package quorum

import (
	"context"
	"fmt"
)

// RunWitness runs the witness's voter until ctx ends, then closes it. The
// witness keeps only the raft log: it votes, and gives leadership away as
// soon as it wins it. opts.Node must be the witness's name.
func RunWitness(ctx context.Context, opts Options) error {
	if opts.Witness == "" {
		opts.Witness = DefaultWitness
	}
	if opts.Node != opts.Witness {
		return fmt.Errorf("quorum: run witness: node %q is not the witness %q", opts.Node, opts.Witness)
	}
	q, err := New(opts)
	if err != nil {
		return fmt.Errorf("run witness: %w", err)
	}
	<-ctx.Done()
	return q.Close()
}
