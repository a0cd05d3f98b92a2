package control

import (
	"context"
	"errors"
	"io"

	"gpubroker/internal/backend"
	"gpubroker/internal/store"
)

// openLogs opens the logs of one attempt: on the job's cluster for the
// current attempt, on any known backend for an earlier one (its placement
// is no longer recorded).
func (s *Controller) openLogs(ctx context.Context, j *store.Job, attempt int, follow bool) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := s.eachLogBackend(ctx, j, attempt, func(b backend.Backend, current bool) error {
		var err error
		rc, err = s.logsWithin(ctx, b, backend.Name(j.ID, attempt), follow && current)
		return err
	})
	return rc, err
}

// tailLogs is the end of one attempt's output, found as openLogs finds
// it: the last lines lines of each node's log, at most maxBytes of each
// looked at, read from the end where the backend can (backend.LogTailer)
// and otherwise from a stream of which only the last maxBytes are kept.
func (s *Controller) tailLogs(ctx context.Context, j *store.Job, attempt, lines int, maxBytes int64) ([]byte, error) {
	// A tail is bounded (maxBytes a node), so the whole read is a call:
	// a hung engine (a Kubernetes API server that does not answer) ends
	// it at the call deadline, not the client.
	ctx, cancel := context.WithTimeout(ctx, s.deadlines.Call)
	defer cancel()
	var out []byte
	err := s.eachLogBackend(ctx, j, attempt, func(b backend.Backend, _ bool) error {
		name := backend.Name(j.ID, attempt)
		if lt, ok := b.(backend.LogTailer); ok {
			var err error
			out, err = lt.TailLogs(ctx, name, lines, maxBytes)
			return err
		}
		rc, err := b.Logs(ctx, name, false)
		if err != nil {
			return err
		}
		defer rc.Close()
		out, err = backend.TailReader(rc, lines, maxBytes)
		return err
	})
	return out, err
}

// eachLogBackend calls f with the backend that has the attempt's logs:
// the job's cluster's for its current attempt (current true), else each
// known backend in turn until one does not answer backend.ErrNotFound.
func (s *Controller) eachLogBackend(ctx context.Context, j *store.Job, attempt int, f func(b backend.Backend, current bool) error) error {
	if attempt == j.Attempt {
		if j.Placement == nil {
			return backend.ErrNotFound
		}
		b, err := s.attemptBackend(ctx, j)
		if err != nil {
			return err
		}
		return f(b, true)
	}
	for _, b := range s.knownBackends() {
		if err := f(b, false); !errors.Is(err, backend.ErrNotFound) {
			return err
		}
	}
	return backend.ErrNotFound
}

// logsWithin opens name's logs on b within the call deadline. The stream
// itself lives as long as ctx (a follow runs until the attempt ends or
// the client goes); only opening it is bounded. A stream opened after the
// deadline is closed at once.
func (s *Controller) logsWithin(ctx context.Context, b backend.Backend, name string, follow bool) (io.ReadCloser, error) {
	type opened struct {
		rc  io.ReadCloser
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		rc, err := b.Logs(ctx, name, follow)
		ch <- opened{rc, err}
	}()
	d := s.deadlines.Call
	timer := s.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case o := <-ch:
		return o.rc, o.err
	case <-ctx.Done():
	case <-timer.C():
	}
	go func() {
		if o := <-ch; o.rc != nil {
			o.rc.Close()
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, timedOut("opening the logs of "+name, d)
}
