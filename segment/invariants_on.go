//go:build invariants || race

package segment

// invariants turns on expensive self-checks (builds with the invariants
// or race tag: every -race test run).
const invariants = true
