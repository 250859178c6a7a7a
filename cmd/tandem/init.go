package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/tandemhost/tandem/deploy"
)

func cmdInit(e *env, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem init: unexpected argument %q\n", args[0])
		return exitUsage
	}
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	signer, created, err := deploy.EnsureKey(cfg.StateDir, "tandem@"+cfg.Node)
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem init: %v\n", err)
		return exitFailure
	}
	if created {
		fmt.Fprintf(e.stderr, "created node key %s\n", deploy.KeyPath(cfg.StateDir))
	}
	fmt.Fprintln(e.stdout, deploy.AuthorizedLine(signer.PublicKey(), "tandem@"+cfg.Node))
	return exitOK
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
