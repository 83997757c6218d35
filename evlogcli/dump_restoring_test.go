package evlogcli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/evlog/evlog"
)

// TestDumpRawRefusesMarkedDir: dump (and tail) fall back to reading the
// segments frame by frame only after the log's open failed on damage; a
// restore or a salvage may have started writing into the directory since
// (its marker first, then segments). Every reader of the library checks
// the listing it reads the log from for RESTORING and SALVAGING (and their
// temporaries); the frame-by-frame reader must too: it used to print the
// events of a partial restore or salvage as the log's, and to report their
// damage as the log's. It must refuse with the library's error (exit 1),
// printing nothing.
func TestDumpRawRefusesMarkedDir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		marker string
		want   error
	}{
		{evlog.RestoreMarker, evlog.ErrRestoreIncomplete},
		{evlog.RestoreMarker + ".tmp", evlog.ErrRestoreIncomplete},
		{evlog.SalvageMarker, evlog.ErrSalvageIncomplete},
		{evlog.SalvageMarker + ".tmp", evlog.ErrSalvageIncomplete},
	} {
		t.Run(tc.marker, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "log")
			mustRun(t, "load", dir, "--count", "150", "--size", "40", "--batch", "5", "--segment-size", "4096")
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			if len(segs) < 3 {
				t.Fatalf("%d segments, want 3 or more", len(segs))
			}
			flipByte(t, segs[1], 10) // a bad header, which the open finds: the fallback runs
			_, openErr := evlog.OpenReadOnly(dir, evlog.Options{})
			if !errors.Is(openErr, evlog.ErrCorrupt) {
				t.Fatalf("OpenReadOnly of the damaged log: %v, want an error matching evlog.ErrCorrupt", openErr)
			}
			// Between the open and the frame-by-frame read, a restore
			// or salvage into the directory writes its marker.
			if err := os.WriteFile(filepath.Join(dir, tc.marker), []byte("{}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, libErr := evlog.OpenReadOnly(dir, evlog.Options{})
			if !errors.Is(libErr, tc.want) {
				t.Fatalf("OpenReadOnly with %s: %v, want %v", tc.marker, libErr, tc.want)
			}
			for _, reader := range []struct {
				name string
				read func(*eventPrinter) error
			}{
				{"dumpRaw", func(p *eventPrinter) error {
					return dumpRaw(t.Context(), dir, filter{from: 1, to: 1<<64 - 1}, p, openErr)
				}},
				{"readRaw", func(p *eventPrinter) error {
					return readRaw(t.Context(), dir, filter{from: 1, to: 1<<64 - 1}, p.print, openErr)
				}},
			} {
				var out bytes.Buffer
				p := newEventPrinter(&out, "jsonl")
				err := reader.read(p)
				if ferr := p.flush(); ferr != nil {
					t.Fatal(ferr)
				}
				if out.Len() != 0 {
					t.Errorf("%s with %s printed events:\n%s", reader.name, tc.marker, out.String())
				}
				if !errors.Is(err, tc.want) || errors.Is(err, evlog.ErrCorrupt) {
					t.Errorf("%s with %s: %v; want the library's refusal (%v), not damage", reader.name, tc.marker, err, tc.want)
				}
				if err != nil && libErr != nil && err.Error() != libErr.Error() {
					t.Errorf("%s with %s: message\n%s\nwant the library's\n%s", reader.name, tc.marker, err, libErr)
				}
				if code := exitCode(fail("dump", err)); code != 1 {
					t.Errorf("%s with %s: exit %d, want 1", reader.name, tc.marker, code)
				}
			}
			// Through the command, the open refuses first (the control).
			for _, args := range [][]string{{"dump", dir}, {"tail", dir}} {
				if r := run1(t, args...); r.code != 1 || !errors.Is(r.err, tc.want) || r.stdout != "" {
					t.Errorf("evlogctl %q: exit %d, %v, stdout %q; want exit 1, %v, nothing printed", args, r.code, r.err, r.stdout, tc.want)
				}
			}
		})
	}
}
