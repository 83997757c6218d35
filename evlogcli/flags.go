package evlogcli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// flags is one command's flag set (the standard flag package, which
// accepts -name and --name alike) with its usage text.
type flags struct {
	*flag.FlagSet
	cmd      string
	synopsis string // e.g. "dump DIR [--from SEQ] [--to SEQ]"
	about    string // what the command does, for --help

	formatVal *string
	formats   []string
}

func newFlags(cmd, synopsis, about string) *flags {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by parse, usage by --help
	return &flags{FlagSet: fs, cmd: cmd, synopsis: synopsis, about: about}
}

// format registers --format with the allowed values (the first is the
// default).
func (f *flags) format(p *string, values ...string) {
	f.formatVal, f.formats = p, values
	f.StringVar(p, "format", values[0], "the output format: `"+strings.Join(values, "|")+"`")
}

// parse parses args, which may mix flags and positional arguments (flags
// may follow DIR; "--" ends the flags), and returns the positional
// arguments, which must be exactly as many as names (a name ending in "?"
// is optional). --help prints the usage on stdout and returns errHelp.
func (f *flags) parse(e *env, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			f.usage(e.stdout, e.prog())
			return nil, errHelp
		}
		if err != nil {
			return nil, &usageError{cmd: f.cmd, msg: flagMessage(err)}
		}
		rest := f.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if f.formatVal != nil && !slices.Contains(f.formats, *f.formatVal) {
		return nil, usagef(f.cmd, "--format %q: use %s", *f.formatVal, strings.Join(f.formats, " or "))
	}
	required := 0
	for _, n := range names {
		if !strings.HasSuffix(n, "?") {
			required++
		}
	}
	switch {
	case len(pos) < required:
		return nil, usagef(f.cmd, "missing %s", names[len(pos)])
	case len(pos) > len(names):
		return nil, usagef(f.cmd, "unexpected argument %q", pos[len(names)])
	}
	for i, p := range pos {
		if p == "" {
			return nil, usagef(f.cmd, "empty %s", strings.TrimSuffix(names[i], "?"))
		}
	}
	return pos, nil
}

// isSet reports whether the flag was given on the command line.
func (f *flags) isSet(name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			set = true
		}
	})
	return set
}

// flagMessage rewrites the flag package's error messages in evlogctl's
// terms (flags are spelled --name).
func flagMessage(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return "unknown flag -" + name
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return "flag -" + name + " needs a value"
	}
	if strings.HasPrefix(msg, "invalid value ") || strings.HasPrefix(msg, "invalid boolean value ") {
		return strings.Replace(msg, " for flag -", " for flag --", 1)
	}
	return msg
}

// usage prints the command's help, naming the program prog.
func (f *flags) usage(w io.Writer, prog string) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: evlogctl %s\n\n", f.synopsis)
	if f.about != "" {
		b.WriteString(strings.TrimSpace(f.about))
		b.WriteString("\n\n")
	}
	b.WriteString("Flags:\n")
	f.VisitAll(func(fl *flag.Flag) {
		name, use := flag.UnquoteUsage(fl)
		dashes := "--"
		if len(fl.Name) == 1 {
			dashes = "-"
		}
		fmt.Fprintf(&b, "  %s%s", dashes, fl.Name)
		if name != "" {
			fmt.Fprintf(&b, " %s", name)
		}
		fmt.Fprintf(&b, "\n      %s", use)
		if def := fl.DefValue; def != "" && def != "0" && def != "false" {
			fmt.Fprintf(&b, " (default %s)", def)
		}
		b.WriteString("\n")
	})
	b.WriteString("  --help\n      print this help\n")
	io.WriteString(w, renameProg(b.String(), prog))
}

// timeLayout is how evlogctl prints times: UTC, exactly nine fractional
// digits.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// formatTime prints t in timeLayout.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// parseTime parses an RFC 3339 time or a Go duration relative to now
// ("-24h", "-90m", "1h30m").
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-25T15:00:00Z) nor a duration relative to now (-24h)", s)
}

// byteSize is a flag value of a size in bytes: a number, optionally with a
// binary suffix (K or KiB, M or MiB, G or GiB).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffixes []string
		mult     int64
	}{
		{[]string{"KiB", "K", "k", "KB", "kB"}, 1 << 10},
		{[]string{"MiB", "M", "MB"}, 1 << 20},
		{[]string{"GiB", "G", "GB"}, 1 << 30},
	} {
		for _, suf := range u.suffixes {
			if n, ok := strings.CutSuffix(s, suf); ok {
				num, mult = n, u.mult
			}
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return errors.New("want a size in bytes, like 4096 or 64MiB")
	}
	*b = byteSize(v * mult)
	return nil
}

// writeJSON writes v as one compact JSON document and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
