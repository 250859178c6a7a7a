package main

import (
	"strings"
	"testing"
)

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		tool, ref []float64
		want      string
	}{
		{[]float64{200}, []float64{100}, "x2.00"},
		{[]float64{50}, []float64{100}, "x0.50"},
		{[]float64{1, 3}, []float64{2}, "x1.00"}, // means, not first values
		{[]float64{1500}, []float64{100}, "x15.0"},
		{[]float64{15000}, []float64{61.7}, "x243"},
		{[]float64{1}, []float64{0}, ""},
		{nil, []float64{1}, ""},
		{[]float64{1}, nil, ""},
	} {
		if got := ratio(tc.tool, tc.ref); got != tc.want {
			t.Errorf("ratio(%v, %v) = %q, want %q", tc.tool, tc.ref, got, tc.want)
		}
	}
}

func TestCellText(t *testing.T) {
	ref := &cell{values: []float64{100}}
	for _, tc := range []struct {
		name  string
		c     *cell
		u     unit
		isRef bool
		want  string
	}{
		{"reference has no ratio", ref, millis, true, "100 ms"},
		{"ratio to the reference", &cell{values: []float64{250}}, millis, false, "250 ms (x2.50)"},
		{"range over runs", &cell{values: []float64{300, 200}}, millis, false, "200-300 ms (x2.50)"},
		{"equal runs print once", &cell{values: []float64{1.5, 1.5}}, secs, false, "1.50 s (x0.01)"},
		{"bytes in KiB", &cell{values: []float64{10 << 10}}, kib, false, "10.0 KiB (x102)"},
		{"note without a figure", &cell{note: "not installed"}, secs, false, "not installed"},
		{"note after a figure", &cell{values: []float64{1}, note: "one-way"}, secs, false, "1.00 s (x0.01); one-way"},
		{"missing cell", nil, secs, false, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.text(tc.u, ref, tc.isRef); got != tc.want {
				t.Errorf("text() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTableWrite(t *testing.T) {
	var tb table
	tb.tools = []string{"tandem", "rsync"}
	tb.add("64 MiB new file", secs, "tandem", 1.2)
	tb.add("64 MiB new file", secs, "rsync", 2.4)
	tb.note("idle RSS", mib, "rsync", "no daemon | between runs")
	tb.add("idle RSS", mib, "tandem", 49<<20)
	var b strings.Builder
	tb.write(&b)
	want := `| scenario | tandem | rsync |
|---|---|---|
| 64 MiB new file | 1.20 s | 2.40 s (x2.00) |
| idle RSS | 49.0 MiB | no daemon / between runs |
`
	if b.String() != want {
		t.Errorf("write() =\n%s\nwant\n%s", b.String(), want)
	}
}
