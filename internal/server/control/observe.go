package control

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/lifecycle"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// observation is what a cluster's last health check and observation saw
// (see probe): the round's view of the cluster.
type observation struct {
	b   backend.Backend
	err error // why the cluster is down
	// closed: why the cluster, observed and answering, takes no new work
	// (backend.ErrNoNewWork): its attempts run on.
	closed error
	byName map[string]backend.Status
	// elsewhere, for the records of an attempt on another machine, is
	// that machine (see observeRunners).
	elsewhere string
	// unknown: no check of the cluster has answered yet (err says so).
	unknown bool
	// checked is when the check answered (or was given up); round is the
	// time of the round that started it: it saw every attempt dispatched
	// before that round.
	checked, round time.Time
	// fresh: this round is the first to use the answer. What is missing
	// from an answer counts once, and only from a fresh one.
	fresh bool
}

// ok: the cluster answered and was observed.
func (o *observation) ok() bool { return o != nil && o.err == nil }

// open: the cluster answered and takes new work.
func (o *observation) open() bool { return o.ok() && o.closed == nil }

// why is what keeps the cluster from new work (nil when open).
func (o *observation) why() error {
	switch {
	case o == nil:
		return errors.New("no backend")
	case o.err != nil:
		return o.err
	}
	return o.closed
}

// state is the cluster's health state (StateHealthy, ...).
func (o *observation) state() string {
	switch {
	case o != nil && o.unknown:
		return StateUnknown
	case !o.ok():
		return StateUnhealthy
	case o.closed != nil:
		return StateClosed
	}
	return StateHealthy
}

// saw reports whether o can tell that j's current attempt is missing: o
// is fresh, and its check began in a round after the one that last moved
// j (a check begun before an attempt was dispatched cannot list it).
func (o *observation) saw(j *store.Job) bool {
	return o.fresh && o.round.After(j.Updated)
}

