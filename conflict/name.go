package conflict

import (
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// stampLayout is the conflict copy's time, always in UTC.
	stampLayout = "20060102-150405"
	// maxNameBytes is the longest file name Linux file systems take
	// (NAME_MAX); a copy's name is shortened to fit.
	maxNameBytes = 255
	// maxCandidates bounds the search for a free copy name.
	maxCandidates = 1000
)

// ConflictName returns where to keep the losing version of p (a slash
// separated path relative to the sync root): beside it, as
// NAME.conflict-<node>-<YYYYMMDD-HHMMSS>.EXT, where node made the losing
// version and t (in UTC, to the second) is its mtime, so that both nodes
// compute the same name. EXT is the last extension; a name without one, and
// a dotfile, get no EXT:
//
//	dir/report.txt -> dir/report.conflict-beta-20261122-013000.txt
//	a.tar.gz       -> a.tar.conflict-beta-20261122-013000.gz
//	Makefile       -> Makefile.conflict-beta-20261122-013000
//	.htaccess      -> .htaccess.conflict-beta-20261122-013000
//
// When taken (which may be nil) says a candidate is occupied, "-2", "-3", ...
// is added after the time: report.conflict-beta-20261122-013000-2.txt.
// taken should report true only for a name holding something other than the
// loser's content: a copy the peer already made and sent is not a
// collision. After maxCandidates tries the last candidate is returned; the
// caller's exclusive create then fails loudly rather than overwrite.
//
// A "/" in node is replaced by "_". NAME is shortened (at a UTF-8 boundary)
// when the result would exceed 255 bytes.
func ConflictName(p, node string, t time.Time, taken func(name string) bool) string {
	dir, base := path.Split(p)
	stem, ext := splitExt(base)
	node = strings.NewReplacer("/", "_", "\x00", "_").Replace(node)
	stamp := t.UTC().Format(stampLayout)
	for n := 1; ; n++ {
		mid := ".conflict-" + node + "-" + stamp
		if n > 1 {
			mid += "-" + strconv.Itoa(n)
		}
		s, e := stem, ext
		if len(mid)+len(e) >= maxNameBytes {
			s, e = base, "" // an absurdly long extension: shorten it as part of NAME
		}
		if over := len(s) + len(mid) + len(e) - maxNameBytes; over > 0 {
			s = truncate(s, len(s)-over)
		}
		name := dir + s + mid + e
		if taken == nil || n >= maxCandidates || !taken(name) {
			return name
		}
	}
}

// splitExt splits base into NAME and EXT (with its dot). Leading dots belong
// to NAME (a dotfile has no extension), and so does a trailing dot.
func splitExt(base string) (stem, ext string) {
	body := strings.TrimLeft(base, ".")
	i := strings.LastIndexByte(body, '.')
	if i < 0 || i == len(body)-1 {
		return base, ""
	}
	cut := len(base) - len(body) + i
	return base[:cut], base[cut:]
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if n >= len(s) {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var conflictNameRE = regexp.MustCompile(`(?s)^(.+)\.conflict-(.+)-([0-9]{8}-[0-9]{6})(?:-([0-9]+))?(\.[^.]+)?$`)

// ParseConflictName reports whether p's last element is a conflict copy's
// name as made by ConflictName, and if so returns the path of the original
// (same directory), the node that made the kept version and its time. The
// original is exact unless ConflictName had to shorten the name, or the
// original's own extension contained "-" followed by digits in the copy's
// time format (a copy of an extension-less copy).
func ParseConflictName(p string) (original, node string, t time.Time, ok bool) {
	dir, base := path.Split(p)
	m := conflictNameRE.FindStringSubmatch(base)
	if m == nil {
		return "", "", time.Time{}, false
	}
	t, err := time.Parse(stampLayout, m[3])
	if err != nil {
		return "", "", time.Time{}, false
	}
	if m[4] != "" && (m[4][0] == '0' || m[4] == "1") {
		return "", "", time.Time{}, false // ConflictName counts from -2, without leading zeros
	}
	return dir + m[1] + m[5], m[2], t, true
}

// IsConflictName reports whether p's last element looks like a conflict
// copy's name. Conflict copies are ordinary files to the watcher and to
// Decide (they sync and conflict like any other path); this is for the CLI,
// which lists them.
func IsConflictName(p string) bool {
	_, _, _, ok := ParseConflictName(p)
	return ok
}
