package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/engine"
	"gpubroker/internal/lifecycle"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// Reconciler tuning.
const (
	// lostAfterRounds: a dispatched or running attempt its backend has not
	// reported for this many rounds in a row is lost (and retried).
	lostAfterRounds = 3
	// usageRefresh is how often the usage totals the engine needs
	// (provider share, team and contract spend) are re-read from the store;
	// between reads the server adds what it records itself.
	usageRefresh = 30 * time.Second
	// fullReadEvery is how often a round reads every active job rather
	// than the ones written since the last round (see activeJobs): a
	// bound on how long anything could go unseen, should a store ever
	// fail to report a write.
	fullReadEvery = 5 * time.Minute
	// leaderLease is how long a round's leadership lasts with a shared
	// store (store.Leader).
	leaderLease     = 15 * time.Second
	actorReconciler = "reconciler"
)

// activeStates are the states in which a job is the reconciler's business.
var activeStates = []store.State{store.Pending, store.Admitted, store.Dispatched, store.Running}

// reconcilerState is what the reconciler keeps between rounds. None of it
// is needed for correctness after a restart: slots are re-read from the
// job's events, missing counts start again, usage is re-read.
type reconcilerState struct {
	// slots holds the GPU slots of each job's current attempt, for the
	// jobs holding capacity.
	slots map[int64]attemptSlots
	// missing counts, per backend object name, the rounds in a row its
	// backend did not report it (or, for an admitted job, could not take
	// it).
	missing map[string]int
	usage   usageTotals
	// stages holds the pipeline position of each job held back for an
	// earlier stage (see pipeline.go).
	stages map[int64]stagePos
	// failing holds, per cluster that did not answer in the last round,
	// when it first stopped answering in a row.
	failing map[string]time.Time
	// avoid holds, per pending job whose recovery strategy is
	// eager_next_region, the region its current attempt must not go to.
	// A restarted server forgets it: those attempts may go anywhere.
	avoid map[int64]avoidance
	// ended holds the attempts that ended and are not forgotten yet (see
	// forgetAll).
	ended map[string]endedAttempt
	// disp sends admitted jobs to their backends; its Submits outlive
	// rounds.
	disp *dispatcher
	// stopAfter holds, per job admitted by preempting work on a
	// queue_ahead cluster, the victims' attempts to stop once that job's
	// Submit has returned (see preempt); cleanOrphans leaves the attempts
	// in deferred running meanwhile.
	stopAfter map[int64]deferredStop
	deferred  map[string]bool
	// waited is how long the last round waited on its forgets and on room
	// for its Submits (see runReconciler).
	waited time.Duration
	// queued is whether the last round left a job pending or admitted
	// (see runReconciler).
	queued bool
	// active holds every non-terminal job as the store had it at cursor
	// (see activeJobs); nil until the first full read.
	active map[int64]*store.Job
	cursor store.Cursor
	// readAll is when active was last read whole.
	readAll time.Time
}

// avoidance is the region one attempt of a job must not be placed in.
type avoidance struct {
	attempt int
	region  string
}

func (r *reconcilerState) init() {
	r.slots = map[int64]attemptSlots{}
	r.missing = map[string]int{}
	r.stages = map[int64]stagePos{}
	r.failing = map[string]time.Time{}
	r.avoid = map[int64]avoidance{}
	r.ended = map[string]endedAttempt{}
	r.disp = newDispatcher()
	r.stopAfter = map[int64]deferredStop{}
	r.deferred = map[string]bool{}
}

