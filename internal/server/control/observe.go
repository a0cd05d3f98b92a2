package control

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/lifecycle"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// observation is what one round saw of one cluster.
type observation struct {
	b   backend.Backend
	err error // why the cluster is down this round
	// closed: why the cluster, observed and answering, takes no new work
	// this round (backend.ErrNoNewWork): its attempts run on.
	closed error
	byName map[string]backend.Status
	// elsewhere, for the records of an attempt on another machine, is
	// that machine (see observeRunners).
	elsewhere string
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

// observe calls every cluster's backend once: the fleet's clusters and
// any other cluster an active job still runs on.
func (rd *round) observe(ctx context.Context) {
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
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A cluster that does not answer within the cluster timeout
			// is failing, however its driver waits (a dead Slurm
			// controller keeps squeue retrying for its MessageTimeout).
			octx, cancel := context.WithTimeout(ctx, rd.s.cfg.ClusterTimeout)
			defer cancel()
			o := rd.s.observeCluster(octx, c, c.Backend != "")
			mu.Lock()
			rd.obs[c.Name] = o
			mu.Unlock()
		}()
	}
	wg.Wait()
}

func (s *Controller) observeCluster(ctx context.Context, c model.Cluster, inFleet bool) *observation {
	var b backend.Backend
	var err error
	if inFleet {
		b, err = s.backendOf(c)
	} else {
		b, err = s.backendFor(ctx, c.Name)
	}
	o := &observation{b: b, err: err}
	if err != nil {
		return o
	}
	if h, ok := b.(backend.Health); ok {
		if err := h.Health(ctx); errors.Is(err, backend.ErrNoNewWork) {
			o.closed = fmt.Errorf("health check: %w", err)
		} else if err != nil {
			o.err = fmt.Errorf("health check: %w", err)
			return o
		}
	}
	sts, err := b.Observe(ctx)
	if err != nil {
		o.err = fmt.Errorf("observe: %w", err)
		return o
	}
	o.byName = make(map[string]backend.Status, len(sts))
	for _, st := range sts {
		o.byName[st.Name] = st
	}
	return o
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
			rd.s.log.Warn("cluster does not answer", "cluster", name, "err", o.err, "lost_after", rd.s.cfg.ClusterTimeout)
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
			if err := o.b.Forget(ctx, name); err != nil {
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
