package event

import (
	"fmt"
	"unicode/utf8"
)

// Stream and event type names must be printable text: they end up in text
// output (evlogctl dump, logs, error messages, terminals), where a newline
// or tab forges a record boundary, a NUL truncates, an escape sequence
// drives the terminal and a bidirectional control reorders what is shown.
//
// ValidName reports whether s is acceptable as a stream or event type name
// (the lengths are checked by ValidateFields). A valid name is non-empty,
// valid UTF-8, and holds none of:
//
//   - the C0 controls U+0000–U+001F (NUL, tab, newline, carriage return,
//     escape, …), DEL U+007F and the C1 controls U+0080–U+009F;
//   - the line and paragraph separators U+2028 and U+2029;
//   - the bidirectional formatting controls U+061C, U+200E, U+200F,
//     U+202A–U+202E and U+2066–U+2069.
//
// Everything else is allowed, spaces and any printable Unicode included.
// The rule applies to appends only: names already stored are read as they
// are (an older log may hold any bytes).
func ValidName(s string) bool { return badNameRune(s) < 0 }

// badNameRune returns the byte offset of the first disallowed character of
// s (or of its invalid UTF-8), or -1.
func badNameRune(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf { // ASCII fast path
			if c < 0x20 || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 || !allowedRune(r) {
			return i
		}
		i += n
	}
	return -1
}

func allowedRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f, // C1 controls
		r == 0x2028, r == 0x2029, // line and paragraph separators
		r == 0x061c, r == 0x200e, r == 0x200f, // bidi marks
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return false
	}
	return true
}

// checkName returns an error matching ErrInvalid if name (a "stream name"
// or an "event type", says what) is not ValidName.
func checkName(what, name string) error {
	i := badNameRune(name)
	if i < 0 {
		return nil
	}
	r, n := utf8.DecodeRuneInString(name[i:])
	desc := fmt.Sprintf("character %U", r)
	if r == utf8.RuneError && n <= 1 {
		desc = fmt.Sprintf("invalid UTF-8 (byte %#02x)", name[i])
	}
	return fmt.Errorf("%w: %s %q has %s at byte %d: names must be printable UTF-8, without control, line separator or bidirectional formatting characters (see docs/FORMAT.md, \"Names\")",
		ErrInvalid, what, name, desc, i)
}
