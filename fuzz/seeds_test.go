package fuzz

import (
	"context"
	"testing"

	"github.com/evlog/evlog"
)

// TestSeedCorpora keeps the seed corpora under testdata/fuzz in step with
// the code that generates them (regenerate with -fuzz.update), and checks
// that they mean what their names say.
func TestSeedCorpora(t *testing.T) {
	syncCorpus(t, "FuzzOpenDir", openDirSeeds(t), false)
	syncCorpus(t, "FuzzReplayModel", replayModelSeeds(), true)
	syncCorpus(t, "FuzzUpcastChain", upcastSeeds(), true)
	if *update {
		return
	}
	// The "valid-" directories open and read without error.
	for name, vals := range loadSeeds(t, "FuzzOpenDir", "valid-") {
		count := int(vals[0].(uint8)%3) + 1
		dir := t.TempDir()
		writeSegments(t, dir, count, []uint64{1, vals[1].(uint64), vals[2].(uint64)}, [][]byte{vals[3].([]byte), vals[4].([]byte), vals[5].([]byte)})
		l, err := evlog.OpenReadOnly(dir, evlog.Options{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		events, err := readLog(context.Background(), l)
		if err != nil || len(events) == 0 {
			t.Errorf("%s: %d events, %v", name, len(events), err)
		}
		l.Close()
	}
}
