package control

import (
	"context"
	"io"

	"gpubroker/internal/backend"
	"gpubroker/internal/store"
)

// openLogs opens the logs of one attempt: on the job's cluster for the
// current attempt, on any known backend for an earlier one (its placement
// is no longer recorded).
func (s *Controller) openLogs(ctx context.Context, j *store.Job, attempt int, follow bool) (io.ReadCloser, error) {
	name := backend.Name(j.ID, attempt)
	if attempt == j.Attempt {
		if j.Placement == nil {
			return nil, backend.ErrNotFound
		}
		b, err := s.backendFor(ctx, j.Placement.Cluster)
		if err != nil {
			return nil, err
		}
		return s.logsWithin(ctx, b, name, follow)
	}
	for _, b := range s.knownBackends() {
		rc, err := s.logsWithin(ctx, b, name, false)
		if err == nil {
			return rc, nil
		}
	}
	return nil, backend.ErrNotFound
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
