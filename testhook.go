package evlog

import (
	"context"

	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
)

func init() {
	testhook.Open = func(fsys vfs.FS, opts any) (any, error) {
		l, err := openFS(fsys, opts.(Options), false)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	testhook.OpenReadOnly = func(fsys vfs.FS, opts any) (any, error) {
		l, err := openFS(vfs.ReadOnly(fsys), opts.(Options), true)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	testhook.Verify = func(ctx context.Context, fsys vfs.FS) (any, error) {
		ro := vfs.ReadOnly(fsys)
		if err := checkLogDir(ro); err != nil {
			return VerifyReport{}, err
		}
		return verifyFS(ctx, ro)
	}
}
