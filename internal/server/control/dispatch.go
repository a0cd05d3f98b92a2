package control

import (
	"context"
	"errors"
	"sync"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/lifecycle"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// dispatchParallel bounds the Submits in flight at once, over all
// clusters and rounds. A Submit is a network call or a command (sbatch)
// that mostly waits; one at a time, a round that admits a wave of 500 jobs
// spends seconds submitting them while the cluster idles.
const dispatchParallel = 16

// submission is one admitted job on its way to its backend.
type submission struct {
	j    *store.Job
	b    backend.Backend
	spec backend.Spec
	err  error
}

// dispatcher sends admitted jobs to their backends (step 7 of a round;
// idempotent by name: after a crash between Submit and the move, Submit
// finds the object and starts nothing) and has their moves to dispatched
// recorded. Each job's Submit starts as soon as the round admits it, while
// the round is still recording the other admissions (a burst of 500
// admissions takes a quarter of a second of moves, which the engine would
// otherwise spend idle), at most dispatchParallel at once.
//
// It outlives rounds: no round waits for its Submits. One that returns is
// recorded by the round running then, or by the next one (which its
// return wakes), never by the Submit's goroutine: the moves stay on the
// reconciler's goroutine. A Slurm round used to wait for its sbatch calls
// (a second each on a busy controller), and the endings that came
// meanwhile waited for the round.
type dispatcher struct {
	sem chan struct{} // one token per Submit in flight
	// inflight holds the attempts handed to a Submit whose outcome is not
	// recorded yet (reconciler goroutine only).
	inflight map[string]bool
	// wake is signalled when a Submit returns.
	wake chan struct{}

	mu       sync.Mutex
	returned []*submission // Submits returned, not recorded yet
}

func newDispatcher() *dispatcher {
	return &dispatcher{sem: make(chan struct{}, dispatchParallel), inflight: map[string]bool{},
		wake: make(chan struct{}, 1)}
}

// roundDispatch is one round's use of the dispatcher: its feed of Submits.
type roundDispatch struct {
	*dispatcher
	rd   *round
	ctx  context.Context
	subs chan *submission // to the round's feeder goroutine
}

// startDispatch starts the round's feeder: it starts the round's Submits
// in the order the round hands them over, as tokens free up. The Submits
// run under ctx, the reconciler's, not the round's.
func (rd *round) startDispatch(ctx context.Context) *roundDispatch {
	d := rd.s.rec.disp
	rdp := &roundDispatch{dispatcher: d, rd: rd, ctx: ctx, subs: make(chan *submission, 64)}
	go func() {
		for sub := range rdp.subs {
			select {
			case d.sem <- struct{}{}:
			case <-ctx.Done():
				d.deliver(&submission{j: sub.j, b: sub.b, spec: sub.spec, err: ctx.Err()})
				continue
			}
			go func() {
				sub.err = rd.s.within(ctx, "submit", func(ctx context.Context) error { return sub.b.Submit(ctx, sub.spec) })
				<-d.sem
				d.deliver(sub)
			}()
		}
	}()
	return rdp
}

// deliver hands a returned Submit to the reconciler.
func (d *dispatcher) deliver(sub *submission) {
	d.mu.Lock()
	d.returned = append(d.returned, sub)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// take returns the Submits returned since the last take.
func (d *dispatcher) take() []*submission {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.returned
	d.returned = nil
	return out
}

// recordReturned plans the moves of every Submit returned so far (see
// record); the caller flushes.
func (rd *round) recordReturned(ctx context.Context) {
	for _, sub := range rd.s.rec.disp.take() {
		rd.record(ctx, sub)
	}
}

// add starts dispatching j, an admitted job, unless its Submit is in
// flight already or its cluster cannot take work this round. While the
// feed is full it records the Submits that return, so that a round never
// waits for more than the room to hand j over.
func (d *roundDispatch) add(j *store.Job) {
	if d.inflight[attemptName(j)] || d.rd.fenced() {
		return
	}
	sub := d.rd.prepare(d.ctx, j)
	if sub == nil {
		return
	}
	d.inflight[sub.spec.Name] = true
	for {
		select {
		case d.subs <- sub:
			return
		case <-d.wake:
			d.rd.recordReturned(d.ctx)
		}
	}
}

// finish dispatches every admitted job not dispatched yet (admitted in an
// earlier round whose cluster could not take it then, or whose backend was
// unavailable), ends the round's feed and records the Submits returned so
// far. It does not wait for the others.
func (d *roundDispatch) finish() {
	for _, id := range d.rd.order {
		if j := d.rd.jobs[id]; j != nil && j.State == store.Admitted {
			d.add(j)
		}
	}
	close(d.subs)
	d.rd.recordReturned(d.ctx)
	d.rd.flush(d.ctx)
}

// prepare returns the submission of an admitted job, or nil when its
// cluster cannot take work this round (after lostAfterRounds such rounds
// the job goes back to pending as a new attempt).
func (rd *round) prepare(ctx context.Context, j *store.Job) *submission {
	name := attemptName(j)
	o := rd.obs[j.Placement.Cluster]
	if r := rd.obsOf(j); r != o && o.open() {
		// Recorded at another broker's records: submitted there, where
		// an earlier Submit may have started it already (idempotent by
		// name there only). On another machine it waits while a broker
		// there is alive.
		switch {
		case r.elsewhere != "" && rd.hostAlive(ctx, r.elsewhere):
			return nil
		case r.ok():
			o = &observation{b: r.b}
		default:
			o = r
		}
	}
	if !o.open() {
		rd.s.rec.missing[name]++
		if rd.s.rec.missing[name] >= lostAfterRounds {
			delete(rd.s.rec.missing, name)
			reason := "ClusterUnhealthy: cluster " + j.Placement.Cluster + " cannot take work: " + o.why().Error()
			rd.plan(j, store.Move{To: store.Pending, NextAttempt: true, Reason: reason,
				Message: "not dispatched: " + reason}, nil)
		}
		return nil
	}
	sl, ok := rd.s.rec.slots[j.ID]
	if !ok || sl.attempt != j.Attempt {
		// ensureSlots found none (should not happen): give the lowest.
		sl = attemptSlots{attempt: j.Attempt, nodes: defaultSlots(j.Placement)}
	}
	w := j.Workload
	sp := backend.Spec{
		Name: name, JobID: j.ID, Attempt: j.Attempt, Team: j.Team,
		Cluster: j.Placement.Cluster, Pool: j.Placement.Pool, Nodes: sl.nodes,
		MaxLogBytes: rd.s.cfg.MaxLogBytes,
	}
	if c := rd.fs.Fleet.Cluster(j.Placement.Cluster); c != nil {
		sp.Ordered = c.QueuesAhead()
	}
	if w != nil {
		sp.Setup, sp.Run, sp.Workdir, sp.Envs, sp.CheckpointDir = w.Setup, w.Run, w.Workdir, w.Envs, w.CheckpointDir
		sp.Priority = w.Priority
	}
	return &submission{j: j, b: o.b, spec: sp}
}

// record plans the move of a submitted job by its Submit's outcome:
// dispatched; still admitted when the backend was unavailable (the next
// round retries); otherwise the attempt did not start (notStarted).
//
// The job is taken as the round has it: a Submit that returns after its
// job moved on (cancelled, preempted, lost) records nothing, and the
// object it made is an orphan for cleanOrphans.
//
// Until the move it plans is written (the round's next flush), the
// attempt stays in flight: the job is still Admitted in the round, and
// were it out of flight, finish would hand it to a second Submit, whose
// record would plan the same move again and conflict with the first
// (see TestRecordedSubmitIsNotDispatchedAgain).
func (rd *round) record(ctx context.Context, sub *submission) {
	name := sub.spec.Name
	inflight := rd.s.rec.disp.inflight
	// The job that preempted them has reached the engine (or failed to):
	// its victims stop now.
	rd.stopDeferred(ctx, sub.j.ID)
	j := rd.jobs[sub.j.ID]
	if j == nil || j.State != store.Admitted || j.Attempt != sub.j.Attempt {
		delete(inflight, name)
		return
	}
	done := func(*store.Job) { delete(inflight, name) }
	if err := sub.err; err != nil {
		if errors.Is(err, backend.ErrUnavailable) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
			rd.s.log.Warn("dispatch: backend unavailable; retrying next round", "name", name, "err", err)
			delete(inflight, name)
			return
		}
		rd.notStarted(j, sub.b, err, done)
		return
	}
	delete(rd.s.rec.missing, name)
	rd.plan(j, store.Move{To: store.Dispatched, Message: "submitted as " + name}, func(moved *store.Job) {
		done(moved)
		if moved != nil {
			rd.s.metrics.dispatchLat.Observe(max(0, rd.now.Sub(j.Updated).Seconds()))
		}
	})
}

// forgetAfter is the longest an ended attempt stays unforgotten.
const forgetAfter = 2 * time.Minute

// forgetting is an ended attempt for its backend to forget.
type forgetting struct {
	b    backend.Backend
	name string
}

// endedAttempt is an ended attempt waiting to be forgotten.
type endedAttempt struct {
	forgetting
	at time.Time // when the round that saw it end ran
}

// forgetAll forgets ended attempts: all of them once no job is active (none
// pending, admitted, dispatched or running), otherwise those ended
// forgetAfter ago.
// Forgetting is work for the engine (a Kubernetes Job's deletion runs
// through the API server and the garbage collector; Slurm's is a scancel)
// that competes with starting the next jobs, which the engine alone would
// not do meanwhile: deleting each Job as it ended cost a fifth of the
// throughput of a 500-job burst. The forgets run after dispatch, at most
// dispatchParallel at once. An ended attempt not forgotten yet is no
// orphan (cleanOrphans leaves it); after a restart it is one, and is
// forgotten then.
func (rd *round) forgetAll(ctx context.Context) {
	ended := rd.s.rec.ended
	for _, f := range rd.forget {
		ended[f.name] = endedAttempt{forgetting: f, at: rd.now}
	}
	rd.forget = nil
	if len(ended) == 0 || rd.fenced() {
		return
	}
	quiet := true
	for _, id := range rd.order {
		if j := rd.jobs[id]; j != nil && !j.State.Terminal() {
			quiet = false
			break
		}
	}
	var due []forgetting
	for name, e := range ended {
		if quiet || rd.now.Sub(e.at) >= forgetAfter {
			due = append(due, e.forgetting)
			delete(ended, name)
		}
	}
	sem := make(chan struct{}, dispatchParallel)
	var wg sync.WaitGroup
	for _, f := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rd.s.within(ctx, "forget", func(ctx context.Context) error { return f.b.Forget(ctx, f.name) }); err != nil {
				rd.s.log.Warn("forget failed", "name", f.name, "err", err)
			}
			<-sem
		}()
	}
	wg.Wait()
}