// observe gives the round every cluster's state: the fleet's clusters and
// any other cluster an active job still runs on. Each cluster's health
// check and observation run on a goroutine of their own, within their
// deadlines (Config.Deadlines), one at a time per cluster (see probe). The
// round waits for the checks it starts for probeWait at most, and not at
// all for a cluster whose last check took longer; a cluster that has not
// answered is seen as it last answered (a timed-out check answers that it
// timed out), and one that never answered is unknown, which takes no work.
func (rd *round) observe(ctx context.Context) {
	s := rd.s
	rd.obs = map[string]*observation{}
	var clusters []model.Cluster
	seen := map[string]bool{}
	for _, c := range rd.fs.Fleet.Clusters {
		clusters = append(clusters, c)
		seen[c.Name] = true
	}
	for _, id := range rd.order {
		if j := rd.jobs[id]; j != nil && j.Placement != nil && !seen[j.Placement.Cluster] {
			seen[j.Placement.Cluster] = true
			clusters = append(clusters, model.Cluster{Name: j.Placement.Cluster})
		}
	}
	if s.probes.by == nil {
		s.probes.by = map[string]*probe{}
	}
	var waits []chan struct{}
	probed := map[string]*probe{}
	for _, c := range clusters {
		var b backend.Backend
		var err error
		if c.Backend != "" {
			b, err = s.backendOf(c)
		} else {
			b, err = s.backendFor(ctx, c.Name)
		}
		if err != nil {
			rd.obs[c.Name] = &observation{err: err, checked: rd.now, round: rd.now, fresh: true}
			continue
		}
		p := s.probes.by[c.Name]
		if p == nil || p.b != b {
			p = &probe{b: b}
			s.probes.by[c.Name] = p
		}
		probed[c.Name] = p
		if done, wait := s.startProbe(ctx, p, rd.now); wait {
			waits = append(waits, done)
		}
	}
	for name := range s.probes.by {
		if probed[name] == nil {
			delete(s.probes.by, name) // no longer observed
		}
	}
	if len(waits) > 0 {
		timer := s.clock.NewTimer(probeWait)
	wait:
		for _, done := range waits {
			select {
			case <-done:
			case <-timer.C():
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		timer.Stop()
	}
	for name, p := range probed {
		rd.obs[name] = p.result()
	}
}

// trackHealth records when each cluster stopped answering, forgets the
// ones that answer again, and lists in rd.lost those that have not
// answered for the cluster timeout.
func (rd *round) trackHealth() {
	rd.lost = map[string]time.Duration{}
	failing := rd.s.rec.failing
	names := make([]string, 0, len(rd.obs))
	for n := range rd.obs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		o := rd.obs[name]
		since, was := failing[name]
		if o.ok() {
			if was {
				delete(failing, name)
				rd.s.log.Info("cluster answers again", "cluster", name, "down_for", rd.now.Sub(since).Round(time.Millisecond))
			}
			continue
		}
		if !was {
			failing[name] = rd.now
			if !o.unknown {
				rd.s.log.Warn("cluster does not answer", "cluster", name, "err", o.err, "lost_after", rd.s.cfg.ClusterTimeout)
			}
			since = rd.now
		}
		if d := rd.now.Sub(since); d >= rd.s.cfg.ClusterTimeout {
			rd.lost[name] = d
		}
	}
	for name := range failing {
		if rd.obs[name] == nil {
			delete(failing, name) // no longer observed: nothing runs there
		}
	}
}

// retry ends j's current attempt as lost or preempted (ending) and makes
// it pending again as a new attempt, with the attempt's usage; then runs
// after the flush that writes it, as plan's. What the new attempt must
// avoid (job_recovery eager_next_region: the old attempt's region) is the
// lifecycle's decision.
func (rd *round) retry(j *store.Job, ending lifecycle.Ending, reason, detail string, then func(moved *store.Job)) {
	a := lifecycle.Attempt{Number: j.Attempt, Ending: ending, Why: reason}
	if j.Placement != nil {
		a.Region = j.Placement.Region
	}
	var rec model.Recovery
	if j.Workload != nil {
		rec = j.Workload.Recovery
	}
	mv := lifecycle.Next(rec, j.Restarts, a)
	rd.plan(j, store.Move{To: store.Pending, NextAttempt: true, Reason: mv.Reason, Usage: attemptUsage(j, time.Time{}, rd.now),
		Message: fmt.Sprintf("%s; %s; retrying as attempt %d", mv.Reason, detail, j.Attempt+1)},
		func(moved *store.Job) {
			if moved != nil && mv.AvoidRegion != "" {
				rd.s.rec.avoid[j.ID] = avoidance{attempt: moved.Attempt, region: mv.AvoidRegion}
			}
			if then != nil {
				then(moved)
			}
		})
}

// observeJob plans the moves of a dispatched or running job by what its
// backend says.
func (rd *round) observeJob(ctx context.Context, j *store.Job) {
	o := rd.obsOf(j)
	if o != nil && o.elsewhere != "" {
		rd.observeElsewhere(ctx, j, o.elsewhere)
		return
	}
	if !o.ok() {
		// Cannot tell; the pool is down for new work meanwhile. Once the
		// cluster has not answered for the cluster timeout, its attempts
		// are lost: whatever still runs there is cancelled when it
		// answers again (cleanOrphans), and the job's checkpoint fences
		// an old attempt that keeps running meanwhile (docs/tasks.md).
		if d, lost := rd.lost[j.Placement.Cluster]; lost {
			why := "no backend"
			if o != nil && o.err != nil {
				why = o.err.Error()
			}
			rd.retry(j, lifecycle.Lost, fmt.Sprintf("Lost: cluster %s unreachable for %s", j.Placement.Cluster, d.Round(time.Second)),
				fmt.Sprintf("%s on %s/%s: %s", attemptName(j), j.Placement.Cluster, j.Placement.Pool, why), nil)
		}
		return
	}
	name := attemptName(j)
	st, found := o.byName[name]
	if !found {
		if !o.saw(j) {
			return // an answer older than the attempt, or counted already
		}
		rd.s.rec.missing[name]++
		if n := rd.s.rec.missing[name]; n >= lostAfterRounds {
			delete(rd.s.rec.missing, name)
			rd.retry(j, lifecycle.Lost, "Lost: "+name+" vanished from cluster "+j.Placement.Cluster,
				fmt.Sprintf("not reported by the backend for %d rounds", n), nil)
		}
		return
	}
	delete(rd.s.rec.missing, name)
	if st.Phase == backend.PhasePending {
		return
	}
	if j.State == store.Dispatched {
		// Record the start even when the attempt ended already, so that
		// every attempt's history reads Dispatched -> Running -> end. A
		// move that ends it too follows in the same batch, from the job as
		// the start leaves it.
		rd.plan(j, store.Move{To: store.Running, Message: "started"}, nil)
		started := *j
		started.State, started.StartedAt = store.Running, rd.now
		j = &started
	}
	var ended lifecycle.Ending
	switch st.Phase {
	case backend.PhaseRunning:
		return
	case backend.PhaseSucceeded:
		ended = lifecycle.Succeeded
	case backend.PhaseFailed:
		ended = lifecycle.Failed
	case backend.PhaseLost:
		reason := "Lost: " + st.Message
		if st.Message == "" {
			reason = "Lost: the backend lost " + name
		}
		rd.retry(j, lifecycle.Lost, reason, "reported lost by cluster "+j.Placement.Cluster, func(moved *store.Job) {
			if moved == nil {
				return
			}
			if err := rd.s.within(ctx, "forget", func(ctx context.Context) error { return o.b.Forget(ctx, name) }); err != nil {
				rd.s.log.Warn("forget failed", "name", name, "err", err)
			}
		})
		return
	default:
		rd.s.log.Warn("backend reported an unknown phase", "name", name, "phase", st.Phase)
		return
	}
	mv := lifecycle.Next(j.Workload.Recovery, j.Restarts, lifecycle.Attempt{Number: j.Attempt, Ending: ended, ExitCode: st.ExitCode})
	m := store.Move{ExitCode: st.ExitCode, Reason: mv.Reason, Message: withDetail(mv.Reason, st.Message)}
	switch mv.Kind {
	case lifecycle.Succeed:
		m.To = store.Succeeded
	case lifecycle.Fail:
		m.To = store.Failed
	case lifecycle.Retry:
		m.To, m.NextAttempt, m.CountRestart = store.Pending, true, mv.CountRestart
	}
	// The backend's times are closer to the truth than the rounds'.
	end := rd.now
	if !st.Ended.IsZero() && st.Ended.After(st.Started) {
		end = st.Ended
	}
	m.Usage = attemptUsage(j, st.Started, end)
	rd.plan(j, m, func(moved *store.Job) {
		if moved != nil {
			rd.forget = append(rd.forget, forgetting{b: o.b, name: name})
		}
	})
}

// withDetail is a move's event message: the reason, then the backend's
// words when they add to it.
func withDetail(reason, detail string) string {
	if detail == "" || strings.Contains(reason, detail) {
		return reason
	}
	return reason + ": " + detail
}
