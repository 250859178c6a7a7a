package main

import (
	"maps"
	"testing"
)

func TestParseBenchLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		name string
		m    map[string]float64
	}{
		{"BenchmarkRows/lag-tandem-2         \t       1\t10012345678 ns/op\t       112.0 max-ms\t        56.10 p50-ms",
			"BenchmarkRows/lag-tandem", map[string]float64{"ns/op": 10012345678, "max-ms": 112, "p50-ms": 56.1}},
		{"BenchmarkRows/catchup-native 1 5 s 8500 tx/s", "BenchmarkRows/catchup-native", map[string]float64{"s": 5, "tx/s": 8500}},
		{"BenchmarkX-16 3 1.5e+03 ns/op", "BenchmarkX", map[string]float64{"ns/op": 1500}},
	} {
		name, m, ok := parseBenchLine(tc.line)
		if !ok || name != tc.name || !maps.Equal(m, tc.m) {
			t.Errorf("parseBenchLine(%q) = %q, %v, %v; want %q, %v", tc.line, name, m, ok, tc.name, tc.m)
		}
	}
	for _, line := range []string{
		"", "ok  \tgithub.com/x\t1.0s", "BenchmarkRows/lag-tandem", "    rows_bench_test.go:176: | case |",
		"BenchmarkRows 1 12 ns/op 5", "BenchmarkRows x 12 ns/op", "BenchmarkRows 1 twelve ns/op",
	} {
		if name, m, ok := parseBenchLine(line); ok {
			t.Errorf("parseBenchLine(%q) = %q, %v; want not a result line", line, name, m)
		}
	}
}

func TestSkipReason(t *testing.T) {
	out := "=== RUN   BenchmarkRows\n--- SKIP: BenchmarkRows\n    rows_bench_test.go:70: sysbench not installed (apt-get install sysbench)\nPASS\n"
	if got, want := skipReason(out), "sysbench not installed (apt-get install sysbench)"; got != want {
		t.Errorf("skipReason = %q, want %q", got, want)
	}
	if got := skipReason("--- PASS: TestX\n    x_test.go:3: kill to BIND answering the survivor: 4s\n"); got != "" {
		t.Errorf("skipReason of a passing run = %q, want none", got)
	}
}
