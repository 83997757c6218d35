package segment

import (
	"fmt"
	"strconv"
	"strings"
)

// File names. NEVER CHANGE: a segment is named by the seq of its first event
// (20 decimal digits) and its generation (8 decimal digits), so that sorting
// the names of live segments lexically gives log order, and a rewritten
// (compacted) segment never reuses the name of the one it replaces.
//
//	00000000000000000001-00000000.seg
const (
	// Ext is the extension of segment files.
	Ext        = ".seg"
	seqDigits  = 20
	genDigits  = 8
	nameLength = seqDigits + 1 + genDigits + len(Ext)
	maxGen     = 99_999_999
	// TempExt is appended to a segment name while it is being created or
	// rewritten; recovery removes such files.
	TempExt = ".tmp"
)

// FormatFileName returns the file name of the segment whose first event has
// seq baseSeq, at generation gen (gen must be at most 99,999,999).
func FormatFileName(baseSeq, gen uint64) string {
	return fmt.Sprintf("%0*d-%0*d%s", seqDigits, baseSeq, genDigits, gen, Ext)
}

// ParseFileName is the inverse of FormatFileName. It reports ok=false for any
// name FormatFileName cannot produce.
func ParseFileName(name string) (baseSeq, gen uint64, ok bool) {
	if len(name) != nameLength || !strings.HasSuffix(name, Ext) || name[seqDigits] != '-' {
		return 0, 0, false
	}
	for i := 0; i < seqDigits+1+genDigits; i++ {
		if i != seqDigits && (name[i] < '0' || name[i] > '9') {
			return 0, 0, false
		}
	}
	baseSeq, err1 := strconv.ParseUint(name[:seqDigits], 10, 64)
	gen, err2 := strconv.ParseUint(name[seqDigits+1:seqDigits+1+genDigits], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return baseSeq, gen, true
}
