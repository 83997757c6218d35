// Package fuzz holds the module's end-to-end fuzz targets (issue 6); the
// per-format targets live next to their code (segment, snapshot). It has
// no code of its own: everything is in _test.go files.
//
//   - FuzzOpenDir: a log directory whose segment files hold arbitrary
//     bytes is opened (read-only, and for writing on a copy), read in full
//     and verified: no panic, bounded allocation, and either a valid
//     contiguous prefix of events or an error matching evlog.ErrCorrupt.
//     It runs on in-memory directories (vfs.Mem, opened through
//     internal/testhook), a millisecond or so per input.
//   - FuzzReplayModel: the input is a program of appends, snapshot saves
//     and damage to the closed log's files; the state replay computes (with
//     snapshots and without) must equal that of an in-memory reference
//     model, or be a clear error — never a wrong state served silently.
//     It runs in memory too (vfs.Mem): on a real directory every input
//     waited for its dozens of fsyncs (3 execs/s fuzzing; about 100 now,
//     some 7 ms an input).
//   - FuzzUpcastChain: arbitrary payloads through a chain of upcasters and
//     evlog.Decode: no panic, an error or a value at the chain's end.
//
// `go test ./fuzz/` runs the seed corpora in testdata/fuzz (generated from
// real logs: go test ./fuzz/ -run TestSeedCorpora -fuzz.update). To fuzz,
// run every target of the module for a while each:
//
//	./fuzz/run.sh 60s
//
// A failing input is written by `go test -fuzz` to the package's
// testdata/fuzz/<Target>/ directory; commit it as a regression seed.
package fuzz
