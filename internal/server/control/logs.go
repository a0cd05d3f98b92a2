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
		b, err := s.attemptBackend(ctx, j)
		if err != nil {
			return nil, err
		}
		return b.Logs(ctx, name, follow)
	}
	for _, b := range s.knownBackends() {
		rc, err := b.Logs(ctx, name, false)
		if err == nil {
			return rc, nil
		}
	}
	return nil, backend.ErrNotFound
}
