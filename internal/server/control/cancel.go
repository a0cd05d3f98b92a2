package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gpubroker/internal/server/view"
	"gpubroker/internal/store"
)

// cancelJob moves a job to Cancelled, then stops its attempt on its
// backend. A job that ended already is returned unchanged. The move comes
// first so that the reconciler, seeing the attempt end because it was
// stopped, cannot record it as failed; when the reconciler moves the job
// at the same time, the move is retried against the job as it is now. A
// backend that cannot be reached does not block the cancel: the
// reconciler stops the orphaned attempt once it can.
func (s *Controller) cancelJob(ctx context.Context, j *store.Job, actor string) (*store.Job, error) {
	for range 10 {
		if j.State.Terminal() {
			return j, nil
		}
		now := s.now().UTC()
		bill := attemptUsage(j, time.Time{}, now)
		moved, err := s.store.MoveJob(ctx, j.ID, store.Move{From: j.State, Attempt: j.Attempt, To: store.Cancelled,
			Reason: "Cancelled: by " + actor, Actor: actor, At: now, Usage: bill})
		if errors.Is(err, store.ErrConflict) {
			if j, err = s.store.GetJob(ctx, j.ID); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		s.metrics.transitions.WithLabelValues(string(store.Cancelled)).Inc()
		if j.State != store.Pending && j.Placement != nil {
			name := attemptName(j)
			if b, err := s.attemptBackend(ctx, j); err != nil {
				s.log.Warn("cancel: backend unavailable; the reconciler stops the attempt later", "job", j.ID, "err", err)
			} else if err := s.within(ctx, "cancel", func(ctx context.Context) error { return b.Cancel(ctx, name) }); err != nil {
				s.log.Warn("cancel: backend cancel failed; the reconciler stops the attempt later", "job", j.ID, "name", name, "err", err)
			}
		}
		s.noteUsage(bill, now)
		return moved, nil
	}
	return nil, fmt.Errorf("job %d keeps changing: %w", j.ID, store.ErrConflict)
}

// mergeWaits fills in, for pending jobs, why the last round left them
// waiting, and for work queued ahead in an engine that it waits there.
// Waits live in memory only (see reconcile.go): writing one per job per
// round would add an event per round.
func (s *Controller) mergeWaits(jobs []*store.Job) {
	f := s.fleet.Load().Fleet
	s.waitMu.RLock()
	defer s.waitMu.RUnlock()
	for _, j := range jobs {
		switch j.State {
		case store.Pending:
			if wr, ok := s.waits[j.ID]; ok {
				j.Reason = wr
			}
		case store.Admitted, store.Dispatched:
			if view.QueuedAhead(f, j.Placement) {
				j.Reason = "QueuedAhead: in the queue of cluster " + j.Placement.Cluster +
					", which starts it when capacity frees (queue_ahead)"
			}
		}
	}
}
