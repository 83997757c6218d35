package evlog

import (
	"context"

	"github.com/evlog/evlog/internal/copyhook"
)

func init() {
	copyhook.AppendBatch = func(ctx context.Context, l any, batch any) (any, error) {
		return l.(*Log).appendBatch(ctx, batch.([]AppendRequest), true)
	}
}
