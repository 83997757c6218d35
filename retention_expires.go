package evlog

import "context"

// ExpiresEvents reports whether events of the log can come to read as
// gone other than by a deletion, with no further write to the log: true
// when the log records retention as visible now (RecordedRetention
// returns settings: events expire as Options.Clock moves past MaxAge and
// as streams grow past MaxCount), false when it records none (every event
// is kept until a writer records retention: opening the writer with a
// non-empty Options.Retention). An error (ErrRetentionUnknown: a record
// of a later version's kind; a read error) comes with true, the safe
// side. Events that already read as gone are FirstExpired's question,
// not this one.
//
// Derived-state keepers ask it before removing something only the events
// can rebuild (projection.RetentionSource: a projection runner replaces
// another fold's checkpoint only on a log that does not expire events).
func (l *Log) ExpiresEvents(ctx context.Context) (bool, error) {
	r, _, err := l.RecordedRetention(ctx)
	if err != nil {
		return true, err
	}
	return len(r) > 0, nil
}
