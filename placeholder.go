package evlog

// placeholderOf returns the placeholder Compact writes in place of the
// gone event e (docs/FORMAT.md, "Deletion and retention"): the same seq,
// stream, version, time, schema version and ID, type TypeRedacted, and
// no Meta or Data. It is an event frame like any other (no format
// version of its own): placeholders written before they kept the ID
// simply have none, and read the same.
//
// The ID is kept so that a retry of an append whose events were all
// deleted (or expired) and compacted is still recognised as a retry
// (dedupe.go) instead of writing the events again; nothing of the
// payload is kept (not even a digest, which would confirm a guess of
// it). An ID is client-chosen metadata that survives deletion: clients
// must not put personal data in IDs.
func placeholderOf(e *Envelope) Envelope {
	p := Envelope{Seq: e.Seq, Stream: e.Stream, Version: e.Version, Type: TypeRedacted, SchemaVersion: e.SchemaVersion, Time: e.Time, ID: e.ID}
	if placeholdersWithoutID {
		p.ID = ""
	}
	return p
}

// placeholdersWithoutID makes placeholderOf drop the ID, as versions
// before placeholders kept it did: set only by tests (never parallel
// ones) that pin how a log compacted by such a version reads.
var placeholdersWithoutID bool
