package evlog

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Retention bounds how long the events of one category are kept: events
// beyond either bound read as gone at once, and Compact removes their
// payloads. See Options.Retention.
type Retention struct {
	// MaxAge: events recorded more than MaxAge before Options.Clock() read
	// as gone. 0: no bound.
	MaxAge time.Duration
	// MaxCount: only the newest MaxCount events of each stream of the
	// category are read. 0: no bound.
	MaxCount int
}

// validateRetention checks Options.Retention.
func validateRetention(r map[string]Retention) error {
	var errs []error
	for _, cat := range slices.Sorted(maps.Keys(r)) {
		x := r[cat]
		if cat == "" || strings.Contains(cat, CategorySeparator) || strings.HasPrefix(cat, SystemTypePrefix) {
			errs = append(errs, fmt.Errorf("Retention: %q is not a category (non-empty, without %q, not starting with %q)", cat, CategorySeparator, SystemTypePrefix))
		}
		if x.MaxAge < 0 || x.MaxCount < 0 {
			errs = append(errs, fmt.Errorf("Retention[%q]: MaxAge %v and MaxCount %d must not be negative", cat, x.MaxAge, x.MaxCount))
		}
		if x.MaxAge == 0 && x.MaxCount == 0 {
			errs = append(errs, fmt.Errorf("Retention[%q]: set MaxAge or MaxCount (or remove the entry)", cat))
		}
	}
	return errors.Join(errs...)
}
