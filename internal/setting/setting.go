// Package setting holds Problem, what a part's Config.Validate reports about
// one of its keys, so that cmd/tandem can point at the key's line in the
// config file.
package setting

// Problem is one invalid or inconsistent setting.
type Problem struct {
	// Key is the key inside the part's section, as written in the file:
	// "server_id", "dns.zone", "checks.0.http". Empty for the section as a
	// whole.
	Key string
	// Msg says what is wrong and what to write instead.
	Msg string
}

func (p Problem) Error() string {
	if p.Key == "" {
		return p.Msg
	}
	return p.Key + ": " + p.Msg
}
