package conflict

import (
	"fmt"
	"sort"
	"strings"
)

// Counter is one node's entry in a version vector.
type Counter struct {
	Node  string
	Value uint64
}

// Vector is a version vector: for each node, how many changes of that node a
// version has seen. It is kept sorted by node name with no zero entries, so
// two equal vectors have the same encoding. The zero value is the empty
// vector (a version nobody changed). Vectors are values: methods never modify
// their receiver's backing array.
type Vector []Counter

// Ordering is the result of comparing two vectors.
type Ordering int

const (
	Equal      Ordering = iota // same history
	Greater                    // the receiver has seen everything the argument has, and more
	Lesser                     // the argument has seen everything the receiver has, and more
	Concurrent                 // each has changes the other has not seen: a conflict
)

func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Greater:
		return "greater"
	case Lesser:
		return "lesser"
	case Concurrent:
		return "concurrent"
	}
	return fmt.Sprintf("Ordering(%d)", int(o))
}

// Get returns node's counter, 0 when absent.
func (v Vector) Get(node string) uint64 {
	i := sort.Search(len(v), func(i int) bool { return v[i].Node >= node })
	if i < len(v) && v[i].Node == node {
		return v[i].Value
	}
	return 0
}

// Update returns a copy of v with node's counter set to one more than the
// highest counter in v, so that the new version is strictly greater than v
// and than any version v has seen. Using the maximum (not node's own counter
// plus one) keeps counters meaningful after a node restores from an older
// index.
func (v Vector) Update(node string) Vector {
	var max uint64
	for _, c := range v {
		if c.Value > max {
			max = c.Value
		}
	}
	return v.With(node, max+1)
}

// With returns a copy of v with node's counter set to value (removed when 0).
func (v Vector) With(node string, value uint64) Vector {
	out := make(Vector, 0, len(v)+1)
	done := false
	for _, c := range v {
		if !done && c.Node >= node {
			if value != 0 {
				out = append(out, Counter{node, value})
			}
			done = true
			if c.Node == node {
				continue
			}
		}
		out = append(out, c)
	}
	if !done && value != 0 {
		out = append(out, Counter{node, value})
	}
	return out
}

// Merge returns the element-wise maximum of v and o: a version that has seen
// everything either has seen.
func (v Vector) Merge(o Vector) Vector {
	out := make(Vector, 0, len(v)+len(o))
	i, j := 0, 0
	for i < len(v) || j < len(o) {
		switch {
		case j >= len(o) || (i < len(v) && v[i].Node < o[j].Node):
			out = append(out, v[i])
			i++
		case i >= len(v) || o[j].Node < v[i].Node:
			out = append(out, o[j])
			j++
		default:
			c := v[i]
			if o[j].Value > c.Value {
				c.Value = o[j].Value
			}
			out = append(out, c)
			i++
			j++
		}
	}
	return out
}

// Compare tells how v's history relates to o's.
func (v Vector) Compare(o Vector) Ordering {
	vBigger, oBigger := false, false
	i, j := 0, 0
	for i < len(v) || j < len(o) {
		switch {
		case j >= len(o) || (i < len(v) && v[i].Node < o[j].Node):
			if v[i].Value > 0 {
				vBigger = true
			}
			i++
		case i >= len(v) || o[j].Node < v[i].Node:
			if o[j].Value > 0 {
				oBigger = true
			}
			j++
		default:
			if v[i].Value > o[j].Value {
				vBigger = true
			} else if v[i].Value < o[j].Value {
				oBigger = true
			}
			i++
			j++
		}
	}
	switch {
	case vBigger && oBigger:
		return Concurrent
	case vBigger:
		return Greater
	case oBigger:
		return Lesser
	}
	return Equal
}

// Valid reports whether v is in canonical form: sorted by node, no
// duplicates, no empty node names, no zero counters. Decoders of vectors from
// the network or disk check it.
func (v Vector) Valid() bool {
	for i, c := range v {
		if c.Node == "" || c.Value == 0 || (i > 0 && v[i-1].Node >= c.Node) {
			return false
		}
	}
	return true
}

// String formats v as "{alpha:3 beta:1}".
func (v Vector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, c := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", c.Node, c.Value)
	}
	b.WriteByte('}')
	return b.String()
}
