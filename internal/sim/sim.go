package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"gpubroker/internal/engine"
	"gpubroker/internal/ledger"
	"gpubroker/internal/lifecycle"
	"gpubroker/internal/model"
)

type jobState uint8

const (
	stWaiting jobState = iota // not yet arrived
	stPending                 // in the pending list
	stParked                  // waiting for a reason only a fleet change can lift
	stRunning
	stDone
	stFailed // ended FAILED: the recovery policy gave up
	stNever
)

type job struct {
	idx   int
	w     *model.Workload // the simulator's copy; Duration is the work left
	state jobState
	// attempt numbers attempts; events of an older attempt are stale.
	attempt  int32
	attempts int
	gpus     int
	ckpt     int64 // checkpoint interval, ns (0: none)
	started  int64 // first start, ns (-1: never)
	done     int64 // finish, ns
	listed   bool  // on s.pending
	isFresh  bool  // on s.fresh
	reason   engine.Reason
	detail   string
	a        *alloc
	// restarts counts restarts after errors (max_restarts_on_errors).
	restarts int
	// fails are the job's Config.Failures entries; failing is the one
	// that ends the current attempt (nil: none).
	fails   []*Failure
	failing *Failure
	// log is every attempt (Config.RecordAttempts).
	log []AttemptEnd
}

type alloc struct {
	pool  int
	nodes []int
	gpn   int
	start int64 // when the work starts (after any scale-up delay)
	rate  ledger.Rate
	over  bool
	// expEnd is when the engine expects the attempt to end, ns.
	expEnd int64
}

// poolInfo is what the simulator knows of one pool of the scheduled fleet.
type poolInfo struct {
	ref     engine.PoolRef
	cluster *model.Cluster
	spec    *model.Pool
	// billing is the same pool in the fleet the ledger prices by (nil when
	// that fleet lacks it, which ApplyPolicy never makes).
	billCluster *model.Cluster
	billPool    *model.Pool
	prov        int
	downCount   int
	spot        bool
	spotRate    float64 // preemptions per node-hour
	// capacity bookkeeping for utilisation: GPU-hours of installed nodes.
	added []int64 // when each node beyond Nodes became usable
}

type sim struct {
	cfg     Config
	v       Variant
	start   int64
	now     int64
	rng     *rand.Rand
	jobs    []*job
	byID    map[string]*job
	pending []*job
	parked  []*job
	ev      eventHeap
	seq     uint64
	nextArr int

	states []engine.PoolState // per pool, sim-owned; NodeFree is the truth
	pools  []poolInfo
	byRef  map[engine.PoolRef]int
	sched  scheduler
	use    *usage
	led    *ledger.Ledger
	res    *Result

	interval     int64
	scaleDelay   int64
	roundPending bool
	lastRound    int64
	idleRetries  int
	// A round looks at every pending job only when capacity may have been
	// freed (a completion, a preemption, an outage) or an hour has passed
	// (share windows and budget months move on); otherwise jobs that waited
	// last round would wait again, and only the fresh ones are offered.
	loosened      bool
	lastFullRound int64
	fresh         []*job
	lastReprice   int64
	finished      int
	lastProgress  int
	outages       []outage
}

type outage struct {
	Outage
	pools []int
}

// Run replays workloads (sorted by Submitted, as trace.Result gives them)
// through the fleet under cfg.Policy. The workloads are not modified.
func Run(cfg Config, workloads []*model.Workload) (*Result, error) {
	wall := time.Now()
	if cfg.Seed == 0 {
		return nil, fmt.Errorf("%w: Seed is required (any non-zero value); the same seed replays the same run", ErrConfig)
	}
	if cfg.Fleet == nil {
		return nil, fmt.Errorf("%w: Fleet is required", ErrConfig)
	}
	if cfg.Policy == "" {
		cfg.Policy = "gpubroker"
	}
	v, err := ApplyPolicy(cfg.Fleet, cfg.Policy)
	if err != nil {
		return nil, err
	}
	if cfg.RoundInterval <= 0 {
		cfg.RoundInterval = DefaultRoundInterval
	}
	if cfg.ScaleDelay == 0 {
		cfg.ScaleDelay = DefaultScaleDelay
	} else if cfg.ScaleDelay < 0 {
		cfg.ScaleDelay = 0
	}
	if cfg.Scale == 0 {
		cfg.Scale = 1
	}
	if cfg.Scale < 0 || math.IsNaN(cfg.Scale) || math.IsInf(cfg.Scale, 0) {
		return nil, fmt.Errorf("%w: Scale %v must be above 0", ErrConfig, cfg.Scale)
	}
	s := &sim{
		cfg: cfg, v: v,
		rng:           rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		byID:          make(map[string]*job, len(workloads)),
		byRef:         map[engine.PoolRef]int{},
		interval:      int64(cfg.RoundInterval),
		scaleDelay:    int64(cfg.ScaleDelay),
		lastRound:     math.MinInt64 / 2,
		lastFullRound: math.MinInt64 / 2,
		res:           &Result{Policy: cfg.Policy, Seed: cfg.Seed, Jobs: len(workloads)},
	}
	s.loadJobs(workloads)
	if err := s.loadFleet(); err != nil {
		return nil, err
	}
	if err := s.loadOutages(); err != nil {
		return nil, err
	}
	if err := s.loadFailures(); err != nil {
		return nil, err
	}
	if err := s.loop(); err != nil {
		return nil, err
	}
	s.finish()
	s.res.Wall = time.Since(wall)
	return s.res, nil
}

