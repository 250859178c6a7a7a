package binlog

import (
	"fmt"
	"slices"
	"strings"
)

// What the applier accepts from the peer. The peer is trusted to hold a
// valid key, not to be bug-free or uncompromised: a transaction may only
// touch the replicated schemas, and a schema change must be one statement
// of a replicated kind. Everything else is refused before anything is
// written.

// replicatedSchema reports whether rows and DDL in schema may be applied:
// never a system schema or the marker schema; with databases configured,
// only those.
func replicatedSchema(schema string, databases []string) bool {
	if schema == "" || slices.Contains(SystemSchemas, strings.ToLower(schema)) {
		return false
	}
	return len(databases) == 0 || slices.Contains(databases, schema)
}

// acceptTxn checks that t only touches replicated schemas.
func acceptTxn(t *Txn, databases []string) error {
	for i := range t.Rows {
		if s := t.Rows[i].Schema; !replicatedSchema(s, databases) {
			return fmt.Errorf("row %d is in schema %q, which is not replicated: refused", i, s)
		}
	}
	if t.DDL == nil {
		return nil
	}
	stmt := t.DDL.Statement
	if executableComment(stmt) {
		return fmt.Errorf("schema change %q holds an executable comment (/*! ... */), which the server would run: refused", abbreviateDDL(stmt))
	}
	if !singleStatement(stmt) {
		return fmt.Errorf("schema change %q holds more than one statement: refused", abbreviateDDL(stmt))
	}
	info, ok := parseDDL(stmt, t.DDL.Schema)
	if !ok {
		return fmt.Errorf("statement %q is not a replicated schema change (CREATE/ALTER/DROP/RENAME/TRUNCATE TABLE, CREATE/DROP INDEX, CREATE/DROP DATABASE): refused", abbreviateDDL(stmt))
	}
	if !replicatedSchema(info.schema, databases) {
		return fmt.Errorf("schema change %q is in schema %q, which is not replicated: refused", abbreviateDDL(stmt), info.schema)
	}
	for _, s := range qualifiers(stmt) {
		if !replicatedSchema(s, databases) {
			return fmt.Errorf("schema change %q names schema %q, which is not replicated: refused", abbreviateDDL(stmt), s)
		}
	}
	if t.DDL.Schema != "" && !replicatedSchema(t.DDL.Schema, databases) {
		// Never run in a schema that is not replicated: unqualified
		// names would reach into it. Fully qualified statements still
		// work; others fail with "no database selected".
		t.DDL.Schema = ""
	}
	return nil
}

// executableComment reports whether q holds a /*! or /*M! comment outside
// strings: MySQL and MariaDB run what such a comment holds.
func executableComment(q string) bool {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '\'':
			for i++; i < len(q) && q[i] != c; i++ {
				if q[i] == '\\' {
					i++
				}
			}
		case c == '"' || c == '`':
			for i++; i < len(q) && q[i] != c; i++ {
			}
		case strings.HasPrefix(q[i:], "/*!") || strings.HasPrefix(q[i:], "/*M!"):
			return true
		}
	}
	return false
}

// singleStatement reports whether q is one statement: no ";" outside
// quotes and comments, but for trailing ones.
func singleStatement(q string) bool {
	end := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(q) && q[j] != c {
				if q[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(q) {
				return false // unterminated
			}
			i = j
		case strings.HasPrefix(q[i:], "/*"):
			k := strings.Index(q[i+2:], "*/")
			if k < 0 {
				return false
			}
			i += 2 + k + 1
		case c == '#' || strings.HasPrefix(q[i:], "-- "):
			k := strings.IndexByte(q[i:], '\n')
			if k < 0 {
				return true // a comment to the end
			}
			i += k
		case c == ';':
			end = true
		case end && c != ' ' && c != '\t' && c != '\n' && c != '\r':
			return false
		}
	}
	return true
}

// qualifiers returns the schemas of the qualified names (schema.table) in
// q: every identifier directly followed by a dot, outside strings and
// comments.
func qualifiers(q string) []string {
	var out []string
	l := lexer{s: q}
	for l.pos < len(l.s) {
		l.skip()
		if l.pos >= len(l.s) {
			break
		}
		c := l.s[l.pos]
		switch {
		case c == '\'' || c == '"':
			j := l.pos + 1
			for j < len(l.s) && l.s[j] != c {
				if l.s[j] == '\\' {
					j++
				}
				j++
			}
			l.pos = j + 1
		case c == '`' || isWordByte(c):
			name, ok := l.ident()
			if !ok {
				l.pos++
				continue
			}
			after := l.pos
			l.skip() // "schema . table" is a qualified name too
			if l.pos < len(l.s) && l.s[l.pos] == '.' && (l.pos > after || strings.Trim(name, "0123456789") != "") {
				out = append(out, name) // not a number like 1.5
			}
		default:
			l.pos++
		}
	}
	return out
}
