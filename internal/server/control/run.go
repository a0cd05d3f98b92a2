package control

import (
	"context"
	"time"

	"gpubroker/internal/backend"
)

// Round pacing (see runReconciler).
const (
	// minRoundRest and maxRoundRest bound the rest after a round, which is
	// otherwise roundRestFactor times as long as the round took.
	minRoundRest = 20 * time.Millisecond
	maxRoundRest = 250 * time.Millisecond
	// roundRestFactor is the rest per second a round took: with 2 the
	// reconciler takes at most a third of a core, however busy its
	// watches are. The engines often share the broker's machine, and every
	// CPU-second a round spends is taken from them.
	roundRestFactor = 2
	// calmRoundRest is the least rest after a round that left no job
	// pending or admitted, when a backend's change (not a submission) ends
	// it: the next round can then only record what the
	// engines did (attempts started or ended), which may wait a quarter of
	// a second; running it for every few events of a burst of starts and
	// completions takes CPU from the engines (a 500-job burst on a
	// two-core machine ran 90 such rounds).
	calmRoundRest = 250 * time.Millisecond
	// pollInFlight is the round interval, when shorter than RoundInterval,
	// while some cluster holding work cannot announce changes (its backend
	// is no backend.Watcher): its attempts end unseen, so look soon.
	pollInFlight = 250 * time.Millisecond
)

// runReconciler runs rounds until ctx is done. A failed round is logged
// and retried later: the reconciler is level-triggered, so a later round
// repairs what an earlier one left.
//
// A round runs RoundInterval after the previous one, or sooner when
// something changed: a submission (kick), a backend's
// backend.Watcher.Changes, or a Submit that returned (see dispatcher); and
// at most pollInFlight after it while work holds a cluster whose backend
// does not watch. After a round the reconciler rests roundRestFactor
// times as long as the round took, within minRoundRest and maxRoundRest,
// so that a storm of changes cannot keep it running back to back (and at
// least calmRoundRest before a returned Submit, or a backend's change when
// no job waits to be placed or dispatched, is taken up: see
// calmRoundRest); the time it waited for room for its Submits and for its
// Forgets does not count (the engine, not the broker, was busy then: a
// round that dispatched a burst of 200 jobs in 1.5 s must not keep the
// next burst out for another maxRoundRest). Changes during the rest are
// taken up together by the next round.
func (s *Controller) runReconciler(ctx context.Context) {
	timer := s.clock.NewTimer(time.Hour)
	defer timer.Stop()
	defer s.watch.stopAll()
	// Checks in flight end with ctx (their calls' contexts are ctx's).
	defer s.probes.wg.Wait()
	for {
		started := s.clock.Now()
		if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile round failed", "err", err)
		}
		now := s.clock.Now()
		rest := min(max(minRoundRest, roundRestFactor*(now.Sub(started)-s.rec.waited)), maxRoundRest)
		earliest := now.Add(rest)
		calm, quiet := earliest, now.Add(max(rest, calmRoundRest))
		if !s.rec.queued {
			calm = quiet
		}
		interval := s.cfg.RoundInterval
		if s.pollingInFlight() {
			interval = min(interval, pollInFlight)
		}
		timer.Reset(max(rest, interval))
		s.watch.sync(s.knownBackends())
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
			continue
		case <-s.wake:
			// A submission: rest out the remainder, then run.
		case <-s.rec.disp.wake:
			// A Submit returned: recording it is no engine's business, so
			// it waits like a backend's change after a calm round.
			earliest = quiet
		case <-s.watch.changed:
			// A backend's change.
			earliest = calm
		}
		timer.Reset(max(0, earliest.Sub(s.clock.Now())))
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		}
	}
}

// kick asks the reconciler for a round soon; it never blocks (requests
// coalesce).
func (s *Controller) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pollingInFlight reports whether, as of the last round, a cluster whose
// backend is no backend.Watcher holds work (admitted, dispatched or
// running attempts).
func (s *Controller) pollingInFlight() bool {
	v := s.view.Load()
	if v == nil || v.Snap == nil || len(v.Snap.Running) == 0 {
		return false
	}
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	for _, a := range v.Snap.Running {
		cb, ok := s.backends[a.Pool.Cluster]
		if !ok || cb.err != nil {
			continue
		}
		if _, watches := cb.b.(backend.Watcher); !watches {
			return true
		}
	}
	return false
}