func ns(t time.Time) int64    { return t.UnixNano() }
func tm(n int64) time.Time    { return time.Unix(0, n).UTC() }
func hoursOf(d int64) float64 { return float64(d) / float64(time.Hour) }

func (s *sim) push(at int64, k evKind, id, attempt int32) {
	s.seq++
	s.ev.push(event{at: at, seq: s.seq, kind: k, id: id, attempt: attempt})
}

// changed asks for a round as soon as the round interval allows.
func (s *sim) changed() {
	if s.roundPending {
		return
	}
	s.roundPending = true
	s.push(max(s.now, s.lastRound+s.interval), evRound, 0, 0)
}

// maxIdleRetries bounds the rounds tried, a day apart, when work waits and
// nothing else will happen (a share window or a budget month rolling on may
// still let it run).
const maxIdleRetries = 40

func (s *sim) loop() error {
	for {
		var e event
		haveArr := s.nextArr < len(s.jobs)
		switch {
		case haveArr && (s.ev.len() == 0 || ns(s.jobs[s.nextArr].w.Submitted) <= s.ev.top().at):
			j := s.jobs[s.nextArr]
			s.nextArr++
			e = event{at: ns(j.w.Submitted), kind: evArrival, id: int32(j.idx)}
		case s.ev.len() > 0:
			e = s.ev.pop()
		default:
			if (len(s.pending) > 0) && s.idleRetries < maxIdleRetries && s.v.Policy.MaxProviderShare+s.teamBudgets() > 0 {
				s.idleRetries++
				s.roundPending = true
				s.push(s.now+int64(24*time.Hour), evRound, 0, 0)
				continue
			}
			return nil
		}
		s.now = e.at
		s.res.Events++
		if err := s.handle(e); err != nil {
			return err
		}
	}
}

func (s *sim) teamBudgets() float64 {
	b := 0.0
	for _, t := range s.v.Fleet.Teams {
		b += t.MonthlyBudgetUSD
	}
	return b
}

func (s *sim) handle(e event) error {
	switch e.kind {
	case evArrival:
		j := s.jobs[e.id]
		j.state = stPending
		s.enqueue(j)
		s.changed()
	case evRound:
		s.roundPending = false
		return s.round()
	case evComplete:
		j := s.jobs[e.id]
		if j.attempt != e.attempt || j.state != stRunning {
			return nil
		}
		s.complete(j)
		s.loosened = true
		s.changed()
	case evSpot:
		j := s.jobs[e.id]
		if j.attempt != e.attempt || j.state != stRunning {
			return nil
		}
		s.res.SpotPreemptions++
		s.interrupt(j, lifecycle.Preempted, "Preempted: the spot capacity was taken back")
		s.sched.Release(j.w.ID)
		s.loosened = true
		s.changed()
	case evFail:
		j := s.jobs[e.id]
		if j.attempt != e.attempt || j.state != stRunning {
			return nil
		}
		s.fail(j)
		s.loosened = true
		s.changed()
	case evOutageStart:
		o := &s.outages[e.id]
		for _, k := range o.pools {
			s.pools[k].downCount++
			if s.pools[k].downCount == 1 {
				s.states[k].Down = true
				s.sched.SetPoolDown(s.pools[k].ref, true)
			}
		}
		for _, j := range s.jobs {
			if j.state == stRunning && s.pools[j.a.pool].downCount > 0 {
				s.res.OutageKills++
				s.interrupt(j, lifecycle.Lost, "Lost: outage of cluster "+s.pools[j.a.pool].ref.Cluster)
				s.sched.Release(j.w.ID)
			}
		}
		s.loosened = true
		s.changed()
	case evOutageEnd:
		o := &s.outages[e.id]
		for _, k := range o.pools {
			s.pools[k].downCount--
			if s.pools[k].downCount == 0 {
				s.states[k].Down = false
				s.sched.SetPoolDown(s.pools[k].ref, false)
			}
		}
		s.unpark()
		s.loosened = true
		s.changed()
	}
	return nil
}

