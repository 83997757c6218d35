package evlogcli

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

func TestStatsEncodingDeterministic(t *testing.T) {
	s := newStats()
	for i := range 40 {
		s.Streams[string(rune('a'+i))] = streamStats{Count: uint64(i), Version: uint64(i) + 1}
	}
	s.Types["x"], s.Types["y"], s.Seq, s.Events = 1, 2, 99, 3
	a, err := encodeStats(s)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		b, _ := encodeStats(s)
		if !bytes.Equal(a, b) {
			t.Fatal("encodeStats is not deterministic")
		}
	}
	got, err := decodeStats(a)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(s, got); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	// The same bytes msgpack itself decodes into the struct.
	var viaLib stats
	if err := msgpack.Unmarshal(a, &viaLib); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(s, viaLib); d != "" {
		t.Fatalf("msgpack.Unmarshal (-want +got):\n%s", d)
	}
}
