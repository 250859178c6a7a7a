package watcher

// Config is one [[sync]] entry: a tree kept identical on both nodes.
type Config struct {
	// Path is the absolute path of the tree's root on this node.
	Path string `toml:"path"`
	// Exclude lists gitignore-style patterns of paths not to sync.
	Exclude []string `toml:"exclude"`
}
