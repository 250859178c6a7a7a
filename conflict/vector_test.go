package conflict

import (
	"math/rand"
	"testing"
)

func vec(kv ...any) Vector {
	var v Vector
	for i := 0; i < len(kv); i += 2 {
		v = v.With(kv[i].(string), uint64(kv[i+1].(int)))
	}
	return v
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b Vector
		want Ordering
	}{
		{nil, nil, Equal},
		{vec("alpha", 1), nil, Greater},
		{nil, vec("alpha", 1), Lesser},
		{vec("alpha", 1, "beta", 2), vec("alpha", 1, "beta", 2), Equal},
		{vec("alpha", 2, "beta", 2), vec("alpha", 1, "beta", 2), Greater},
		{vec("alpha", 1), vec("alpha", 1, "beta", 1), Lesser},
		{vec("alpha", 2), vec("alpha", 1, "beta", 1), Concurrent},
		{vec("alpha", 1, "gamma", 1), vec("beta", 1), Concurrent},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestUpdateDominates(t *testing.T) {
	v := vec("alpha", 3, "beta", 7)
	u := v.Update("alpha")
	if got := u.Compare(v); got != Greater {
		t.Errorf("%v.Compare(%v) = %v, want greater", u, v, got)
	}
	if u.Get("alpha") != 8 {
		t.Errorf("Update(alpha) of %v = %v, want alpha:8", v, u)
	}
	if v.Get("alpha") != 3 {
		t.Errorf("Update modified its receiver: %v", v)
	}
}

func TestMergeProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	nodes := []string{"alpha", "beta", "gamma"}
	random := func() Vector {
		var v Vector
		for _, n := range nodes {
			if rng.Intn(3) > 0 {
				v = v.With(n, uint64(rng.Intn(5)))
			}
		}
		return v
	}
	for i := 0; i < 2000; i++ {
		a, b := random(), random()
		m := a.Merge(b)
		if !m.Valid() {
			t.Fatalf("%v.Merge(%v) = %v, not canonical", a, b, m)
		}
		if c := m.Compare(a); c != Greater && c != Equal {
			t.Fatalf("%v.Merge(%v) = %v does not dominate %v (%v)", a, b, m, a, c)
		}
		if c := m.Compare(b); c != Greater && c != Equal {
			t.Fatalf("%v.Merge(%v) = %v does not dominate %v (%v)", a, b, m, b, c)
		}
		if m.Compare(b.Merge(a)) != Equal {
			t.Fatalf("Merge is not commutative for %v, %v", a, b)
		}
		ab, ba := a.Compare(b), b.Compare(a)
		if (ab == Greater) != (ba == Lesser) || (ab == Concurrent) != (ba == Concurrent) {
			t.Fatalf("Compare not antisymmetric for %v, %v: %v / %v", a, b, ab, ba)
		}
	}
}

func TestValid(t *testing.T) {
	if !(Vector{{"a", 1}, {"b", 2}}).Valid() {
		t.Error("sorted vector reported invalid")
	}
	for _, v := range []Vector{{{"b", 1}, {"a", 1}}, {{"a", 1}, {"a", 2}}, {{"a", 0}}, {{"", 1}}} {
		if v.Valid() {
			t.Errorf("%v.Valid() = true, want false", v)
		}
	}
}
