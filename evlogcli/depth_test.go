package evlogcli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog/segment"
)

// TestImportNestingLimit: import writes no payload that typed reads or
// dump would refuse: data nested deeper than segment.MaxPayloadDepth is
// refused with the line named, the limit itself is accepted and dumps.
func TestImportNestingLimit(t *testing.T) {
	nested := func(depth int) string {
		return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth)
	}
	for _, tc := range []struct {
		depth int
		ok    bool
	}{
		{segment.MaxPayloadDepth, true},
		{segment.MaxPayloadDepth + 1, false},
		{300, false},
	} {
		dir := filepath.Join(t.TempDir(), "log")
		line := `{"stream":"s","type":"t","data":` + nested(tc.depth) + "}\n"
		r := runIn(t, t.Context(), testEpoch, line, "import", dir)
		if ok := r.code == 0; ok != tc.ok {
			t.Errorf("import of data nested %d deep: exit %d (%s), want ok=%v", tc.depth, r.code, strings.TrimSpace(r.stderr), tc.ok)
			continue
		}
		if tc.ok {
			if d := run1(t, "dump", dir, "--format", "jsonl"); d.code != 0 {
				t.Errorf("dump of data nested %d deep: exit %d: %s", tc.depth, d.code, d.stderr)
			}
		}
	}
}
