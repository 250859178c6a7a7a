package watcher

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// TempPrefix starts the name of every temporary file tandem itself creates
// inside a synced tree (apply writes "<dir>/.tandem-tmp-*", then renames it
// into place). Paths with a component that starts with it are never
// reported, watched nor scanned, whatever the exclude patterns say.
const TempPrefix = ".tandem-tmp-"

// excludes decides which paths of a tree are not synced: tandem's own temp
// files and the paths matched by gitignore-style patterns. It is immutable
// after compileExcludes, so any goroutine may use it.
type excludes struct {
	m gitignore.Matcher // nil when there are no patterns
}

// compileExcludes parses gitignore-style patterns, relative to the tree's
// root: "*.tmp" (that name at any depth), "cache/" (directories only),
// "/build" (anchored at the root), "a/**/b", "!keep.tmp" (re-include; a later
// pattern wins over an earlier one). Blank lines and lines starting with "#"
// are skipped, as in a .gitignore file. A pattern whose glob syntax is
// malformed (e.g. "[a-") is an error, rather than a pattern that silently
// never matches.
func compileExcludes(patterns []string) (*excludes, error) {
	var ps []gitignore.Pattern
	for _, p := range patterns {
		if strings.TrimSpace(p) == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if err := checkPattern(p); err != nil {
			return nil, err
		}
		ps = append(ps, gitignore.ParsePattern(p, nil))
	}
	if len(ps) == 0 {
		return &excludes{}, nil
	}
	return &excludes{m: gitignore.NewMatcher(ps)}, nil
}

// checkPattern reports a glob syntax error in any component of p. go-git's
// matcher treats such a component as matching nothing, which would turn a
// typo in the config into paths synced that the operator meant to exclude.
func checkPattern(p string) error {
	body := strings.TrimPrefix(p, "!")
	body = strings.TrimSuffix(strings.TrimRight(body, " "), "/")
	for elem := range strings.SplitSeq(body, "/") {
		if _, err := filepath.Match(elem, ""); err != nil {
			return fmt.Errorf("exclude pattern %q: %w", p, err)
		}
	}
	return nil
}

// match reports whether rel (relative to the root, slash-separated, no
// leading or trailing slash) is excluded. As in git, a path inside an
// excluded directory is excluded too, whatever a later "!" pattern says, so
// a scanner that skips excluded directories and a check of each path agree.
// The root itself ("") is never excluded.
func (e *excludes) match(rel string, isDir bool) bool {
	if rel == "" {
		return false
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		last := i == len(parts)-1
		if e.matchLast(parts[:i+1], isDir || !last) {
			return true
		}
	}
	return false
}

// matchLast reports whether the last component of parts is excluded, given
// that its ancestors are not (the case while walking down a tree that skips
// excluded directories).
func (e *excludes) matchLast(parts []string, isDir bool) bool {
	if strings.HasPrefix(parts[len(parts)-1], TempPrefix) {
		return true
	}
	return e.m != nil && e.m.Match(parts, isDir)
}
