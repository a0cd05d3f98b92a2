package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/engine"
	"gpubroker/internal/model"
	"gpubroker/internal/server/view"
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
	// counts is how many jobs are in each state (see jobCounts).
	counts jobCounts
	// led: the last round led (see lead).
	led bool
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

// round is one reconcile round's working state.
type round struct {
	s   *Controller
	now time.Time
	// until is when the round stops acting (see fenced); zero: never.
	until       time.Time
	fenceLogged bool
	fs          *view.Fleet
	obs         map[string]*observation
	// runners are the observations of other brokers' records that active
	// attempts were recorded at (observeRunners); live, the hosts with a
	// broker alive (hostAlive), read on first use.
	runners map[backend.Where]*observation
	live    map[string]bool
	jobs    map[int64]*store.Job // every active job as last read or moved
	order   []int64              // job IDs in ID order
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
	// disp is the round's dispatch feed (see startDispatch).
	disp *roundDispatch
	// totals are the usage figures placement scheduled with.
	totals usageSnapshot
}

// A controller is one step of a round. It reads the round (the active
// jobs as the store has them, what the backends reported, the fleet) and
// acts through it: moves planned and flushed with the round's batch
// (plan, flush), backend calls, admitted jobs handed to the round's
// dispatch feed. Controllers run one after another on the reconciler's
// goroutine, each once per round, in the order of controllers.
type controller struct {
	name      string
	reconcile func(rd *round, ctx context.Context)
}

// controllers is a round's order (docs/adr/0007-server-split.md). Each
// step sees what the steps before it did in the same round: placement
// schedules after observe has freed the capacity of ended attempts and
// after pipelines has held back stages that must wait; dispatch sends what
// placement admitted. A new controller (services, provisioning) is one
// more entry here, in a file of its own.
var controllers = []controller{
	// 2-3. Observed state: every cluster once, its health, and the moves of
	// dispatched and running jobs by what their backends report.
	{"observe", (*round).observeAll},
	// 4. Backend objects no active attempt owns.
	{"orphans", (*round).cleanOrphans},
	// 5. Pipeline stages held back or cancelled by the stage before.
	{"pipelines", (*round).pipelines},
	// 6. The engine's decisions: preemptions, admissions, queue-ahead.
	{"placement", (*round).place},
	// 7. Admitted jobs to their backends; ended attempts forgotten.
	{"dispatch", (*round).dispatch},
}

