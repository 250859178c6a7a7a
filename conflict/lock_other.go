//go:build !unix

package conflict

import "os"

// tandem runs on Linux; elsewhere the log is unlocked so the package still
// builds for tools and tests.
func lockFile(*os.File) error { return nil }

func syncDir(string) error { return nil }
