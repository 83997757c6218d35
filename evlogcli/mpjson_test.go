package evlogcli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
)

// TestDataJSON checks the JSON that dump writes for every msgpack type.
func TestDataJSON(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"nil", []byte{0xc0}, `null`},
		{"bools", enc([]bool{true, false}), `[true,false]`},
		{"ints", enc([]any{0, 127, 128, -1, -32, -33, int64(-1 << 63), uint64(1<<64 - 1), int8(-5), uint16(65535)}),
			`[0,127,128,-1,-32,-33,-9223372036854775808,18446744073709551615,-5,65535]`},
		{"float64", enc([]float64{1, 1.5, -0.25, 1e21, 1e-7, 0}), `[1.0,1.5,-0.25,1e+21,1e-07,0.0]`},
		{"float32", enc(float32(0.1)), `0.1`},
		{"non-finite", []byte{0x93, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0, 0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0},
			`["NaN","+Inf","-Inf"]`},
		{"strings", enc([]string{"", "a\"b\\c\n", "\x01\x7f", "é€😀", "\u2028", "<&>"}),
			`["","a\"b\\c\n","\u0001\u007f","é€😀","\u2028","<&>"]`},
		{"invalid utf8", enc("a\xffb"), `"a\ufffdb"`},
		{"bin", enc([]byte{0, 1, 2, 255}), `"AAEC/w=="`},
		{"sorted map", enc(map[string]any{"b": 1, "a": map[string]any{"z": 1, "y": []any{}}, "": nil}),
			`{"":null,"a":{"y":[],"z":1},"b":1}`},
		{"non-string keys", enc(map[any]any{int64(2): "two", true: "t", nil: "n"}), `{"2":"two","null":"n","true":"t"}`},
		{"timestamp 32", enc(time.Unix(1700000000, 0)), `"2023-11-14T22:13:20.000000000Z"`},
		{"timestamp 64", enc(time.Unix(1700000000, 123456789)), `"2023-11-14T22:13:20.123456789Z"`},
		{"timestamp 96", enc(time.Unix(-1, 5)), `"1969-12-31T23:59:59.000000005Z"`},
		{"ext", []byte{0xd5, 0x05, 0xab, 0xcd}, `{"ext":5,"data":"q80="}`},
		{"struct", enc(struct {
			B string `msgpack:"b"`
			A []int  `msgpack:"a"`
		}{"x", []int{1}}), `{"a":[1],"b":"x"}`},
	} {
		out, err := appendMsgpackJSON(nil, tc.data)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if string(out) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, out, tc.want)
		}
	}
	// Not msgpack: trailing bytes, truncation, lengths beyond the data, an
	// unused type byte, nesting too deep.
	for _, bad := range [][]byte{
		{0x01, 0x02}, {0xcd, 0x01}, {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0},
		{0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0, 0xc0}, {0xc1}, []byte(strings.Repeat("\x91", maxDataDepth+2) + "\xc0"),
		{0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // 2^30+ nanoseconds
	} {
		if out, err := appendMsgpackJSON(nil, bad); err == nil {
			t.Errorf("%x converted to %s, want an error", bad, out)
		}
	}
}

// TestDumpRawPayloads appends events whose payloads are arbitrary bytes
// through the library and checks that dump shows them (data_b64 when they
// are not msgpack) and that import restores them byte for byte.
func TestDumpRawPayloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, err := evlog.Open(dir, evlog.Options{Clock: func() time.Time { return testEpoch }})
	if err != nil {
		t.Fatal(err)
	}
	payloads := [][]byte{nil, {0xc1}, {0x01, 0x02}, []byte("plain text"), {0x92, 0x01}}
	for i, p := range payloads {
		if _, err := l.Append(context.Background(), "raw", evlog.ExpectAny, evlog.Envelope{Type: "raw", Data: p, ID: fmt.Sprint("x", i+1), Meta: map[string]string{"k": "v"}, SchemaVersion: 2}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	dump := mustRun(t, "dump", dir, "--format", "jsonl").stdout
	want := `{"seq":1,"stream":"raw","version":1,"type":"raw","time":"2026-11-25T15:00:00.000000000Z","schema_version":2,"id":"x1","meta":{"k":"v"},"data":null}
{"seq":2,"stream":"raw","version":2,"type":"raw","time":"2026-11-25T15:00:00.000000000Z","schema_version":2,"id":"x2","meta":{"k":"v"},"data":null,"data_b64":"wQ=="}
{"seq":3,"stream":"raw","version":3,"type":"raw","time":"2026-11-25T15:00:00.000000000Z","schema_version":2,"id":"x3","meta":{"k":"v"},"data":null,"data_b64":"AQI="}
{"seq":4,"stream":"raw","version":4,"type":"raw","time":"2026-11-25T15:00:00.000000000Z","schema_version":2,"id":"x4","meta":{"k":"v"},"data":null,"data_b64":"cGxhaW4gdGV4dA=="}
{"seq":5,"stream":"raw","version":5,"type":"raw","time":"2026-11-25T15:00:00.000000000Z","schema_version":2,"id":"x5","meta":{"k":"v"},"data":[1,null]}
`
	// The last payload is an array of 2 with one element: not valid.
	want = strings.Replace(want, `"data":[1,null]}`, `"data":null,"data_b64":"kgE="}`, 1)
	if dump != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", dump, want)
	}
	copyDir := filepath.Join(t.TempDir(), "copy")
	r := runIn(t, context.Background(), testEpoch, dump, "import", copyDir)
	if r.code != 0 {
		t.Fatalf("import: %s", r.stderr)
	}
	if got := mustRun(t, "dump", copyDir, "--format", "jsonl").stdout; got != dump {
		t.Fatalf("dump of the import:\n%s\nwant:\n%s", got, dump)
	}
}
