package inventory

import (
	"math/rand/v2"
	"time"
)

// catalogue is the demo's items: name, rarity, and where they come from.
var catalogue = []struct {
	name, rarity string
	origins      []string
}{
	{"sword", "rare", []string{"castle", "dungeon", "forge"}},
	{"potion", "common", []string{"shop", "alchemist", "dungeon"}},
	{"shield", "rare", []string{"castle", "forge"}},
	{"arrow", "common", []string{"shop", "forest"}},
	{"bow", "uncommon", []string{"forest", "shop"}},
	{"helmet", "uncommon", []string{"forge", "castle"}},
	{"gold-coin", "common", []string{"dungeon", "quest", "shop"}},
	{"ring", "epic", []string{"dungeon", "quest"}},
	{"amulet", "epic", []string{"temple", "quest"}},
	{"herb", "common", []string{"forest", "alchemist"}},
	{"scroll", "uncommon", []string{"temple", "library"}},
	{"map", "uncommon", []string{"library", "quest"}},
	{"lantern", "common", []string{"shop"}},
	{"rope", "common", []string{"shop", "castle"}},
	{"dragon-egg", "legendary", []string{"dungeon"}},
}

// Generate returns n inventory events recorded evenly over [start,
// start+span): a deterministic mix (from seed) of additions and removals,
// never removing an item the inventory does not hold. The first legacy
// legacy events use the version 1 payload (the bare name) to show
// schema evolution: Generate marks them SchemaVersion 1, and the caller
// stores their payload as the bare item name (evlog.Event[string]).
func Generate(seed uint64, n, legacy int, start time.Time, span time.Duration) []Event {
	rng := rand.New(rand.NewPCG(seed, 0x1badb002))
	held := map[string]int{}
	out := make([]Event, 0, n)
	step := span / time.Duration(max(n, 1))
	for i := range n {
		e := Event{Time: start.Add(time.Duration(i) * step), SchemaVersion: PayloadVersion}
		c := catalogue[pick(rng)]
		if held[c.name] > 0 && rng.IntN(100) < 42 {
			e.Type = ItemRemoved
			e.Data = Removed{Name: c.name}
			held[c.name]--
		} else {
			e.Type = ItemAdded
			e.Data = Added{Name: c.name, Rarity: c.rarity, Origin: c.origins[rng.IntN(len(c.origins))]}
			held[c.name]++
		}
		if i < legacy {
			e.SchemaVersion = 1
		}
		out = append(out, e)
	}
	return out
}

// pick favours common items: index i has weight 1/(i+1).
func pick(rng *rand.Rand) int {
	total := 0.0
	for i := range catalogue {
		total += 1 / float64(i+1)
	}
	x := rng.Float64() * total
	for i := range catalogue {
		if x -= 1 / float64(i+1); x <= 0 {
			return i
		}
	}
	return len(catalogue) - 1
}
