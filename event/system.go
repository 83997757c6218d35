package event

import "strings"

// System streams: evlog writes events of its own into streams whose names
// start with SystemStreamPrefix (appends by applications to such names
// fail). Folds skip them: replay.Run and the projection runner never hand
// them to a Decode, but they advance the seq a fold has covered.
const (
	// SystemStreamPrefix starts the names of evlog's system streams.
	SystemStreamPrefix = "$$"
	// DeletionsStream holds the markers of stream deletions (see
	// evlog.Log.DeleteStream and docs/FORMAT.md, "Deletion and
	// retention"): a state folded from events before one may hold data of
	// events that read as gone since.
	DeletionsStream = "$$deletions"
	// RetentionStream holds the records of the log's retention settings
	// (see evlog.Options.Retention and docs/FORMAT.md, "Deletion and
	// retention"): the newest one is what every process applies.
	RetentionStream = "$$retention"
)

// IsSystemStream reports whether stream is one of evlog's system streams.
func IsSystemStream(stream string) bool { return strings.HasPrefix(stream, SystemStreamPrefix) }
