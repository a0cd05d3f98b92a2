package sqlite

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"gpubroker/internal/store"
)

type codedErr int

func (e codedErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e codedErr) Code() int     { return int(e) }

// A write refused for want of space is store.ErrFull, whichever way
// SQLite says so; other failures are not.
func TestDiskFull(t *testing.T) {
	for _, tc := range []struct {
		err  error
		full bool
	}{
		{fmt.Errorf("write: %w", syscall.ENOSPC), true},
		{codedErr(13), true},         // SQLITE_FULL
		{codedErr(13 | 1<<8), true},  // an extended SQLITE_FULL
		{codedErr(5), false},         // SQLITE_BUSY
		{codedErr(10 | 3<<8), false}, // SQLITE_IOERR_WRITE
		{errors.New("constraint"), false},
	} {
		if got := errors.Is(diskFull(tc.err), store.ErrFull); got != tc.full {
			t.Errorf("diskFull(%v) is ErrFull: %v, want %v", tc.err, got, tc.full)
		}
	}
}