// notStarted ends j's attempt, which its backend could not start (err: a
// backend.StartError, or any other refusal that is not ErrUnavailable), as
// the lifecycle decides: the job fails with the backend's words. What the
// backend kept of the attempt is forgotten. done runs once the move is
// written (or refused), as for every recorded Submit.
func (rd *round) notStarted(j *store.Job, b backend.Backend, err error, done func(*store.Job)) {
	why := err.Error()
	var se *backend.StartError
	if errors.As(err, &se) {
		why = se.Err.Error()
	}
	var rec model.Recovery
	if j.Workload != nil {
		rec = j.Workload.Recovery
	}
	mv := lifecycle.Next(rec, j.Restarts, lifecycle.Attempt{Number: j.Attempt, Ending: lifecycle.NotStarted, Why: why})
	m := store.Move{Reason: mv.Reason, Message: mv.Reason}
	switch mv.Kind {
	case lifecycle.Retry:
		m.To, m.NextAttempt, m.CountRestart = store.Pending, true, mv.CountRestart
	case lifecycle.Succeed:
		m.To = store.Succeeded
	default:
		m.To = store.Failed
	}
	name := attemptName(j)
	rd.s.log.Warn("an attempt could not start", "name", name, "err", err, "move", mv.Kind)
	rd.plan(j, m, func(moved *store.Job) {
		done(moved)
		if moved != nil {
			rd.forget = append(rd.forget, forgetting{b: b, name: name})
		}
	})
}
