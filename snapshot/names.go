package snapshot

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode/utf8"
)

// File naming. Part of the on-disk format: never change.
const (
	// fileExt ends every snapshot file name.
	fileExt = ".snap"
	// tempExt is appended to a final name while it is being written.
	tempExt = ".tmp"

	hashDigits = 16 // lowercase hex of a uint64
	seqDigits  = 20 // decimal of a uint64, zero-padded
	fileLen    = hashDigits + 1 + seqDigits + len(fileExt)
)

// NameHash returns the hash of a subject name used in file names: FNV-1a,
// 64 bits, over the name's bytes. Part of the file format.
func NameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// FormatFileName returns the base name of the file holding the snapshot of
// name at seq: "<hash>-<seq>.snap" with the hash in 16 lowercase hex digits
// and seq in 20 decimal digits, so lexical order groups a subject and
// orders it by seq. ParseFileName is its inverse.
func FormatFileName(name string, seq uint64) string {
	return fmt.Sprintf("%0*x-%0*d%s", hashDigits, NameHash(name), seqDigits, seq, fileExt)
}

// ParseFileName parses a name made by FormatFileName, returning the name's
// hash and the seq. ok is false for any other name, temporaries included.
func ParseFileName(file string) (nameHash, seq uint64, ok bool) {
	if len(file) != fileLen || file[hashDigits] != '-' || !strings.HasSuffix(file, fileExt) {
		return 0, 0, false
	}
	hexPart, decPart := file[:hashDigits], file[hashDigits+1:hashDigits+1+seqDigits]
	for _, c := range []byte(hexPart) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, 0, false
		}
	}
	for _, c := range []byte(decPart) {
		if !('0' <= c && c <= '9') {
			return 0, 0, false
		}
	}
	nameHash, err := strconv.ParseUint(hexPart, 16, 64)
	if err != nil {
		return 0, 0, false
	}
	seq, err = strconv.ParseUint(decPart, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return nameHash, seq, true
}

// isTemp reports whether file is a leftover temporary of a snapshot.
func isTemp(file string) bool {
	base, ok := strings.CutSuffix(file, tempExt)
	if !ok {
		return false
	}
	_, _, ok = ParseFileName(base)
	return ok
}

// checkName reports whether name is a valid subject name: non-empty, at most
// MaxNameLen bytes, valid UTF-8.
func checkName(name string) error {
	switch {
	case name == "":
		return invalidf("empty snapshot name")
	case len(name) > MaxNameLen:
		return invalidf("snapshot name is %d bytes, the limit is %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return invalidf("snapshot name %.40q is not valid UTF-8", name)
	}
	return nil
}
