package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gpubroker/internal/backend"
)

// maxLine is how much of a line without a newline is held back for the rank
// prefix before it is written out anyway.
const maxLine = 64 << 10

// Logs streams an attempt's node logs: node 0's, then node 1's, ... when not
// following; as they are written, line by line, when following. Lines are
// prefixed "[rank N] " when the attempt has more than one node. Following
// ends once the attempt has ended and every log is drained, or when ctx is
// done (the reader then sees io.EOF). Logs of forgotten attempts are still
// served, without following. ErrNotFound for names never submitted.
func (b *Backend) Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	var paths []string
	adir := filepath.Join(b.dir, name)
	if rec, err := readRecord(adir); err == nil {
		for rank := range rec.Spec.Nodes {
			paths = append(paths, filepath.Join(adir, nodeFile(rank, "log")))
		}
	} else {
		follow = false
		paths, err = keptLogs(filepath.Join(b.dir, logsDir, name))
		if err != nil {
			return nil, fmt.Errorf("local: logs %s: %w", name, backend.ErrNotFound)
		}
	}
	tails := make([]*tail, len(paths))
	for i, p := range paths {
		tails[i] = &tail{path: p}
		if len(paths) > 1 {
			tails[i].prefix = []byte("[rank " + strconv.Itoa(i) + "] ")
		}
	}
	pr, pw := io.Pipe()
	s := &stream{PipeReader: pr, done: make(chan struct{})}
	go s.run(ctx, pw, tails, follow, func() bool { return b.ended(name) }, b.opts.LogPoll)
	return s, nil
}

// keptLogs lists the node logs Forget kept, ordered by rank.
func keptLogs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type ranked struct {
		rank int
		path string
	}
	var logs []ranked
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), "node-")
		s, ok2 := strings.CutSuffix(s, ".log")
		r, err := strconv.Atoi(s)
		if ok && ok2 && err == nil {
			logs = append(logs, ranked{r, filepath.Join(dir, e.Name())})
		}
	}
	if len(logs) == 0 {
		return nil, errors.New("no logs")
	}
	sort.Slice(logs, func(i, j int) bool { return logs[i].rank < logs[j].rank })
	paths := make([]string, len(logs))
	for i, l := range logs {
		paths[i] = l.path
	}
	return paths, nil
}

// ended reports whether the attempt has ended (or is gone).
func (b *Backend) ended(name string) bool {
	b.mu.Lock()
	gen := b.gen
	b.mu.Unlock()
	st, ok := b.observe(name, gen)
	if !ok {
		return true
	}
	return st.Phase != backend.PhasePending && st.Phase != backend.PhaseRunning
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
	for {
		// Ended is decided before reading: all that was written before the
		// end is read by the pass below.
		last := !follow || ended()
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
		timer.Reset(poll)
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

// tail reads one node's log from where it left off.
type tail struct {
	path    string
	f       *os.File
	prefix  []byte
	partial []byte
	buf     []byte
}

// pump copies what is new in the file to w, whole lines only when
// prefixing; with final, a last line without newline is written too.
func (t *tail) pump(w io.Writer, final bool) error {
	if t.f == nil {
		f, err := os.Open(t.path)
		if err != nil {
			return nil // not created yet
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
		t.partial = t.partial[:0]
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
		t.partial = t.partial[:0]
	}
	// Keep the remainder in a buffer of its own so partial never aliases
	// a growing slice that was already written out.
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
