package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/tandemhost/tandem/pipe"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = ""

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += "+" + s.Value[:12]
				}
			}
		}
	}
	return v
}

func cmdVersion(e *env, args []string) int {
	fmt.Fprintf(e.stdout, "tandem %s (protocol %d..%d, %s, %s/%s)\n", versionString(),
		pipe.MinProtocolVersion, pipe.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
