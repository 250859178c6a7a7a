package watcher

// Excluder matches paths against a tree's exclude patterns with the same
// rule Tree uses, for code that walks the tree itself (the index scanner,
// the receiver of the peer's changes).
type Excluder struct{ e *excludes }

// NewExcluder compiles gitignore-style patterns; a bad pattern is an error.
func NewExcluder(patterns []string) (*Excluder, error) {
	e, err := compileExcludes(patterns)
	if err != nil {
		return nil, err
	}
	return &Excluder{e: e}, nil
}

// Match reports whether rel (relative, slash-separated) is excluded.
func (x *Excluder) Match(rel string, isDir bool) bool { return x.e.match(rel, isDir) }