// enqueue puts a pending job on the pending list unless it is there.
func (s *sim) enqueue(j *job) {
	if !j.listed {
		j.listed = true
		s.pending = append(s.pending, j)
	}
	if !j.isFresh {
		j.isFresh = true
		s.fresh = append(s.fresh, j)
	}
}

func (s *sim) unpark() {
	for _, j := range s.parked {
		if j.state == stParked {
			j.state = stPending
			s.enqueue(j)
		}
	}
	s.parked = s.parked[:0]
}

// round runs one scheduling round and applies its decisions.
func (s *sim) round() error {
	s.res.Rounds++
	s.lastRound = s.now
	now := tm(s.now)
	s.use.accrue(s.now)
	s.sched.SetUsage(s.use.providerMap(), s.use.teamSpend)
	if s.now-s.lastReprice >= int64(time.Hour) {
		s.lastReprice = s.now
		s.sched.Reprice(now, s.use.contractSpent)
	}
	// Compact the pending list, keeping arrival-then-requeue order.
	live := s.pending[:0]
	for _, j := range s.pending {
		if j.state == stPending {
			live = append(live, j)
		} else {
			j.listed = false
		}
	}
	clear(s.pending[len(live):])
	s.pending = live
	if len(s.pending) == 0 {
		return nil
	}
	offer := s.pending
	if !s.loosened && s.now-s.lastFullRound < int64(time.Hour) && s.lastFullRound > math.MinInt64/2 {
		offer = offer[:0:0]
		for _, j := range s.fresh {
			if j.state == stPending {
				offer = append(offer, j)
			}
		}
	} else {
		s.loosened = false
		s.lastFullRound = s.now
	}
	for _, j := range s.fresh {
		j.isFresh = false
	}
	s.fresh = s.fresh[:0]
	if len(offer) == 0 {
		return nil
	}
	ws := make([]*model.Workload, len(offer))
	for i, j := range offer {
		ws[i] = j.w
	}
	var capCheck *capChecker
	if s.cfg.CheckInvariants {
		capCheck = s.newCapChecker()
	}
	d := s.sched.Schedule(ws, now)
	for _, p := range d.Preempt {
		j := s.byID[p.Workload]
		if j == nil || j.state != stRunning {
			return fmt.Errorf("%w: at %s the engine preempted %q, which is not running", ErrInvariant, now, p.Workload)
		}
		if capCheck != nil {
			capCheck.preempted(p)
		}
		s.res.EnginePreemptions++
		s.interrupt(j, lifecycle.Preempted, "Preempted: "+p.Reason)
		s.sched.Preempted(j.w.ID)
	}
	for _, a := range d.Admit {
		if err := s.admit(a, capCheck); err != nil {
			return err
		}
	}
	if len(d.Admit) > 0 {
		s.idleRetries = 0
	}
	for _, w := range d.Wait {
		j := s.byID[w.Workload]
		if j == nil || j.state != stPending {
			continue
		}
		j.reason, j.detail = w.Reason, w.Detail
		if static(w.Reason) {
			j.state = stParked
			s.parked = append(s.parked, j)
		}
	}
	if len(d.Preempt) > 0 {
		// Preempted work is pending again; the next round may place it.
		s.changed()
	}
	return nil
}

// static reports reasons that no completion, preemption or passing of time
// can lift; only a change to the fleet (an outage ending) may.
func static(r engine.Reason) bool {
	switch r {
	case engine.ReasonNoCapacity, engine.ReasonQuota, engine.ReasonBudget, engine.ReasonProviderCap:
		return false
	}
	return true
}

func (s *sim) progress() {
	s.finished++
	if s.cfg.Progress == nil {
		return
	}
	total := len(s.jobs)
	if step := max(1, total/200); s.finished-s.lastProgress >= step || s.finished == total {
		s.lastProgress = s.finished
		s.cfg.Progress(s.finished, total)
	}
}

func sortedBy[T any](xs []T, key func(T) string) {
	slices.SortFunc(xs, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
