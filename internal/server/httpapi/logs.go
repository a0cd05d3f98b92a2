package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/server/clock"
	"gpubroker/internal/store"
)

// logPoll is how often a following log stream re-reads the job while it
// waits for an attempt to start or end.
const logPoll = 100 * time.Millisecond

// Bounds of ?tail: the lines asked for, and how much of each node's log
// is looked at for them (read from its end: a 200 MB log costs no more
// than a small one).
const (
	MaxTailLines = 10_000
	TailMaxBytes = 1 << 20
)

// handleLogs streams an attempt's output. Without follow it copies what
// there is now. With follow it waits for the attempt to start, streams
// it until it ends and, when the job is retried, goes on with the next
// attempt after a line "==> attempt N <==", until the job ends.
// ?attempt=N picks an earlier attempt; ?tail=N gives only the last N
// lines of each node's output (not with follow).
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	// A log lasts as long as its job: lift the server's read and write
	// deadlines for this connection (a GET has no body to read slowly;
	// MaxConns bounds how many streams there are).
	conn := http.NewResponseController(w)
	conn.SetReadDeadline(time.Time{})
	conn.SetWriteDeadline(time.Time{})
	j, e := s.visibleJob(r, p)
	if e != nil {
		return e
	}
	q := r.URL.Query()
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	attempt := j.Attempt
	if v := q.Get("attempt"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > j.Attempt {
			return invalid("attempt", "attempt: %q is not an attempt of job %d (1 to %d)", v, j.ID, j.Attempt)
		}
		attempt = n
	}
	tail := 0
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxTailLines {
			return invalid("tail", "tail: %q is not a number of lines from 1 to %d", v, MaxTailLines)
		}
		if follow {
			return invalid("tail", "tail: give tail or follow, not both")
		}
		tail = n
	}
	if !follow || attempt < j.Attempt || j.State.Terminal() {
		var rc io.ReadCloser
		var err error
		open := func() {
			if tail == 0 {
				rc, err = s.ctl.Logs(r.Context(), j, attempt, false)
				return
			}
			var b []byte
			if b, err = s.ctl.TailLogs(r.Context(), j, attempt, tail, TailMaxBytes); err == nil {
				rc = io.NopCloser(bytes.NewReader(b))
			}
		}
		open()
		for try := 0; errors.Is(err, backend.ErrNotFound) && j.State.Terminal() && try < 10; try++ {
			// The reconciler may be forgetting the attempt right now,
			// moving its logs aside.
			if !s.sleepCtx(r.Context(), 20*time.Millisecond) {
				return nil
			}
			open()
		}
		switch {
		case errors.Is(err, backend.ErrNotFound):
			if !j.State.Terminal() || j.Placement == nil {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusOK)
				return nil // not started (or just starting): no output yet
			}
			return notFound("no logs for attempt %d of job %d", attempt, j.ID)
		case err != nil:
			return &apiError{Status: http.StatusServiceUnavailable, Code: codeInternal, Message: err.Error()}
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		copyFlush(w, rc)
		return nil
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	s.followLogs(r.Context(), w, j)
	return nil
}

// followLogs streams every attempt of j from its current one on.
func (s *Server) followLogs(ctx context.Context, w io.Writer, j *store.Job) {
	attempt := j.Attempt
	for ctx.Err() == nil {
		// Wait for the attempt to reach its backend (or the job to end or
		// move on to a later attempt).
		var err error
		for !started(j, attempt) {
			if !s.sleepCtx(ctx, logPoll) {
				return
			}
			if j, err = s.store.GetJob(ctx, j.ID); err != nil {
				return
			}
		}
		if j.Attempt == attempt && j.Placement != nil {
			if rc, err := s.ctl.Logs(ctx, j, attempt, !j.State.Terminal()); err == nil {
				copyFlush(w, rc)
				rc.Close()
			}
		}
		// The stream ended: wait until the store shows the attempt over.
		for j.Attempt == attempt && !j.State.Terminal() {
			if !s.sleepCtx(ctx, logPoll) {
				return
			}
			if j, err = s.store.GetJob(ctx, j.ID); err != nil {
				return
			}
		}
		if j.State.Terminal() && j.Attempt == attempt {
			return
		}
		attempt = j.Attempt
		fmt.Fprintf(w, "==> attempt %d <==\n", attempt)
		http.NewResponseController(w.(http.ResponseWriter)).Flush()
	}
}

// started reports whether attempt of j has (or had) a backend object, or
// the job went past it.
func started(j *store.Job, attempt int) bool {
	if j.Attempt != attempt || j.State.Terminal() {
		return true
	}
	return j.State == store.Dispatched || j.State == store.Running
}

// copyFlush copies r to w, flushing after every read so a follower sees
// output as it comes.
func copyFlush(w io.Writer, r io.Reader) {
	rc := http.NewResponseController(w.(http.ResponseWriter))
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// sleepCtx waits d on the server's clock, or until ctx is done; it
// reports whether the whole d passed.
func (s *Server) sleepCtx(ctx context.Context, d time.Duration) bool {
	return clock.Sleep(s.clock, ctx.Done(), d)
}
