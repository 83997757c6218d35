package event

import (
	"fmt"
	"strings"
)

// CategorySeparator separates a stream name's category from its id, as in
// KurrentDB: the stream of the inventory "alice" is "inventory-alice". A
// category never contains the separator; an id may ("order-2026-11-25"
// is the id "2026-11-25" of the category "order"): a stream's category is
// everything before its first separator.
const CategorySeparator = "-"

// StreamName returns the name of the stream of instance id in category:
// category + CategorySeparator + id. It does not validate (see
// CheckCategory and CheckID).
func StreamName(category, id string) string { return category + CategorySeparator + id }

// CategoryOf returns the category of a stream name — everything before
// its first CategorySeparator — and its id; ok is false when the name has
// no separator (it belongs to no category).
func CategoryOf(stream string) (category, id string, ok bool) {
	return strings.Cut(stream, CategorySeparator)
}

// CheckCategory returns an error matching ErrInvalid unless category can
// name a category: non-empty, without CategorySeparator, a ValidName, and
// short enough to leave room for an id in a stream name.
func CheckCategory(category string) error {
	switch {
	case category == "":
		return fmt.Errorf("%w: empty category", ErrInvalid)
	case strings.Contains(category, CategorySeparator):
		return fmt.Errorf("%w: category %q contains the separator %q (the category is what comes before a stream name's first %q; an id may contain it)", ErrInvalid, category, CategorySeparator, CategorySeparator)
	case len(category)+len(CategorySeparator) >= MaxStreamLen:
		return fmt.Errorf("%w: category is %d bytes, leaving no room for an id in a stream name of at most %d", ErrInvalid, len(category), MaxStreamLen)
	}
	return checkName("category", category)
}

// CheckID returns an error matching ErrInvalid unless id can name an
// instance of category: non-empty, a ValidName (it may contain
// CategorySeparator), and with the category within MaxStreamLen.
func CheckID(category, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty id (category %q)", ErrInvalid, category)
	case len(category)+len(CategorySeparator)+len(id) > MaxStreamLen:
		return fmt.Errorf("%w: stream name of id %.40q in category %q would be %d bytes, the limit is %d", ErrInvalid, id, category, len(category)+len(CategorySeparator)+len(id), MaxStreamLen)
	}
	return checkName("id", id)
}
