package snapshot

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestKeepsTiers: the tier selection, a pure function of the policy, the
// snapshots and the injected Now.
func TestKeepsTiers(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	const day = 24 * time.Hour
	// One subject's snapshots, by seq.
	times := []time.Time{
		1:  ago(100 * day),                     // older than every default tier
		2:  ago(50*day + 2*time.Hour),          // Oct 16 10:00: daily tier, an older one of its day
		3:  ago(50*day + time.Hour),            // Oct 16 11:00: the newest of its day
		4:  ago(2*day + 9*time.Hour),           // Dec 3 03:00: alone in its day
		5:  ago(30 * time.Hour),                // Dec 4 06:00: daily tier (older than 24h)
		6:  ago(23 * time.Hour),                // Dec 4 13:00: hourly tier, an older one of its hour
		7:  ago(22*time.Hour + 30*time.Minute), // Dec 4 13:30: the newest of its hour
		8:  ago(2 * time.Hour),                 // Dec 5 10:00
		9:  ago(30 * time.Minute),              // last hour: all kept
		10: ago(10 * time.Minute),
		11: now.Add(5 * time.Minute), // recorded after now (a clock ahead): age 0
	}
	var ms []Meta
	for seq := 1; seq < len(times); seq++ {
		ms = append(ms, Meta{Name: "inv/a", Seq: uint64(seq), Time: times[seq]})
	}
	hour := time.Hour
	tests := []struct {
		name   string
		policy PrunePolicy
		keep   []uint64
	}{
		{"zero is the default: newest 2, all of the last hour, hourly for a day, daily for 90 days",
			PrunePolicy{Now: now}, []uint64{3, 4, 5, 7, 8, 9, 10, 11}},
		{"explicit default", func() PrunePolicy { p := DefaultPrunePolicy(); p.Now = now; return p }(),
			[]uint64{3, 4, 5, 7, 8, 9, 10, 11}},
		{"the last hour only", PrunePolicy{Now: now, Tiers: []Tier{{Within: hour}}}, []uint64{9, 10, 11}},
		{"daily for two days", PrunePolicy{Now: now, Tiers: []Tier{{Within: 2 * day, Every: day}}}, []uint64{7, 11}},
		{"hourly for a day", PrunePolicy{Now: now, Tiers: []Tier{{Within: day, Every: hour}}}, []uint64{7, 8, 10, 11}},
		// Dec 4 13:00 is exactly 23h old: a tier covers ages below
		// Within, so it falls in the next one.
		{"age equal to Within belongs to the next tier",
			PrunePolicy{Now: now, Tiers: []Tier{{Within: 23 * hour}, {Within: day, Every: hour}}}, []uint64{6, 7, 8, 9, 10, 11}},
		{"KeepLast adds the newest", PrunePolicy{Now: now, KeepLast: 3, Tiers: []Tier{{Within: 60 * day, Every: 30 * day}}},
			[]uint64{3, 9, 10, 11}},
		{"KeepLast alone keeps no tiers", PrunePolicy{Now: now, KeepLast: 1}, []uint64{11}},
		{"KeepSince and tiers", PrunePolicy{Now: now, KeepSince: times[8], Tiers: []Tier{{Within: 3 * day, Every: day}}},
			[]uint64{4, 7, 8, 9, 10, 11}},
		{"a later Now ages snapshots into coarser tiers",
			PrunePolicy{Now: now.Add(2 * day)}, []uint64{3, 4, 7, 10, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.policy.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for i, k := range tt.policy.Keeps(ms) {
				if k {
					got = append(got, ms[i].Seq)
				}
			}
			if d := cmp.Diff(tt.keep, got); d != "" {
				t.Errorf("kept seqs (-want +got):\n%s", d)
			}
			var doomed []uint64
			for _, m := range tt.policy.Doomed(ms) {
				doomed = append(doomed, m.Seq)
			}
			if len(doomed)+len(got) != len(ms) {
				t.Errorf("Doomed %v and Keeps %v do not partition the snapshots", doomed, got)
			}
		})
	}
}

// TestKeepsTiersClockSteppedBack: within a period the newest by seq is
// kept (what AtTime selects), even when its recorded time is earlier.
func TestKeepsTiersClockSteppedBack(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ms := []Meta{
		{Name: "x", Seq: 1, Time: now.Add(-5 * time.Hour)},
		{Name: "x", Seq: 2, Time: now.Add(-3 * time.Hour)},
		{Name: "x", Seq: 3, Time: now.Add(-4 * time.Hour)}, // the clock stepped back
	}
	p := PrunePolicy{Now: now, Tiers: []Tier{{Within: 24 * time.Hour, Every: 24 * time.Hour}}}
	if d := cmp.Diff([]bool{false, false, true}, p.Keeps(ms)); d != "" {
		t.Errorf("keeps (-want +got):\n%s", d)
	}
}

func TestPrunePolicyValidateTiers(t *testing.T) {
	for _, p := range []PrunePolicy{
		{Tiers: []Tier{{Within: 0}}},
		{Tiers: []Tier{{Within: time.Hour}, {Within: time.Hour, Every: time.Minute}}},
		{Tiers: []Tier{{Within: 2 * time.Hour}, {Within: time.Hour}}},
		{Tiers: []Tier{{Within: time.Hour, Every: -time.Second}}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p.Tiers)
		}
	}
	if err := (PrunePolicy{}).Validate(); err != nil {
		t.Errorf("the zero policy is invalid: %v", err)
	}
}
