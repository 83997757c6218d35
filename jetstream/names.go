package jetstream

import (
	"fmt"
	"strings"
)

// escape turns s into one NATS subject token (or a header value, or a KV
// key token) reversibly: ASCII letters, digits and "-_" stay as they are,
// every other byte (".", "*", ">", whitespace, "=", non-ASCII, …) becomes
// "=" and two upper-case hex digits. unescape inverts it.
func escape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// unescape inverts escape; it fails on anything escape cannot produce.
func unescape(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '=' {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("byte %q at %d of %.40q is never produced by the encoding", c, i, s)
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape at %d of %.40q", i, s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape at %d of %.40q", i, s)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// validName reports whether a log name can be used in stream, bucket and
// subject names: 1 to 64 ASCII letters, digits, "-" or "_".
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return escape(s) == s
}
