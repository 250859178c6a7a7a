package watcher

// Config is one [[sync]] entry: a tree kept identical on both nodes.
type Config struct {
	// Name identifies the tree to the peer, whose [[sync]] for the same tree
	// must carry the same name. Default: the path, so two nodes that keep a
	// tree at the same path need not name it.
	Name string `toml:"name"`
	// Path is the absolute path of the tree's root on this node.
	Path string `toml:"path"`
	// Exclude lists gitignore-style patterns of paths not to sync.
	Exclude []string `toml:"exclude"`
}

// ID returns the tree's name on the link: Name, or Path when Name is empty.
func (c Config) ID() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Path
}
