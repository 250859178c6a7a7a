package deploy

import (
	_ "embed"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// unitTemplate is deploy/tandem.service: a complete unit for the default
// paths, which RenderUnit adapts.
//
//go:embed tandem.service
var unitTemplate string

// Default install paths on a node (before any --root prefix).
const (
	BinaryPath = "/usr/local/bin/tandem"
	ConfigPath = "/etc/tandem/tandem.toml"
	UnitPath   = "/etc/systemd/system/tandem.service"
	UnitName   = "tandem.service"
	// DefaultStateDir is the state dir the unit's StateDirectory= creates.
	DefaultStateDir = "/var/lib/tandem"
)

// UnitOptions adapt the unit to a node.
type UnitOptions struct {
	// Binary is the tandem executable ExecStart runs. Default: BinaryPath.
	Binary string
	// Config is the config file it runs with. Default: ConfigPath.
	Config string
	// ReadWritePaths are the only places besides the state dir the daemon
	// may write to: the synced trees, the snapshot dir, a state dir other
	// than DefaultStateDir. Empty keeps the template's defaults
	// (/var/www and /var/backups/tandem, both optional).
	ReadWritePaths []string
}

// RenderUnit returns the systemd unit for o. Paths must be absolute and free
// of whitespace, quotes and backslashes, which unit files would need escaped.
func RenderUnit(o UnitOptions) (string, error) {
	bin := o.Binary
	if bin == "" {
		bin = BinaryPath
	}
	cfg := o.Config
	if cfg == "" {
		cfg = ConfigPath
	}
	for _, p := range append([]string{bin, cfg}, o.ReadWritePaths...) {
		if err := unitPath(p); err != nil {
			return "", err
		}
	}
	var rw []string
	for _, p := range o.ReadWritePaths {
		p = filepath.Clean(p)
		if p == DefaultStateDir || slices.Contains(rw, "-"+p) {
			continue // StateDirectory= covers it
		}
		// "-": a tree that is missing (an unmounted disk) must not keep
		// the daemon from starting and saying so.
		rw = append(rw, "-"+p)
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(unitTemplate, "\n") {
		switch {
		case strings.HasPrefix(line, "ExecStart="):
			line = fmt.Sprintf("ExecStart=%s run -c %s\n", escapeUnit(bin), escapeUnit(cfg))
		case strings.HasPrefix(line, "ReadWritePaths=") && len(o.ReadWritePaths) > 0:
			if len(rw) == 0 {
				line = "# ReadWritePaths: only the state dir\n"
			} else {
				line = "ReadWritePaths=" + escapeUnit(strings.Join(rw, " ")) + "\n"
			}
		}
		b.WriteString(line)
	}
	return b.String(), nil
}

// unitPath checks that p can stand in a unit file as it is.
func unitPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("unit path %q is not absolute", p)
	}
	if strings.ContainsAny(p, " \t\n\"'\\") {
		return fmt.Errorf("unit path %q holds whitespace, a quote or a backslash; systemd units cannot name it as it is, so rename or bind-mount it", p)
	}
	return nil
}

// escapeUnit escapes systemd specifiers.
func escapeUnit(s string) string { return strings.ReplaceAll(s, "%", "%%") }
