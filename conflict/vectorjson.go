package conflict

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// MarshalJSON writes v as an object from node to counter, in node order:
// {"alpha":3,"beta":1}. The empty vector is {}.
func (v Vector) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, c := range v {
		if i > 0 {
			b = append(b, ',')
		}
		name, err := json.Marshal(c.Node)
		if err != nil {
			return nil, err
		}
		b = append(b, name...)
		b = append(b, ':')
		b = strconv.AppendUint(b, c.Value, 10)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads the form MarshalJSON writes (null is the empty
// vector). It refuses what would not be Valid: duplicate or empty node
// names, zero counters.
func (v *Vector) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*v = nil
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("vector: want a JSON object of node: counter")
	}
	var out Vector
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("vector: %w", err)
		}
		node := tok.(string) // object keys are always strings
		tok, err = d.Token()
		if err != nil {
			return fmt.Errorf("vector: %w", err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return fmt.Errorf("vector: counter of %q is not a number", node)
		}
		n, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			return fmt.Errorf("vector: counter of %q: %w", node, err)
		}
		out = append(out, Counter{node, n})
	}
	if _, err := d.Token(); err != nil {
		return fmt.Errorf("vector: %w", err)
	}
	slices.SortFunc(out, func(a, b Counter) int {
		switch {
		case a.Node < b.Node:
			return -1
		case a.Node > b.Node:
			return 1
		}
		return 0
	})
	if !out.Valid() {
		return fmt.Errorf("vector %v: empty or repeated node, or zero counter", out)
	}
	*v = out
	return nil
}
