package inventory

import (
	"cmp"
	"maps"
	"slices"

	"github.com/evlog/evlog/projection"
)

// MostCollected counts, per item, how many times it was added (undoing a
// removal puts an item back; it does not collect it again).
var MostCollected = projection.Projection[map[string]int, Event]{
	Name:          "most-collected",
	SchemaVersion: 1,
	Init:          func() map[string]int { return map[string]int{} },
	Apply: func(m map[string]int, e Event) map[string]int {
		if a, ok := e.Data.(Added); ok && e.Meta[metaCompensates] == "" {
			m[a.Name]++
		}
		return m
	},
}

// TopN returns the n items with the highest counts (ties by name).
func TopN(counts map[string]int, n int) []Stack {
	out := make([]Stack, 0, len(counts))
	for name, c := range counts {
		out = append(out, Stack{name, c})
	}
	slices.SortFunc(out, func(a, b Stack) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out[:min(n, len(out))]
}

// Origins maps each item to the set of origins it was added from.
var Origins = projection.Projection[map[string]map[string]bool, Event]{
	Name:          "item-origins",
	SchemaVersion: 1,
	Init:          func() map[string]map[string]bool { return map[string]map[string]bool{} },
	Apply: func(m map[string]map[string]bool, e Event) map[string]map[string]bool {
		if a, ok := e.Data.(Added); ok && a.Origin != "" {
			if m[a.Name] == nil {
				m[a.Name] = map[string]bool{}
			}
			m[a.Name][a.Origin] = true
		}
		return m
	},
}

// OriginsOf returns an item's origins, sorted.
func OriginsOf(m map[string]map[string]bool, item string) []string {
	return slices.Sorted(maps.Keys(m[item]))
}

// Churn is how often an item was added and removed.
type Churn struct {
	Name    string
	Added   int
	Removed int
}

// Turnover counts adds and removes per item: "which items were added and
// removed most frequently?".
var Turnover = projection.Projection[map[string]Churn, Event]{
	Name:          "turnover",
	SchemaVersion: 1,
	Init:          func() map[string]Churn { return map[string]Churn{} },
	Apply: func(m map[string]Churn, e Event) map[string]Churn {
		if e.Data == nil {
			return m
		}
		name := e.Data.Item().Name
		c := m[name]
		c.Name = name
		switch e.Data.(type) {
		case Added:
			c.Added++
		case Removed:
			c.Removed++
		}
		m[name] = c
		return m
	},
}

// MostChurned returns the n items with the most adds plus removes.
func MostChurned(m map[string]Churn, n int) []Churn {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b Churn) int {
		if c := cmp.Compare(b.Added+b.Removed, a.Added+a.Removed); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out[:min(n, len(out))]
}
