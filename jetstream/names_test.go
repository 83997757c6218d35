package jetstream

import (
	"strings"
	"testing"
)

func TestEscapeRoundTrips(t *testing.T) {
	for _, s := range []string{
		"", "plain", "a.b", "*", ">", "a b\tc\nd\r", "=", "==41", "ünïcødé", "\x00\xff", "orders.eu/*>",
		strings.Repeat("x.", 600),
	} {
		e := escape(s)
		if strings.ContainsAny(e, ".*> \t\r\n") {
			t.Errorf("escape(%q) = %q: not one subject token", s, e)
		}
		for i := 0; i < len(e); i++ {
			if e[i] >= 0x80 {
				t.Errorf("escape(%q) = %q: non-ASCII byte", s, e)
				break
			}
		}
		got, err := unescape(e)
		if err != nil || got != s {
			t.Errorf("unescape(escape(%q)) = %q, %v", s, got, err)
		}
	}
	for _, bad := range []string{"a.b", "=4", "=zz", "=4g", "ü", " "} {
		if got, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) = %q, want an error", bad, got)
		}
	}
	// Different names never share a subject.
	if escape("a=2Eb") == escape("a.b") {
		t.Error("two names escape to the same token")
	}
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{"orders": true, "a-b_c9": true, "": false, "a.b": false, "a b": false, strings.Repeat("x", 65): false, "é": false} {
		if validName(s) != want {
			t.Errorf("validName(%q) = %v", s, !want)
		}
	}
}
