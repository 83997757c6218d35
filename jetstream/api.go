package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream API error codes this package acts on.
const (
	codeWrongLastSeq         jetstream.ErrorCode = 10071 // with the current seq
	codeWrongLastSeqConstant jetstream.ErrorCode = 10164 // the same, without it (replicated streams)
	codeNoMessage            jetstream.ErrorCode = 10037
	codeBatchTooLarge        jetstream.ErrorCode = 10199
	codeBatchDuplicateID     jetstream.ErrorCode = 10201
	codeDuplicateConflict    jetstream.ErrorCode = 10158 // Nats-Msg-Id seen, seq unknown
	codeUnavailable          jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
	codeStreamNotMatch       jetstream.ErrorCode = 10060 // Nats-Expected-Stream names another stream
)

// apiCode returns the JetStream error code of err (0: none).
func apiCode(err error) jetstream.ErrorCode {
	if api := apiError(err); api != nil {
		return api.ErrorCode
	}
	return 0
}

// apiError returns the JetStream API error in err's chain, or nil.
func apiError(err error) *jetstream.APIError {
	if js, ok := errors.AsType[jetstream.JetStreamError](err); ok && js.APIError() != nil {
		return js.APIError()
	}
	if api, ok := errors.AsType[*jetstream.APIError](err); ok {
		return api
	}
	return nil
}

// rawMsg is one stored message as the stream leader returns it.
type rawMsg struct {
	Subject string      `json:"subject"`
	Seq     uint64      `json:"seq"`
	Header  []byte      `json:"hdrs,omitempty"`
	Data    []byte      `json:"data,omitempty"`
	Time    time.Time   `json:"time"`
	hdr     nats.Header // parsed Header
}

// getMsg asks the stream leader (never a possibly lagging replica, as
// direct gets may) for one message: by seq, or the last one of subject.
// found is false when there is no such message.
func (l *Log) getMsg(ctx context.Context, seq uint64, lastBySubject string) (m *rawMsg, found bool, err error) {
	return l.getStreamMsg(ctx, l.streamName, seq, lastBySubject)
}

// getStreamMsg is getMsg on any stream of the account (the snapshot KV
// bucket's, for one).
func (l *Log) getStreamMsg(ctx context.Context, stream string, seq uint64, lastBySubject string) (m *rawMsg, found bool, err error) {
	req := struct {
		Seq     uint64 `json:"seq,omitempty"`
		LastFor string `json:"last_by_subj,omitempty"`
	}{seq, lastBySubject}
	b, _ := json.Marshal(req)
	ctx, cancel := l.bound(ctx)
	defer cancel()
	resp, err := l.nc.RequestWithContext(ctx, l.apiPrefix+"STREAM.MSG.GET."+stream, b)
	if err != nil {
		return nil, false, fmt.Errorf("evlog/jetstream: reading a message of %s: %w", stream, err)
	}
	var r struct {
		Error   *jetstream.APIError `json:"error"`
		Message *rawMsg             `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, false, fmt.Errorf("evlog/jetstream: reading a message of %s: bad response: %w", stream, err)
	}
	if r.Error != nil {
		if r.Error.ErrorCode == codeNoMessage {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("evlog/jetstream: reading a message of %s: %w", stream, r.Error)
	}
	if r.Message == nil {
		return nil, false, fmt.Errorf("evlog/jetstream: reading a message of %s: empty response", stream)
	}
	if len(r.Message.Header) > 0 {
		h, err := parseHeader(r.Message.Header)
		if err != nil {
			return nil, false, fmt.Errorf("evlog/jetstream: message %d of %s: %w", r.Message.Seq, stream, err)
		}
		r.Message.hdr = h
	}
	return r.Message, true, nil
}

// parseHeader decodes a stored header block ("NATS/1.0\r\nK: V\r\n…");
// keys are kept as stored (case-sensitive).
func parseHeader(b []byte) (nats.Header, error) {
	lines := strings.Split(string(b), "\r\n")
	if !strings.HasPrefix(lines[0], "NATS/1.0") {
		return nil, errors.New("header block does not start with NATS/1.0")
	}
	h := nats.Header{}
	for _, line := range lines[1:] {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("malformed header line %.40q", line)
		}
		h[k] = append(h[k], strings.TrimSpace(v))
	}
	return h, nil
}