// reconcile runs one round: read desired and observed state, act on the
// difference. Steps:
//
//  1. read every non-terminal job and the fleet, and record the Submits
//     that returned since the last round (dispatched, see dispatcher);
//  2. take every cluster's last health check and observation (probe.go:
//     each runs beside the rounds, per cluster, within its deadline; the
//     round waits for them a second at most, and not at all for a cluster
//     that was slow), and track how long each cluster has not answered:
//     past Config.ClusterTimeout it is lost;
//  3. move dispatched and running jobs by what their backend reports
//     (started, succeeded, failed -> retry or fail, lost -> retry; not
//     reported for lostAfterRounds rounds -> lost; on a lost cluster ->
//     lost, retried elsewhere as a new attempt);
//  4. stop and forget backend objects no active attempt owns;
//  5. hold back pipeline stages whose previous stage has not succeeded,
//     and cancel those whose previous stage failed or was cancelled;
//  6. build the engine's snapshot and schedule the other pending jobs;
//     let the provisioning controller scale elastic pools and hold back
//     admissions onto nodes not ready yet (provision.go); then apply
//     preemptions, then admissions (with GPU slots); then, on
//     clusters with queue_ahead, admit what may wait in the engine's own
//     queue (admitAhead);
//  7. dispatch every admitted job not in flight (idempotent by name; each
//     new admission's Submit starts while step 6 records the others; the
//     round records the Submits that return while it runs and waits for
//     none); then forget the attempts that ended in step 3;
//  8. publish waits, metrics and the view the read endpoints show.
//
// Steps 2 to 7 are the controllers, in that order; 1 and 8 frame them.
// Every move is a compare-and-set; a conflict means someone else (the
// API's cancel) moved the job first, and the next round sees it.
func (s *Controller) reconcile(ctx context.Context) error {
	started := s.clock.Now()
	defer func() { s.metrics.roundSecs.Observe(s.clock.Now().Sub(started).Seconds()) }()
	s.rec.waited = 0
	now := started.UTC()
	lead, until, err := s.lead(ctx, now)
	if err != nil || !lead {
		return err
	}
	// 1. Desired state. The jobs are read before the fleet: a job submitted
	// after a PUT /v1/fleet returned is then never placed by a round that
	// read the fleet before it (which placed a job on the built-in local
	// fleet a moment after another fleet was applied).
	list, err := s.activeJobs(ctx)
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	fs, err := s.refreshFleet(ctx)
	if err != nil {
		return fmt.Errorf("reading the fleet: %w", err)
	}
	if fs.Invalid != nil {
		s.holdAll(list, fs.Invalid)
		return nil
	}
	s.refreshCounts(ctx, now)
	rd := &round{s: s, now: now, until: until, fs: fs, jobs: make(map[int64]*store.Job, len(list)), order: make([]int64, 0, len(list)),
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
	// The dispatch feed is open while the controllers run: any of them may
	// hand it admitted jobs (placement does); dispatch closes it.
	rd.disp = rd.startDispatch(ctx)
	// 2-7.
	for _, c := range controllers {
		c.reconcile(rd, ctx)
	}
	s.rec.queued = false
	for _, j := range rd.jobs {
		if j.State == store.Pending || j.State == store.Admitted {
			s.rec.queued = true
			break
		}
	}
	// 8. Publish.
	rd.publish(ctx, rd.totals)
	return nil
}

// observeAll is the observe controller (steps 2 and 3).
func (rd *round) observeAll(ctx context.Context) {
	rd.observe(ctx)
	rd.trackHealth()
	rd.observeRunners(ctx)
	for _, id := range rd.order {
		if j := rd.jobs[id]; j != nil && (j.State == store.Dispatched || j.State == store.Running) {
			rd.observeJob(ctx, j)
		}
	}
	rd.flush(ctx)
}

// pipelines is the pipelines controller (step 5).
func (rd *round) pipelines(ctx context.Context) { rd.held = rd.holdBack(ctx) }

// place is the placement controller (step 6): the engine's round over the
// pending jobs not held back, its preemptions and admissions, the
// queue-ahead pass, and why every other pending job waits.
func (rd *round) place(ctx context.Context) {
	s, fs, now := rd.s, rd.fs, rd.now
	rd.ensureSlots(ctx)
	totals := s.usageTotals(ctx, fs, rd.holding(), now)
	rd.totals = totals
	snap, pending := rd.snapshot(totals, realNodes)
	dec := engine.Schedule(snap, pending, fs.Fleet.Policy, now)
	rd.provision(ctx, &dec)
	blocked := rd.preempt(ctx, dec.Preempt)
	rd.admit(ctx, dec.Admit, blocked, rd.disp, "")
	if len(dec.Wait) > 0 {
		rd.admitAhead(ctx, totals, rd.disp)
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
}

// dispatch is the dispatch controller (step 7). The time it waits for
// room for the Submits and for the forgets is the engines', not the
// broker's: the pacing does not count it (runReconciler).
func (rd *round) dispatch(ctx context.Context) {
	started := rd.s.clock.Now()
	rd.disp.finish()
	rd.forgetAll(ctx)
	rd.s.rec.waited = rd.s.clock.Now().Sub(started)
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
func (s *Controller) activeJobs(ctx context.Context) ([]*store.Job, error) {
	r := &s.rec
	if r.active == nil || s.clock.Now().Sub(r.readAll) >= fullReadEvery {
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
		r.cursor, r.readAll = cur, s.clock.Now()
		r.counts.read = time.Time{} // counted again, after this read
		return list, nil
	}
	changed, next, err := s.store.Changes(ctx, r.cursor)
	if err != nil {
		r.active = nil
		return nil, err
	}
	for _, j := range changed {
		if j.State.Terminal() {
			if _, was := r.active[j.ID]; was {
				r.counts.sawEnd(j.State)
			}
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
	if rd.fenced() {
		for _, st := range batch {
			delete(rd.jobs, st.j.ID)
			if st.then != nil {
				st.then(nil)
			}
		}
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
		// Counted as ended now, not when the next round's changes list it
		// (that round may come well after the metric is read).
		if _, was := rd.s.rec.active[j.ID]; was {
			delete(rd.s.rec.active, j.ID)
			rd.s.rec.counts.sawEnd(moved.State)
		}
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

// publish sets the metrics and the view of this round for the API.
func (rd *round) publish(ctx context.Context, t usageSnapshot) {
	s := rd.s
	if counts, ok := rd.countJobs(); ok {
		for _, st := range []store.State{store.Pending, store.Admitted, store.Dispatched, store.Running, store.Succeeded, store.Failed, store.Cancelled} {
			s.metrics.queueDepth.WithLabelValues(string(st)).Set(float64(counts[st]))
		}
	}
	holding := rd.holding()
	inUse := map[model.Provider]int{}
	for _, j := range holding {
		inUse[j.Placement.Provider] += len(j.Placement.Nodes) * j.Placement.GPUsPerNode
	}
	s.metrics.setGPUsInUse(rd.fs.Fleet, inUse)
	down := map[string]string{}
	health := make(map[string]view.ClusterHealth, len(rd.obs))
	for name, o := range rd.obs {
		h := view.ClusterHealth{State: o.state(), Checked: o.checked}
		if !o.open() {
			h.Why = reason(o.why())
			down[name] = h.Why
		}
		health[name] = h
	}
	s.view.Store(&view.Round{
		At:      rd.now,
		Fleet:   rd.fs,
		Snap:    buildSnapshot(rd.fs.Fleet, holding, rd.obs, t, realNodes),
		Down:    down,
		Health:  health,
		Running: t.running,
	})
}
