package slurm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gpubroker/internal/backend"
)

// filePoll is how often a following Logs reads new output.
const filePoll = 100 * time.Millisecond

// Logs streams an attempt's output from the shared directory: node 0's log,
// node 1's, ..., then the batch script's own output (srun's errors, Slurm's
// cancellation notice) prefixed "[slurm] ". Node lines are prefixed
// "[rank N] " when the attempt has more than one node. With follow, output
// is streamed as it is written until Slurm reports the job ended (asked
// every Options.Poll) and everything is read, or ctx is done. Logs of
// forgotten attempts are still served. ErrNotFound for names never
// submitted here.
func (b *Backend) Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error) {
	files, forgotten, err := b.logFiles(name)
	if err != nil {
		return nil, err
	}
	return backend.TailFiles(ctx, files, follow && !forgotten, func() bool { return b.ended(ctx, name) }, b.opts.Poll, filePoll), nil
}

// TailLogs implements backend.LogTailer: the last lines of each node's
// log and of the batch script's, read from their ends.
func (b *Backend) TailLogs(ctx context.Context, name string, lines int, maxBytes int64) ([]byte, error) {
	files, _, err := b.logFiles(name)
	if err != nil {
		return nil, err
	}
	return backend.TailLines(files, lines, maxBytes)
}

// logFiles are the logs Logs reads, in order; forgotten once Forget ran.
func (b *Backend) logFiles(name string) (files []backend.LogFile, forgotten bool, err error) {
	if err := validName(name); err != nil {
		return nil, false, err
	}
	adir := filepath.Join(b.dir, name)
	rec, err := readRecord(adir)
	if err != nil {
		return nil, false, fmt.Errorf("slurm: logs %s: %w", name, backend.ErrNotFound)
	}
	if _, err := os.Stat(filepath.Join(adir, forgottenFile)); err == nil {
		forgotten = true
	}
	for rank := range rec.Nodes {
		f := backend.LogFile{Path: filepath.Join(adir, "node-"+strconv.Itoa(rank)+".log")}
		if rec.Nodes > 1 {
			f.Prefix = "[rank " + strconv.Itoa(rank) + "] "
		}
		files = append(files, f)
	}
	files = append(files, backend.LogFile{Glob: filepath.Join(adir, "slurm-*.out"), Prefix: "[slurm] "})
	return files, forgotten, nil
}

// ended reports whether Slurm no longer runs or queues a job named name.
// An error (the controller is unreachable) counts as not ended: following
// goes on until ctx is done.
func (b *Backend) ended(ctx context.Context, name string) bool {
	out, err := b.run(ctx, "squeue", "--me", "--noheader", "--states=all", "--name="+name, "--Format="+squeueFormat)
	if err != nil {
		return errors.Is(err, context.Canceled)
	}
	jobs, err := parseSqueue(string(out))
	if err != nil {
		return false
	}
	for _, j := range jobs {
		if j.Name == name && active(phaseOf(j.State)) {
			return false
		}
	}
	return true
}
