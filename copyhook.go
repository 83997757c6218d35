package evlog

import (
	"context"

	"github.com/evlog/evlog/internal/copyhook"
	"github.com/evlog/evlog/internal/vfs"
)

func init() {
	copyhook.AppendBatch = func(ctx context.Context, l any, batch any) (any, error) {
		return l.(*Log).appendBatch(ctx, batch.([]AppendRequest), true)
	}
	copyhook.DecodesRetention = func(data []byte) bool {
		_, err := decodeRetention(data)
		return err == nil
	}
	copyhook.NoRetention = func() []byte {
		b, err := encodeRetention(nil)
		if err != nil {
			panic(err) // an empty map: never
		}
		return b
	}
	copyhook.Open = func(fsys any, opts any) (any, error) {
		l, err := openFS(fsys.(vfs.FS), opts.(Options), false)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}
