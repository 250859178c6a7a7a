package binlog

import (
	"slices"
	"strings"
)

// Schema changes need no tracking of their own: with
// binlog_row_metadata=FULL every table map carries the table's column names,
// types and key as they were when the row was written, so rows after an
// ALTER TABLE decode by the new definition (decoder.table notices the new
// map). What this file does is recognise the DDL statements that are
// replicated.

// ddlInfo is what parseDDL finds in a statement.
type ddlInfo struct {
	// schema is the schema the statement changes: the one its first
	// table names, else the statement's default schema.
	schema string
	// database is true for CREATE/DROP DATABASE, which must run with no
	// default schema (the server logs the new one as the default).
	database bool
}

// parseDDL reports whether q is a replicated schema change (CREATE, ALTER,
// DROP, RENAME, TRUNCATE of a table, CREATE/DROP INDEX, CREATE/DROP
// DATABASE), and which schema it changes. defaultSchema is the database
// the statement ran in. Statements on temporary tables, views, routines,
// users and the like are not replicated.
func parseDDL(q, defaultSchema string) (ddlInfo, bool) {
	l := lexer{s: q}
	w := l.word()
	next := func(words ...string) bool { // consume optional words in order
		for _, want := range words {
			save := l.pos
			if l.word() != want {
				l.pos = save
				return false
			}
		}
		return true
	}
	table := func() (ddlInfo, bool) {
		schema, ok := l.name()
		if !ok {
			return ddlInfo{}, false
		}
		if schema == "" {
			schema = defaultSchema
		}
		return ddlInfo{schema: schema}, true
	}
	database := func() (ddlInfo, bool) {
		_, name, ok := l.qualified()
		return ddlInfo{schema: name, database: true}, ok && name != ""
	}
	switch w {
	case "CREATE":
		next("OR", "REPLACE")
		switch l.word() {
		case "TABLE":
			next("IF", "NOT", "EXISTS")
			return table()
		case "DATABASE", "SCHEMA":
			next("IF", "NOT", "EXISTS")
			return database()
		case "UNIQUE", "FULLTEXT", "SPATIAL":
			if l.word() != "INDEX" {
				return ddlInfo{}, false
			}
			fallthrough
		case "INDEX":
			return indexOn(&l, table)
		}
	case "ALTER":
		next("ONLINE")
		next("IGNORE")
		if l.word() == "TABLE" {
			next("IF", "EXISTS")
			return table()
		}
	case "DROP":
		switch l.word() {
		case "TABLE":
			next("IF", "EXISTS")
			return table()
		case "DATABASE", "SCHEMA":
			next("IF", "EXISTS")
			return database()
		case "INDEX":
			next("IF", "EXISTS")
			return indexOn(&l, table)
		}
	case "RENAME":
		if l.word() == "TABLE" {
			next("IF", "EXISTS")
			return table()
		}
	case "TRUNCATE":
		next("TABLE")
		return table()
	}
	return ddlInfo{}, false
}

// indexOn skips "name [IF NOT EXISTS] ... ON" up to the table name.
func indexOn(l *lexer, table func() (ddlInfo, bool)) (ddlInfo, bool) {
	for i := 0; i < 64; i++ {
		save := l.pos
		w := l.word()
		if w == "ON" {
			return table()
		}
		if w == "" {
			l.pos = save
			if _, _, ok := l.qualified(); !ok {
				return ddlInfo{}, false
			}
		}
	}
	return ddlInfo{}, false
}

// lexer reads the few tokens parseDDL needs, skipping spaces and comments.
type lexer struct {
	s   string
	pos int
}

func (l *lexer) skip() {
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			l.pos++
		case strings.HasPrefix(l.s[l.pos:], "/*"):
			end := strings.Index(l.s[l.pos+2:], "*/")
			if end < 0 {
				l.pos = len(l.s)
				return
			}
			l.pos += 2 + end + 2
		case c == '#' || strings.HasPrefix(l.s[l.pos:], "-- "):
			end := strings.IndexByte(l.s[l.pos:], '\n')
			if end < 0 {
				l.pos = len(l.s)
				return
			}
			l.pos += end + 1
		default:
			return
		}
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// word reads an unquoted word, upper-cased; "" if the next token is not one.
func (l *lexer) word() string {
	l.skip()
	start := l.pos
	for l.pos < len(l.s) && isWordByte(l.s[l.pos]) {
		l.pos++
	}
	return strings.ToUpper(l.s[start:l.pos])
}

// ident reads one identifier, quoted with backticks (or double quotes) or
// not.
func (l *lexer) ident() (string, bool) {
	l.skip()
	if l.pos >= len(l.s) {
		return "", false
	}
	if q := l.s[l.pos]; q == '`' || q == '"' {
		var b strings.Builder
		for i := l.pos + 1; i < len(l.s); i++ {
			if l.s[i] == q {
				if i+1 < len(l.s) && l.s[i+1] == q { // doubled quote
					b.WriteByte(q)
					i++
					continue
				}
				l.pos = i + 1
				return b.String(), true
			}
			b.WriteByte(l.s[i])
		}
		return "", false
	}
	start := l.pos
	for l.pos < len(l.s) && isWordByte(l.s[l.pos]) {
		l.pos++
	}
	return l.s[start:l.pos], l.pos > start
}

// qualified reads "name" or "schema.name".
func (l *lexer) qualified() (schema, name string, ok bool) {
	first, ok := l.ident()
	if !ok {
		return "", "", false
	}
	l.skip()
	if l.pos < len(l.s) && l.s[l.pos] == '.' {
		l.pos++
		second, ok := l.ident()
		if !ok {
			return "", "", false
		}
		return first, second, true
	}
	return "", first, true
}

// name reads a table name and returns its schema ("" when unqualified).
func (l *lexer) name() (string, bool) {
	schema, _, ok := l.qualified()
	return schema, ok
}

// parseDML reports whether q is a data change written as a statement
// (binlog_format STATEMENT or MIXED in the session that ran it), and the
// schema of the table it changes when that is easy to see ("" otherwise).
// The Tailer cannot turn such a statement into rows.
func parseDML(q, defaultSchema string) (schema string, ok bool) {
	l := lexer{s: q}
	skipWords := func(words ...string) {
		for {
			save := l.pos
			w := l.word()
			if !slices.Contains(words, w) || w == "" {
				l.pos = save
				return
			}
		}
	}
	switch l.word() {
	case "INSERT", "REPLACE":
		skipWords("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO")
	case "UPDATE":
		skipWords("LOW_PRIORITY", "IGNORE")
	case "DELETE":
		skipWords("LOW_PRIORITY", "QUICK", "IGNORE", "FROM")
	case "LOAD":
		return "", true
	default:
		return "", false
	}
	s, ok := l.name()
	if !ok {
		return "", true
	}
	if s == "" {
		s = defaultSchema
	}
	return s, true
}
