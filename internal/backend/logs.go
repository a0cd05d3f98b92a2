package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// LogFile is one file a driver's Logs streams: a fixed Path, or the newest
// file matching Glob once one exists. Prefix, when set, starts every line
// (e.g. "[rank 1] ").
type LogFile struct {
	Path   string
	Glob   string
	Prefix string
}

// maxLine is how much of a line without a newline is held back for the
// prefix before it is written out anyway.
const maxLine = 64 << 10

// TailFiles is the Logs stream drivers that write their attempts' output to
// files share: the files in order; with follow, what is appended as it is
// written (read every filePoll), until ended (asked at most every endPoll)
// reports true and everything is drained, or ctx is done (the reader then
// sees io.EOF). Close stops it. A file not there yet is read once it is.
func TailFiles(ctx context.Context, files []LogFile, follow bool, ended func() bool, endPoll, filePoll time.Duration) io.ReadCloser {
	tails := make([]*tail, len(files))
	for i, f := range files {
		tails[i] = &tail{path: f.Path, glob: f.Glob, prefix: []byte(f.Prefix)}
	}
	pr, pw := io.Pipe()
	s := &logStream{PipeReader: pr, done: make(chan struct{})}
	go s.run(ctx, pw, tails, follow, ended, endPoll, filePoll)
	return s
}

type logStream struct {
	*io.PipeReader
	once sync.Once
	done chan struct{}
}

func (s *logStream) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.PipeReader.Close()
}

func (s *logStream) run(ctx context.Context, w *io.PipeWriter, tails []*tail, follow bool, ended func() bool, endPoll, filePoll time.Duration) {
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
		// attempt ended is read by the pass below.
		last := !follow
		if follow && time.Since(lastCheck) >= endPoll {
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

// tail reads one log from where it left off.
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
	// Keep the remainder in a buffer of its own so partial never aliases
	// a slice that was already written out.
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

// TailLines is the end of the logs for one look, as a dashboard or
// `gpubroker logs --tail` wants it: the last lines lines of each file, in
// order, each line prefixed with the file's Prefix and every file's tail
// ending in a newline. Each file is read from its end, at most maxBytes of
// it: memory is bounded by that, not by the log's size. When those bytes
// hold fewer lines, the tail starts at the first line that begins within
// them whole (or mid-line, when none does). A file not there (yet) adds nothing.
func TailLines(files []LogFile, lines int, maxBytes int64) ([]byte, error) {
	var out []byte
	for _, lf := range files {
		path := lf.Path
		if lf.Glob != "" {
			m, _ := filepath.Glob(lf.Glob)
			if len(m) == 0 {
				continue
			}
			sort.Strings(m)
			path = m[len(m)-1]
		}
		b, err := tailFile(path, lines, maxBytes)
		if err != nil {
			return nil, err
		}
		out = AppendTail(out, b, lf.Prefix)
	}
	return out, nil
}

// AppendTail appends the lines of tail to out, each after prefix, and a
// newline when tail does not end in one (as TailLines gives each log's).
func AppendTail(out, tail []byte, prefix string) []byte {
	if len(tail) == 0 {
		return out
	}
	for len(tail) > 0 {
		i := bytes.IndexByte(tail, '\n') + 1
		if i == 0 {
			i = len(tail)
		}
		out = append(append(out, prefix...), tail[:i]...)
		tail = tail[i:]
	}
	if out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}

func tailFile(path string, lines int, maxBytes int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return tailOf(f, st.Size(), lines, maxBytes)
}

// tailBlock is how much tailOf reads at a time, walking back from the end.
const tailBlock = 16 << 10

// tailOf returns the last lines lines of r's first size bytes, looking at
// no more than its last maxBytes: it reads blocks backwards from size
// until it has seen enough line starts, then reads the tail once.
func tailOf(r io.ReaderAt, size int64, lines int, maxBytes int64) ([]byte, error) {
	if lines <= 0 || size <= 0 || maxBytes <= 0 {
		return nil, nil
	}
	// From one byte before the window on: a newline there means the
	// window starts with a whole line.
	lo := max(0, size-maxBytes-1)
	block := make([]byte, min(tailBlock, size-lo))
	start, firstNL := int64(-1), int64(-1)
	need := lines
	for pos := size; pos > lo && start < 0; {
		n := min(int64(len(block)), pos-lo)
		pos -= n
		b := block[:n]
		if _, err := r.ReadAt(b, pos); err != nil && err != io.EOF {
			return nil, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			at := pos + int64(i)
			if b[i] != '\n' || at == size-1 { // the last line's own newline
				continue
			}
			firstNL = at
			if need--; need == 0 {
				start = at + 1
				break
			}
		}
	}
	switch {
	case start >= 0:
	case size <= maxBytes: // the whole of it is in the window
		start = 0
	case firstNL >= 0:
		start = firstNL + 1 // the line cut at lo is dropped
	default:
		start = max(0, size-maxBytes) // one line longer than maxBytes: its end
	}
	out := make([]byte, size-start)
	n, err := r.ReadAt(out, start)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return out[:n], nil
}

// TailReader is TailLines for a log that can only be streamed: it reads
// r to its end keeping no more than its last maxBytes, then returns the
// last lines lines of those as tailOf would.
func TailReader(r io.Reader, lines int, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		return nil, nil
	}
	ring := make([]byte, maxBytes)
	var total int64
	for {
		n, err := r.Read(ring[total%maxBytes : min(maxBytes, total%maxBytes+32<<10)])
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	kept := ring[:min(total, maxBytes)]
	if total > maxBytes {
		at := total % maxBytes
		kept = append(append(make([]byte, 0, maxBytes), ring[at:]...), ring[:at]...)
	}
	// What came before the kept bytes is unknown: as tailOf, the first
	// line is dropped when it may have been cut.
	var head int64
	if total > maxBytes {
		head = 1
	}
	out, err := tailOf(bytes.NewReader(kept), int64(len(kept)), lines, int64(len(kept))-head)
	return out, err
}