// observation is what one round saw of one cluster.
type observation struct {
	b   backend.Backend
	err error // why the cluster is down this round
	// closed: why the cluster, observed and answering, takes no new work
	// this round (backend.ErrNoNewWork): its attempts run on.
	closed error
	byName map[string]backend.Status
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

// round is one reconcile round's working state.
type round struct {
	s     *Server
	now   time.Time
	fs    *fleetState
	obs   map[string]*observation
	jobs  map[int64]*store.Job // every active job as last read or moved
	order []int64              // job IDs in ID order
	// owned holds the backend names of the current attempts of the jobs
	// listed at the start of the round that had reached a backend: not
	// orphans, whatever this round does to them.
	owned map[string]bool
	// held maps each pending pipeline stage whose previous stage has not
	// succeeded to why it waits; the engine does not see it.
	held map[int64]string
	// lost maps each cluster that has not answered for the cluster timeout
	// to how long it has not: its attempts are lost.
	lost map[string]time.Duration
	// forget lists the ended attempts to forget once dispatch is done (see
	// forgetAll).
	forget []forgetting
	// batch holds the moves planned for the next flush.
	batch []planned
	// conflicted are the jobs that held capacity as the round read them and
	// that someone else moved meanwhile (a move's compare-and-set failed):
	// the round no longer acts on them, but until the next round reads what
	// they are now, what they held stays held (holding), so that the engine
	// places nothing else there.
	conflicted []*store.Job
}

// reconcile runs one round: read desired and observed state, act on the
// difference. Steps:
//
//  1. read the fleet and every non-terminal job, and record the Submits
//     that returned since the last round (dispatched, see dispatcher);
//  2. observe every cluster's backend once, and track how long each
//     cluster has not answered: past Config.ClusterTimeout it is lost;
//  3. move dispatched and running jobs by what their backend reports
//     (started, succeeded, failed -> retry or fail, lost -> retry; not
//     reported for lostAfterRounds rounds -> lost; on a lost cluster ->
//     lost, retried elsewhere as a new attempt);
//  4. stop and forget backend objects no active attempt owns;
//  5. hold back pipeline stages whose previous stage has not succeeded,
//     and cancel those whose previous stage failed or was cancelled;
//  6. build the engine's snapshot and schedule the other pending jobs,
//     then apply preemptions, then admissions (with GPU slots); then, on
//     clusters with queue_ahead, admit what may wait in the engine's own
//     queue (admitAhead);
//  7. dispatch every admitted job not in flight (idempotent by name; each
//     new admission's Submit starts while step 6 records the others; the
//     round records the Submits that return while it runs and waits for
//     none); then forget the attempts that ended in step 3;
//  8. publish waits, metrics and the view the read endpoints show.
//
// Every move is a compare-and-set; a conflict means someone else (the
// API's cancel) moved the job first, and the next round sees it.
func (s *Server) reconcile(ctx context.Context) error {
	started := time.Now()
	defer func() { s.metrics.roundSecs.Observe(time.Since(started).Seconds()) }()
	s.rec.waited = 0
	now := s.now().UTC()
	if l, ok := s.store.(store.Leader); ok {
		lead, err := l.TryLead(ctx, s.leaderID, now, now.Add(leaderLease))
		if err != nil || !lead {
			return err
		}
	}
	// 1. Desired state.
	fs, err := s.refreshFleet(ctx)
	if err != nil {
		return fmt.Errorf("reading the fleet: %w", err)
	}
	list, err := s.activeJobs(ctx)
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	rd := &round{s: s, now: now, fs: fs, jobs: make(map[int64]*store.Job, len(list)), order: make([]int64, 0, len(list)),
		owned: map[string]bool{}}
	for _, j := range list {
		rd.jobs[j.ID] = j
		rd.order = append(rd.order, j.ID)
		if j.State != store.Pending {
			rd.owned[attemptName(j)] = true
		}
	}
	rd.recordReturned(ctx)
	rd.flush(ctx)
	// 2. Observed state.
	rd.observe(ctx)
	rd.trackHealth()
	// 3. Observed transitions.
	for _, id := range rd.order {
		if j := rd.jobs[id]; j != nil && (j.State == store.Dispatched || j.State == store.Running) {
			rd.observeJob(ctx, j)
		}
	}
	rd.flush(ctx)
	// 4. Orphans.
	rd.cleanOrphans(ctx)
	// 5. Pipelines.
	rd.held = rd.holdBack(ctx)
	// 6. Schedule.
	rd.ensureSlots(ctx)
	totals := s.usageTotals(ctx, fs, rd.holding(), now)
	snap, pending := rd.snapshot(totals, realNodes)
	dec := engine.Schedule(snap, pending, fs.fleet.Policy, now)
	rd.provision(ctx, &dec)
	blocked := rd.preempt(ctx, dec.Preempt)
	disp := rd.startDispatch(ctx)
	rd.admit(ctx, dec.Admit, blocked, disp, "")
	if len(dec.Wait) > 0 {
		rd.admitAhead(ctx, totals, disp)
	}
	waits := make(map[int64]string, len(dec.Wait)+len(rd.held))
	for id, why := range rd.held {
		waits[id] = why
	}
	for _, wt := range dec.Wait {
		id, _ := strconv.ParseInt(wt.Workload, 10, 64)
		msg := string(wt.Reason)
		if wt.Detail != "" {
			msg += ": " + wt.Detail
		}
		waits[id] = msg
	}
	s.waitMu.Lock()
	s.waits = waits
	s.waitMu.Unlock()
	// 7. Dispatch.
	tSched := time.Since(started)
	disp.finish()
	rd.forgetAll(ctx)
	s.rec.waited = time.Since(started) - tSched
	s.rec.queued = false
	for _, j := range rd.jobs {
		if j.State == store.Pending || j.State == store.Admitted {
			s.rec.queued = true
			break
		}
	}
	// 8. Publish.
	rd.publish(ctx, totals)
	return nil
}

// activeJobs returns every non-terminal job, in ID order, as the store has
// it now. It reads them all the first time, after a failed read and every
// fullReadEvery; otherwise it reads only the jobs written since the last
// round (store.Changes): its own moves and the API's creates and cancels.
// Reading every active job each round was most of a round's time with a
// deep queue (BenchmarkReconcileRound). The jobs it returns are shared
// with later rounds: a round replaces a job it moves, never changes it
// (snapshot sets its workload's ID, team and submission time, the same
// each round).
func (s *Server) activeJobs(ctx context.Context) ([]*store.Job, error) {
	r := &s.rec
	if r.active == nil || time.Since(r.readAll) >= fullReadEvery {
		cur, err := s.store.Cursor(ctx)
		if err != nil {
			return nil, err
		}
		list, err := s.store.ListJobs(ctx, store.Filter{States: activeStates})
		if err != nil {
			return nil, err
		}
		r.active = make(map[int64]*store.Job, len(list))
		for _, j := range list {
			r.active[j.ID] = j
		}
		r.cursor, r.readAll = cur, time.Now()
		return list, nil
	}
	changed, next, err := s.store.Changes(ctx, r.cursor)
	if err != nil {
		r.active = nil
		return nil, err
	}
	for _, j := range changed {
		if j.State.Terminal() {
			delete(r.active, j.ID)
		} else {
			r.active[j.ID] = j
		}
	}
	r.cursor = next
	list := make([]*store.Job, 0, len(r.active))
	for _, j := range r.active {
		list = append(list, j)
	}
	slices.SortFunc(list, func(a, b *store.Job) int { return cmp.Compare(a.ID, b.ID) })
	return list, nil
}

// attemptName is the backend object name of j's current attempt.
func attemptName(j *store.Job) string { return backend.Name(j.ID, j.Attempt) }

// parseName is the inverse of backend.Name; ok is false for names the
// broker did not make.
func parseName(name string) (id int64, attempt int, ok bool) {
	rest, found := strings.CutPrefix(name, "gpub-")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || backend.Name(id, n) != name {
		return 0, 0, false
	}
	return id, n, true
}

// observe calls every cluster's backend once: the fleet's clusters and
// any other cluster an active job still runs on.
func (rd *round) observe(ctx context.Context) {
	rd.obs = map[string]*observation{}
	var clusters []model.Cluster
	seen := map[string]bool{}
	for _, c := range rd.fs.fleet.Clusters {
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

func (s *Server) observeCluster(ctx context.Context, c model.Cluster, inFleet bool) *observation {
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

// planned is a move of the round's next batch (flush): of j as the round
// will have it when the move applies, then what to do after it, with the
// job as moved, or nil when it did not apply.
type planned struct {
	j    *store.Job
	m    store.Move
	then func(moved *store.Job)
}

// plan adds m, a move of j, to the round's next batch. then, when not
// nil, runs once the batch is written.
func (rd *round) plan(j *store.Job, m store.Move, then func(moved *store.Job)) {
	m.From, m.Attempt, m.At = j.State, j.Attempt, rd.now
	if m.Actor == "" {
		m.Actor = actorReconciler
	}
	rd.batch = append(rd.batch, planned{j: j, m: m, then: then})
}

// flush writes the planned moves in one store transaction and records the
// result of each in the round, in order, running its then. A conflict
// (someone else, the API's cancel, moved the job first) is not an error:
// the job leaves this round and the next one re-reads it. When the store
// fails, no move applied and every job stays as it was for this round.
func (rd *round) flush(ctx context.Context) {
	batch := rd.batch
	rd.batch = nil
	if len(batch) == 0 {
		return
	}
	moves := make([]store.JobMove, len(batch))
	for i, st := range batch {
		moves[i] = store.JobMove{ID: st.j.ID, Move: st.m}
	}
	jobs, errs, err := rd.s.store.MoveJobs(ctx, moves)
	if err != nil {
		rd.s.log.Warn("moving jobs failed", "moves", len(moves), "err", err)
	}
	for i, st := range batch {
		var moved *store.Job
		switch {
		case err != nil:
		case errs[i] == nil:
			moved = jobs[i]
			rd.applied(st.j, st.m, moved)
		case errors.Is(errs[i], store.ErrConflict):
			delete(rd.jobs, st.j.ID)
			if holds(st.j) {
				rd.conflicted = append(rd.conflicted, st.j)
			}
		default:
			rd.s.log.Warn("moving a job failed", "job", st.j.ID, "from", st.m.From, "to", st.m.To, "err", errs[i])
		}
		if st.then != nil {
			st.then(moved)
		}
	}
}

// applied records in the round that m moved j.
func (rd *round) applied(j *store.Job, m store.Move, moved *store.Job) {
	rd.s.metrics.transitions.WithLabelValues(string(m.To)).Inc()
	if moved.State.Terminal() {
		delete(rd.jobs, j.ID)
	} else {
		rd.jobs[j.ID] = moved
	}
	if moved.Attempt != j.Attempt || moved.State.Terminal() || moved.State == store.Pending {
		delete(rd.s.rec.slots, j.ID)
	}
	if moved.State != store.Pending {
		delete(rd.s.rec.avoid, j.ID)
	}
	if m.Usage != nil {
		rd.s.noteUsage(m.Usage, m.At)
	}
}

// move applies m to j at once (with whatever else is planned) and reports
// the job after it, or false when it did not apply.
func (rd *round) move(ctx context.Context, j *store.Job, m store.Move) (*store.Job, bool) {
	var got *store.Job
	rd.plan(j, m, func(moved *store.Job) { got = moved })
	rd.flush(ctx)
	return got, got != nil
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
	o := rd.obs[j.Placement.Cluster]
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

// cleanOrphans stops and forgets backend objects that no active job's
// current attempt owns: attempts cancelled while their backend could not
// be reached, earlier attempts of preempted or lost jobs, objects whose
// job ended while the server was down.
func (rd *round) cleanOrphans(ctx context.Context) {
	names := make([]string, 0, len(rd.obs))
	for n := range rd.obs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, cl := range names {
		o := rd.obs[cl]
		if !o.ok() {
			continue
		}
		for name, st := range o.byName {
			id, attempt, ok := parseName(name)
			if !ok {
				continue
			}
			if _, later := rd.s.rec.ended[name]; rd.owned[name] || later {
				continue
			}
			if rd.s.rec.deferred[name] {
				continue // preempted; stopped once its successor is submitted
			}
			if j := rd.jobs[id]; j != nil && j.Attempt == attempt && j.State != store.Pending {
				continue
			}
			var err error
			switch st.Phase {
			case backend.PhasePending, backend.PhaseRunning:
				err = o.b.Cancel(ctx, name)
			default:
				err = o.b.Forget(ctx, name)
			}
			if err != nil {
				rd.s.log.Warn("cleaning up an orphaned attempt", "cluster", cl, "name", name, "err", err)
			}
		}
	}
}

// holds reports whether j holds capacity (a placement of its current
// attempt).
func holds(j *store.Job) bool {
	return j.Placement != nil && (j.State == store.Admitted || j.State == store.Dispatched || j.State == store.Running)
}

// snapshot builds the engine's view from the round's jobs: allocations
// for jobs holding capacity, per-node free GPUs (of view), down pools,
// usage.
func (rd *round) snapshot(t usageSnapshot, view snapView) (*engine.Snapshot, []*model.Workload) {
	snap := buildSnapshot(rd.fs.fleet, rd.holding(), rd.obs, t, view)
	var pending []*model.Workload
	for _, id := range rd.order {
		j := rd.jobs[id]
		if j == nil || j.State != store.Pending || j.Workload == nil {
			continue
		}
		if _, held := rd.held[id]; held {
			continue
		}
		w := j.Workload
		w.ID = strconv.FormatInt(j.ID, 10)
		w.Team = j.Team
		w.Submitted = j.Created
		if av, ok := rd.s.rec.avoid[id]; ok {
			if av.attempt == j.Attempt {
				c := *w
				c.AvoidRegions = []string{av.region}
				w = &c
			} else {
				delete(rd.s.rec.avoid, id)
			}
		}
		pending = append(pending, w)
	}
	return snap, pending
}

// holding is every job holding capacity: the round's own, and those whose
// moves conflicted (conflicted).
func (rd *round) holding() []*store.Job {
	out := slices.Clone(rd.conflicted)
	for _, id := range rd.order {
		if j := rd.jobs[id]; j != nil && holds(j) {
			out = append(out, j)
		}
	}
	return out
}

// snapView says which nodes of a pool buildSnapshot shows free.
type snapView int

const (
	// realNodes: every pool's nodes, less what holds them.
	realNodes snapView = iota
	// queueSlots: the queue-ahead pass's view (ADR 0003). A pool of a
	// cluster with queue_ahead shows its queue slots as nodes after every
	// node it has or may add (slotBase), free but for work queued on them,
	// and its real nodes as full; every other pool is down.
	queueSlots
)

func buildSnapshot(f *model.Fleet, holding []*store.Job, obs map[string]*observation, t usageSnapshot, view snapView) *engine.Snapshot {
	snap := &engine.Snapshot{
		Fleet:            f,
		ProviderGPUHours: t.providerGPUHours,
		TeamSpendUSD:     t.teamSpend,
		ContractSpentUSD: t.contractSpend,
	}
	free := map[engine.PoolRef][]int{}
	for _, c := range f.Clusters {
		down := obs != nil && !obs[c.Name].open()
		for _, p := range c.Pools {
			ref := engine.PoolRef{Cluster: c.Name, Pool: p.Name}
			from, n, poolDown := 0, p.Nodes, down
			if view == queueSlots {
				k := c.AheadNodes(&p)
				from, n, poolDown = slotBase(&p), slotBase(&p)+k, down || k == 0
			}
			nf := make([]int, n)
			for i := from; i < n; i++ {
				nf[i] = p.GPUsPerNode
			}
			free[ref] = nf
			snap.Pools = append(snap.Pools, engine.PoolState{Ref: ref, NodeFree: nf, Down: poolDown})
		}
	}
	for _, j := range holding {
		pl := j.Placement
		ref := engine.PoolRef{Cluster: pl.Cluster, Pool: pl.Pool}
		if nf := free[ref]; nf != nil {
			for _, n := range pl.Nodes {
				if n >= 0 && n < len(nf) {
					nf[n] = max(0, nf[n]-pl.GPUsPerNode)
				}
			}
		}
		a := engine.Allocation{
			Workload: strconv.FormatInt(j.ID, 10), Team: j.Team, Pool: ref, Nodes: pl.Nodes,
			GPUsPerNode: pl.GPUsPerNode, GPU: pl.GPU, Borrowed: pl.Borrowed, Started: j.Updated,
		}
		a.Ahead = queuedAhead(f, pl)
		if j.State == store.Running && !j.StartedAt.IsZero() {
			a.Started = j.StartedAt
		}
		if j.Workload != nil {
			a.Priority = j.Workload.Priority
			a.CheckpointInterval = j.Workload.CheckpointInterval
			if j.Workload.Duration > 0 {
				// The share cap counts what running work is still expected
				// to use; without an estimate the engine assumes an hour.
				a.ExpectedEnd = a.Started.Add(j.Workload.Duration)
			}
		}
		snap.Running = append(snap.Running, a)
	}
	return snap
}

// preempt evicts the engine's victims: stop the attempt, then move it back
// to pending as a new attempt. It returns the workloads whose room could
// not be made (their admissions are skipped this round).
//
// On a queue_ahead cluster the engine, not the broker, gives the freed
// node to the highest priority it has queued, so a victim is stopped only
// once the job it makes room for has reached the engine (stopAfter, see
// record): stopped first, its node would go to work queued ahead. The
// victim is moved at once all the same; until it is stopped, its attempt
// is an orphan that cleanOrphans leaves alone for deferStop.
func (rd *round) preempt(ctx context.Context, ps []engine.Preemption) map[string]bool {
	blocked := map[string]bool{}
	for _, p := range ps {
		id, _ := strconv.ParseInt(p.Workload, 10, 64)
		j := rd.jobs[id]
		if j == nil || !holds(j) {
			blocked[p.For] = true
			continue
		}
		name := attemptName(j)
		if o := rd.obs[j.Placement.Cluster]; o.ok() && j.State != store.Admitted {
			if c := rd.fs.fleet.Cluster(j.Placement.Cluster); c != nil && c.QueuesAhead() {
				forID, _ := strconv.ParseInt(p.For, 10, 64)
				d := rd.s.rec.stopAfter[forID]
				d.b, d.names, d.until = o.b, append(d.names, name), rd.now.Add(deferStop)
				rd.s.rec.stopAfter[forID] = d
				rd.s.rec.deferred[name] = true
			} else if err := o.b.Cancel(ctx, name); err != nil {
				rd.s.log.Warn("preempt: cancel failed", "name", name, "err", err)
			}
		}
		rd.retry(j, lifecycle.Preempted, "Preempted: "+p.Reason, "for job "+p.For, func(moved *store.Job) {
			if moved == nil {
				blocked[p.For] = true
				delete(rd.s.rec.deferred, name) // still the job's attempt: never stop it
			}
		})
	}
	rd.flush(ctx)
	for forID, d := range rd.s.rec.stopAfter {
		if blocked[strconv.FormatInt(forID, 10)] || !rd.now.Before(d.until) {
			// No Submit will come, or it has taken too long.
			rd.stopDeferred(ctx, forID)
		}
	}
	return blocked
}

// deferredStop is the victims preempted for one job on a queue_ahead
// cluster, waiting for its Submit (see preempt).
type deferredStop struct {
	b     backend.Backend
	names []string
	until time.Time
}

// deferStop bounds how long a victim on a queue_ahead cluster runs on
// while the job it made room for has not reached the engine.
const deferStop = 30 * time.Second

// stopDeferred stops the victims preempted for job forID (see preempt)
// that are still waiting for it.
func (rd *round) stopDeferred(ctx context.Context, forID int64) {
	d, ok := rd.s.rec.stopAfter[forID]
	if !ok {
		return
	}
	delete(rd.s.rec.stopAfter, forID)
	for _, name := range d.names {
		if !rd.s.rec.deferred[name] {
			continue
		}
		delete(rd.s.rec.deferred, name)
		if err := d.b.Cancel(ctx, name); err != nil {
			rd.s.log.Warn("preempt: cancel failed", "name", name, "err", err)
		}
	}
}

// admitBatch is how many admissions a round writes in one transaction
// before their Submits start: enough that the writes cost little, few
// enough that the engine gets the first ones at once.
const admitBatch = 64

// aheadNote ends the message of an admission onto a queue slot.
const aheadNote = "; queued in the engine ahead of capacity (queue_ahead)"

// admitAhead is the queue-ahead pass (ADR 0003): once the round's own
// admissions are recorded, the engine schedules the single-node jobs still
// pending again, on a view where only the queue slots of clusters with
// queue_ahead are free, without preemption. What it admits is dispatched
// like any admission and waits in the engine's queue, which starts it the
// moment capacity frees instead of a round later. Quotas, budgets, the
// share cap, prices and residency hold as for any admission: the engine
// counts work on slots as running.
func (rd *round) admitAhead(ctx context.Context, t usageSnapshot, disp *roundDispatch) {
	if !slices.ContainsFunc(rd.fs.fleet.Clusters, func(c model.Cluster) bool { return c.QueuesAhead() }) {
		return
	}
	snap, pending := rd.snapshot(t, queueSlots)
	if as := scheduleAhead(rd.fs.fleet, snap, pending, rd.now); len(as) > 0 {
		rd.admit(ctx, as, nil, disp, aheadNote)
	}
}

// scheduleAhead is the engine's queue-ahead pass over snap (buildSnapshot's
// queueSlots view) for the pending single-node workloads. Gangs never go ahead: kube-scheduler does not place an
// Indexed Job's pods all or nothing, so two gangs queued in the engine
// could each hold part of the nodes the other needs.
func scheduleAhead(f *model.Fleet, snap *engine.Snapshot, pending []*model.Workload, now time.Time) []engine.Admission {
	var single []*model.Workload
	for _, w := range pending {
		if w.NumNodes <= 1 {
			single = append(single, w)
		}
	}
	if len(single) == 0 || !slotFree(snap) {
		return nil
	}
	pol := f.Policy
	pol.Preemption = false
	return engine.Schedule(snap, single, pol, now).Admit
}

// slotFree reports whether a pool that is up has a free node.
func slotFree(snap *engine.Snapshot) bool {
	for _, st := range snap.Pools {
		if !st.Down && slices.ContainsFunc(st.NodeFree, func(f int) bool { return f > 0 }) {
			return true
		}
	}
	return false
}

// slotBase is the index of a pool's first queue slot: past every node the
// pool has or may add, so that work on slots never holds a real node.
func slotBase(p *model.Pool) int { return max(p.Nodes, p.MaxNodes) }

// admit records the engine's admissions: Pending -> Admitted with the
// placement and the GPU slots of each node, kept on the attempt so that a
// restarted server dispatches the same ones (and written into the event's
// message for people).
// note, when set, goes into each admission's message after the price.
func (rd *round) admit(ctx context.Context, as []engine.Admission, blocked map[string]bool, disp *roundDispatch, note string) {
	if len(as) == 0 {
		return
	}
	used := rd.usedSlots()
	for _, a := range as {
		if blocked[a.Workload] {
			continue
		}
		id, _ := strconv.ParseInt(a.Workload, 10, 64)
		j := rd.jobs[id]
		if j == nil || j.State != store.Pending {
			continue
		}
		nodes := assignSlots(used, a.Pool, a.Nodes, a.GPUsPerNode)
		pl := &store.Placement{
			Cluster: a.Pool.Cluster, Pool: a.Pool.Pool, Provider: a.Provider, Region: a.Region, GPU: a.GPU,
			GPUsPerNode: a.GPUsPerNode, Nodes: a.Nodes, PriceClass: a.PriceClass,
			BilledPerGPUHour: a.Cost.BilledPerGPUHour, Contract: a.Contract, Borrowed: a.Borrowed,
		}
		msg := fmt.Sprintf(placedPrefix+"%s (%s, %s, $%.2f/GPU-h effective)%s; %s",
			a.Pool, a.Provider, a.PriceClass, a.Cost.EffectivePerGPUHour, note, formatSlots(nodes))
		rd.plan(j, store.Move{To: store.Admitted, Placement: pl, Slots: storeSlots(nodes), Message: msg}, func(moved *store.Job) {
			if moved == nil {
				releaseSlots(used, a.Pool, nodes)
				return
			}
			rd.s.rec.slots[id] = attemptSlots{attempt: j.Attempt, pool: a.Pool, nodes: nodes}
			rd.s.metrics.admissions.Inc()
			disp.add(moved)
		})
		if len(rd.batch) >= admitBatch {
			rd.flush(ctx)
		}
	}
	rd.flush(ctx)
}

// publish sets the metrics and the view of this round for the API.
func (rd *round) publish(ctx context.Context, t usageSnapshot) {
	s := rd.s
	if counts, err := s.store.CountByState(ctx); err == nil {
		for _, st := range []store.State{store.Pending, store.Admitted, store.Dispatched, store.Running, store.Succeeded, store.Failed, store.Cancelled} {
			s.metrics.queueDepth.WithLabelValues(string(st)).Set(float64(counts[st]))
		}
	}
	holding := rd.holding()
	inUse := map[model.Provider]int{}
	for _, j := range holding {
		inUse[j.Placement.Provider] += len(j.Placement.Nodes) * j.Placement.GPUsPerNode
	}
	s.metrics.setGPUsInUse(rd.fs.fleet, inUse)
	down := map[string]string{}
	for name, o := range rd.obs {
		if !o.open() {
			down[name] = o.why().Error()
		}
	}
	s.view.Store(&roundView{
		at:      rd.now,
		fleet:   rd.fs,
		snap:    buildSnapshot(rd.fs.fleet, holding, rd.obs, t, realNodes),
		down:    down,
		running: t.running,
	})
}

// roundView is what the last round saw, for the read endpoints.
type roundView struct {
	at    time.Time
	fleet *fleetState
	// snap is the state after the round's decisions: what plan plans
	// against and what clusters and teams report.
	snap *engine.Snapshot
	// down maps a cluster that could not take work to why.
	down map[string]string
	// running is the usage so far of attempts still running.
	running []store.Usage
}
