package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// unit says how a figure is printed. Every figure but txps is "lower is
// better", so a ratio above 1 means the tool does worse than tandem; a row
// in txps says "higher is better" in its name.
type unit int

const (
	millis unit = iota // a duration in milliseconds
	secs               // a duration in seconds
	kib                // bytes, printed in KiB
	mib                // bytes, printed in MiB
	pct                // percent of one core
	txps               // transactions per second: the one higher-is-better unit
)

// cell is one tool's result for one scenario: the figures from each run, or
// a reason there is none.
type cell struct {
	values []float64 // in the unit of the row: ms, s, bytes or percent
	note   string    // printed instead of a figure when values is empty; after it otherwise
}

// row is one scenario of the table.
type row struct {
	name  string
	unit  unit
	cells map[string]*cell // by tool column name
}

// table is the benchmark's result: rows of scenarios, columns of tools, the
// first column being the reference (tandem) the ratios are taken against.
type table struct {
	tools []string
	rows  []*row
}

// add records v for tool in the row named name, creating the row.
func (t *table) add(name string, u unit, tool string, v float64) {
	c := t.cell(name, u, tool)
	c.values = append(c.values, v)
}

// note records why tool has no figure (or what qualifies it) in row name.
func (t *table) note(name string, u unit, tool, why string) {
	c := t.cell(name, u, tool)
	if c.note == "" || len(c.values) > 0 {
		c.note = why
	}
}

func (t *table) cell(name string, u unit, tool string) *cell {
	var r *row
	for _, x := range t.rows {
		if x.name == name {
			r = x
		}
	}
	if r == nil {
		r = &row{name: name, unit: u, cells: map[string]*cell{}}
		t.rows = append(t.rows, r)
	}
	c := r.cells[tool]
	if c == nil {
		c = &cell{}
		r.cells[tool] = c
	}
	return c
}

// mean is the average of vs; NaN when vs is empty.
func mean(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range vs {
		s += v
	}
	return s / float64(len(vs))
}

// ratio returns tool/ref as printed in the table ("x3.4", "x0.52"), or ""
// when either side has no figure or the reference is zero.
func ratio(tool, ref []float64) string {
	a, b := mean(tool), mean(ref)
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return ""
	}
	r := a / b
	switch {
	case r >= 100:
		return fmt.Sprintf("x%.0f", r)
	case r >= 10:
		return fmt.Sprintf("x%.1f", r)
	default:
		return fmt.Sprintf("x%.2f", r)
	}
}

// format prints one figure in unit u, without the unit.
func format(v float64, u unit) string {
	switch u {
	case kib:
		v /= 1 << 10
	case mib:
		v /= 1 << 20
	}
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func (u unit) String() string {
	return [...]string{millis: "ms", secs: "s", kib: "KiB", mib: "MiB", pct: "% of a core", txps: "tx/s"}[u]
}

// text prints a cell: "61.7 ms", a range "58.1-64.0 ms" over several runs,
// then the ratio to ref in brackets unless the cell is the reference.
func (c *cell) text(u unit, ref *cell, isRef bool) string {
	if c == nil || len(c.values) == 0 && c.note == "" {
		return "-"
	}
	if len(c.values) == 0 {
		return c.note
	}
	lo, hi := c.values[0], c.values[0]
	for _, v := range c.values {
		lo, hi = min(lo, v), max(hi, v)
	}
	s := format(lo, u)
	if h := format(hi, u); h != s {
		s += "-" + h
	}
	s += " " + u.String()
	if !isRef && ref != nil {
		if r := ratio(c.values, ref.values); r != "" {
			s += " (" + r + ")"
		}
	}
	if c.note != "" {
		s += "; " + c.note
	}
	return s
}

// write prints t as a markdown table: one line per scenario, one column per
// tool, each figure followed by its ratio to the first tool's.
func (t *table) write(w io.Writer) {
	fmt.Fprintf(w, "| scenario | %s |\n", strings.Join(t.tools, " | "))
	fmt.Fprintf(w, "|---|%s\n", strings.Repeat("---|", len(t.tools)))
	for _, r := range t.rows {
		cols := make([]string, len(t.tools))
		ref := r.cells[t.tools[0]]
		for i, tool := range t.tools {
			cols[i] = strings.ReplaceAll(r.cells[tool].text(r.unit, ref, i == 0), "|", "/")
		}
		fmt.Fprintf(w, "| %s | %s |\n", r.name, strings.Join(cols, " | "))
	}
}
