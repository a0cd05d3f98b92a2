package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"gpubroker/internal/backend"
)

// filePoll is how often a following Logs reads new output.
const filePoll = 100 * time.Millisecond

// maxLine is how much of a line without a newline is held back for the
// prefix before it is written out anyway.
const maxLine = 64 << 10

// Logs streams an attempt's output from the shared directory: node 0's log,
// node 1's, ..., then the batch script's own output (srun's errors, Slurm's
// cancellation notice) prefixed "[slurm] ". Node lines are prefixed
// "[rank N] " when the attempt has more than one node. With follow, output
// is streamed as it is written until Slurm reports the job ended (asked
// every Options.Poll) and everything is read, or ctx is done. Logs of
// forgotten attempts are still served. ErrNotFound for names never
// submitted here.
func (b *Backend) Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	adir := filepath.Join(b.dir, name)
	rec, err := readRecord(adir)
	if err != nil {
		return nil, fmt.Errorf("slurm: logs %s: %w", name, backend.ErrNotFound)
	}
	if _, err := os.Stat(filepath.Join(adir, forgottenFile)); err == nil {
		follow = false
	}
	var tails []*tail
	for rank := range rec.Nodes {
		t := &tail{path: filepath.Join(adir, "node-"+strconv.Itoa(rank)+".log")}
		if rec.Nodes > 1 {
			t.prefix = []byte("[rank " + strconv.Itoa(rank) + "] ")
		}
		tails = append(tails, t)
	}
	batch := &tail{glob: filepath.Join(adir, "slurm-*.out"), prefix: []byte("[slurm] ")}
	tails = append(tails, batch)

	pr, pw := io.Pipe()
	s := &stream{PipeReader: pr, done: make(chan struct{})}
	go s.run(ctx, pw, tails, follow, func() bool { return b.ended(ctx, name) }, b.opts.Poll)
	return s, nil
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

// stream is the reader Logs returns; Close stops its goroutine.
type stream struct {
	*io.PipeReader
	once sync.Once
	done chan struct{}
}

func (s *stream) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.PipeReader.Close()
}

func (s *stream) run(ctx context.Context, w *io.PipeWriter, tails []*tail, follow bool, ended func() bool, poll time.Duration) {
	defer func() {
		for _, t := range tails {
			t.close()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastCheck time.Time
	for {
		// The end is decided before reading: what was written before the
		// job ended is read by the pass below.
		last := !follow
		if follow && time.Since(lastCheck) >= poll {
			lastCheck = time.Now()
			last = ended()
		}
		for _, t := range tails {
			if err := t.pump(w, last); err != nil {
				w.CloseWithError(err)
				return
			}
		}
		if last {
			w.Close()
			return
		}
		timer.Reset(filePoll)
		select {
		case <-ctx.Done():
			w.Close()
			return
		case <-s.done:
			return
		case <-timer.C:
		}
	}
}

// tail reads one log from where it left off. A tail with a glob opens the
// first file matching it (in name order) once one exists.
type tail struct {
	path    string
	glob    string
	f       *os.File
	prefix  []byte
	partial []byte
	buf     []byte
}

// pump copies what is new in the file to w, whole lines only when
// prefixing; with final, a last line without newline is written too.
func (t *tail) pump(w io.Writer, final bool) error {
	if t.f == nil {
		path := t.path
		if t.glob != "" {
			m, _ := filepath.Glob(t.glob)
			if len(m) == 0 {
				return nil
			}
			sort.Strings(m)
			path = m[len(m)-1]
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not created yet
		}
		if err != nil {
			return err
		}
		t.f = f
		t.buf = make([]byte, 32<<10)
	}
	for {
		n, err := t.f.Read(t.buf)
		if n > 0 {
			if werr := t.emit(w, t.buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if final && len(t.partial) > 0 {
		line := append(append(append([]byte(nil), t.prefix...), t.partial...), '\n')
		t.partial = nil
		_, err := w.Write(line)
		return err
	}
	return nil
}

func (t *tail) emit(w io.Writer, p []byte) error {
	if len(t.prefix) == 0 {
		_, err := w.Write(p)
		return err
	}
	t.partial = append(t.partial, p...)
	var out []byte
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		out = append(append(out, t.prefix...), t.partial[:i+1]...)
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > maxLine {
		out = append(append(append(out, t.prefix...), t.partial...), '\n')
		t.partial = nil
	}
	t.partial = append([]byte(nil), t.partial...)
	if len(out) == 0 {
		return nil
	}
	_, err := w.Write(out)
	return err
}

func (t *tail) close() {
	if t.f != nil {
		t.f.Close()
	}
}
