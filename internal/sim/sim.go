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

// loadJobs copies the workloads, applying the shift, scale, spot and
// checkpoint settings, and maps trace teams onto the fleet's.
func (s *sim) loadJobs(ws []*model.Workload) {
	if len(ws) == 0 {
		return
	}
	first := ws[0].Submitted
	for _, w := range ws {
		if w.Submitted.Before(first) {
			first = w.Submitted
		}
	}
	base := first
	if !s.cfg.Start.IsZero() {
		base = s.cfg.Start
	}
	teams := s.teamMap(ws)
	s.jobs = make([]*job, len(ws))
	copies := make([]model.Workload, len(ws))
	for i, w := range ws {
		c := &copies[i]
		*c = *w
		off := time.Duration(float64(w.Submitted.Sub(first)) / s.cfg.Scale)
		c.Submitted = base.Add(off)
		if !w.Deadline.IsZero() {
			c.Deadline = c.Submitted.Add(w.Deadline.Sub(w.Submitted))
		}
		if t, ok := teams[w.Team]; ok {
			c.Team = t
		}
		if s.cfg.AllowSpot {
			c.Options = slices.Clone(w.Options)
			for k := range c.Options {
				c.Options[k].AllowSpot = true
			}
		}
		if c.CheckpointInterval <= 0 && s.cfg.CheckpointInterval > 0 {
			c.CheckpointInterval = s.cfg.CheckpointInterval
		}
		j := &job{idx: i, w: c, ckpt: int64(c.CheckpointInterval), started: -1}
		s.jobs[i] = j
		s.byID[c.ID] = j
	}
	slices.SortStableFunc(s.jobs, func(a, b *job) int { return a.w.Submitted.Compare(b.w.Submitted) })
	for i, j := range s.jobs {
		j.idx = i
	}
	s.start = ns(s.jobs[0].w.Submitted)
	s.now = s.start
	s.lastReprice = s.start
}

// teamMap maps trace teams the fleet does not list onto the fleet's teams,
// round-robin in sorted order, so a fleet with quotas can replay any trace.
// Nothing is mapped when the fleet has no teams (then quotas are off).
func (s *sim) teamMap(ws []*model.Workload) map[string]string {
	ft := s.v.Fleet.Teams
	if len(ft) == 0 {
		return nil
	}
	names := make([]string, len(ft))
	for i, t := range ft {
		names[i] = t.Name
	}
	slices.Sort(names)
	var unknown []string
	seen := map[string]bool{}
	for _, w := range ws {
		if !seen[w.Team] && !slices.Contains(names, w.Team) {
			seen[w.Team] = true
			unknown = append(unknown, w.Team)
		}
	}
	slices.Sort(unknown)
	m := make(map[string]string, len(unknown))
	for i, t := range unknown {
		m[t] = names[i%len(names)]
	}
	if len(unknown) > 0 {
		s.res.Notes = append(s.res.Notes, fmt.Sprintf("%d trace team(s) not in the fleet were mapped round-robin onto its %d team(s)", len(unknown), len(names)))
	}
	return m
}

func (s *sim) loadFleet() error {
	f := s.v.Fleet
	provIdx := map[model.Provider]int{}
	var provs []model.Provider
	for ci := range f.Clusters {
		cl := &f.Clusters[ci]
		if _, ok := provIdx[cl.Provider]; !ok {
			provIdx[cl.Provider] = -1
			provs = append(provs, cl.Provider)
		}
	}
	slices.Sort(provs)
	for i, p := range provs {
		provIdx[p] = i
	}
	bill := map[engine.PoolRef][2]int{}
	for ci := range s.v.Billing.Clusters {
		for pi := range s.v.Billing.Clusters[ci].Pools {
			bill[engine.PoolRef{Cluster: s.v.Billing.Clusters[ci].Name, Pool: s.v.Billing.Clusters[ci].Pools[pi].Name}] = [2]int{ci, pi}
		}
	}
	for ci := range f.Clusters {
		cl := &f.Clusters[ci]
		for pi := range cl.Pools {
			p := &cl.Pools[pi]
			ref := engine.PoolRef{Cluster: cl.Name, Pool: p.Name}
			free := make([]int, p.Nodes)
			for k := range free {
				free[k] = p.GPUsPerNode
			}
			info := poolInfo{ref: ref, cluster: cl, spec: p, prov: provIdx[cl.Provider], spot: p.PriceClass == model.Spot}
			if info.spot {
				info.spotRate = f.Provider(cl.Provider).SpotPreemptionPerHour
			}
			if b, ok := bill[ref]; ok {
				info.billCluster = &s.v.Billing.Clusters[b[0]]
				info.billPool = &info.billCluster.Pools[b[1]]
			}
			s.byRef[ref] = len(s.pools)
			s.pools = append(s.pools, info)
			s.states = append(s.states, engine.PoolState{Ref: ref, NodeFree: free})
		}
	}
	s.led = ledger.New(s.v.Billing.Contracts)
	at := tm(s.start)
	for ci := range s.v.Billing.Clusters {
		cl := &s.v.Billing.Clusters[ci]
		for pi := range cl.Pools {
			p := &cl.Pools[pi]
			if r := ledger.PoolRate(s.v.Billing, cl, p, at); r.TakeOrPay {
				s.led.AddCommittedPool(ledger.CommittedPool{Provider: cl.Provider, Cluster: cl.Name, Pool: p.Name, Contract: r.Contract, GPUs: p.GPUs(), PricePerGPUHour: r.PerGPUHour})
			}
		}
	}
	s.use = newUsage(provs, s.v.Policy.Window(), s.start)
	for _, cp := range s.led.CommittedPools() {
		if cp.Contract != "" {
			s.use.contractRate[cp.Contract] += float64(cp.GPUs) * cp.PricePerGPUHour
		}
	}
	snap := &engine.Snapshot{Fleet: f, Pools: s.states}
	if s.cfg.reference {
		s.sched = &freshScheduler{snap: snap, pol: s.v.Policy}
	} else {
		s.sched = &liveScheduler{s: engine.NewScheduler(snap, s.v.Policy, at)}
	}
	return nil
}

func (s *sim) loadFailures() error {
	for i := range s.cfg.Failures {
		f := &s.cfg.Failures[i]
		j := s.byID[f.Job]
		switch {
		case j == nil:
			return fmt.Errorf("%w: failures[%d]: no job %q in the trace", ErrConfig, i, f.Job)
		case f.ExitCode == 0 && !f.Lost:
			return fmt.Errorf("%w: failures[%d]: exit code 0 is a success; give the error code the job exits with, or Lost", ErrConfig, i)
		case f.After < 0:
			return fmt.Errorf("%w: failures[%d]: after %s is negative", ErrConfig, i, f.After)
		}
		j.fails = append(j.fails, f)
	}
	return nil
}

// failureOf is the first of j's failures that ends attempt n (nil: none).
func (j *job) failureOf(n int) *Failure {
	for _, f := range j.fails {
		if len(f.Attempts) == 0 || slices.Contains(f.Attempts, n) {
			return f
		}
	}
	return nil
}

func (s *sim) loadOutages() error {
	for i, o := range s.cfg.Outages {
		if (o.Provider == "") == (o.Cluster == "") {
			return fmt.Errorf("%w: outages[%d]: give a provider or a cluster, not both or neither", ErrConfig, i)
		}
		if !o.To.After(o.From) {
			return fmt.Errorf("%w: outages[%d]: to (%s) must be after from (%s)", ErrConfig, i, o.To, o.From)
		}
		out := outage{Outage: o}
		for k, p := range s.pools {
			if (o.Provider != "" && p.cluster.Provider == o.Provider) || p.ref.Cluster == o.Cluster {
				out.pools = append(out.pools, k)
			}
		}
		if !inFleet(s.cfg.Fleet, o) {
			return fmt.Errorf("%w: outages[%d]: the fleet has no provider %q / cluster %q", ErrConfig, i, o.Provider, o.Cluster)
		}
		if len(out.pools) == 0 {
			continue // the policy dropped what the outage hits (single:PROVIDER)
		}
		s.outages = append(s.outages, out)
		s.push(max(ns(o.From), s.start), evOutageStart, int32(len(s.outages)-1), 0)
		s.push(max(ns(o.To), s.start), evOutageEnd, int32(len(s.outages)-1), 0)
	}
	return nil
}

func inFleet(f *model.Fleet, o Outage) bool {
	for _, c := range f.Clusters {
		if c.Provider == o.Provider || c.Name == o.Cluster {
			return true
		}
	}
	return false
}

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

func (s *sim) admit(a engine.Admission, cc *capChecker) error {
	now := tm(s.now)
	j := s.byID[a.Workload]
	if j == nil || j.state != stPending {
		return fmt.Errorf("%w: at %s the engine admitted %q, which is not pending", ErrInvariant, now, a.Workload)
	}
	k, ok := s.byRef[a.Pool]
	if !ok {
		return fmt.Errorf("%w: at %s %q admitted to unknown pool %s", ErrInvariant, now, a.Workload, a.Pool)
	}
	pi := &s.pools[k]
	st := &s.states[k]
	if st.Down {
		return fmt.Errorf("%w: at %s %q admitted to pool %s, which is down", ErrInvariant, now, a.Workload, a.Pool)
	}
	if a.GPUsPerNode > pi.spec.GPUsPerNode || len(a.Nodes) != j.w.NumNodes {
		return fmt.Errorf("%w: at %s %q admitted as %d x %d GPUs on %s (nodes of %d GPUs; job has %d nodes)", ErrInvariant, now, a.Workload, len(a.Nodes), a.GPUsPerNode, a.Pool, pi.spec.GPUsPerNode, j.w.NumNodes)
	}
	if cc != nil {
		if err := cc.check(a, j.w); err != nil {
			return err
		}
	}
	start := s.now
	for _, n := range a.Nodes {
		if n < 0 {
			return fmt.Errorf("%w: at %s %q admitted on node %d of %s", ErrInvariant, now, a.Workload, n, a.Pool)
		}
		for n >= len(st.NodeFree) {
			if len(st.NodeFree) >= max(pi.spec.MaxNodes, pi.spec.Nodes) {
				return fmt.Errorf("%w: at %s %q admitted on node %d of %s, beyond its %d node(s)", ErrInvariant, now, a.Workload, n, a.Pool, max(pi.spec.MaxNodes, pi.spec.Nodes))
			}
			st.NodeFree = append(st.NodeFree, pi.spec.GPUsPerNode)
			pi.added = append(pi.added, s.now+s.scaleDelay)
			start = s.now + s.scaleDelay
		}
		if st.NodeFree[n] < a.GPUsPerNode {
			return fmt.Errorf("%w: at %s %q needs %d GPUs on node %d of %s, which has %d free", ErrInvariant, now, a.Workload, a.GPUsPerNode, n, a.Pool, st.NodeFree[n])
		}
		st.NodeFree[n] -= a.GPUsPerNode
	}
	rate := ledger.Rate{PerGPUHour: a.Cost.BilledPerGPUHour, Contract: a.Contract}
	if pi.billPool != nil {
		rate = ledger.PoolRate(s.v.Billing, pi.billCluster, pi.billPool, now)
	}
	// The engine expects the run to end its expected duration after the
	// round that admitted it; the share cap counts running work up to then.
	expEnd := s.now + int64(j.w.Duration)
	if j.w.Duration <= 0 {
		expEnd = s.now + int64(engine.DefaultDuration)
	}
	j.a = &alloc{pool: k, nodes: a.Nodes, gpn: a.GPUsPerNode, start: start, rate: rate, over: a.OverCap, expEnd: expEnd}
	j.gpus = a.GPUs()
	j.state = stRunning
	j.attempt++
	j.attempts++
	if j.started < 0 {
		j.started = start
	}
	s.res.Admissions++
	if a.OverCap {
		s.res.OverCapAdmissions++
	}
	s.use.accrue(s.now)
	s.use.add(pi.prov, j, +1)
	s.sched.Admitted(engine.Allocation{
		Workload: j.w.ID, Team: j.w.Team, Priority: j.w.Priority, Pool: a.Pool,
		Nodes: a.Nodes, GPUsPerNode: a.GPUsPerNode, GPU: a.GPU, Borrowed: a.Borrowed,
		Started: tm(start), CheckpointInterval: j.w.CheckpointInterval, ExpectedEnd: tm(j.a.expEnd),
	})
	if s.cfg.RecordAttempts {
		j.log = append(j.log, AttemptEnd{Attempt: j.attempts, Cluster: pi.ref.Cluster, Region: pi.cluster.Region})
	}
	if len(j.w.AvoidRegions) > 0 {
		// The avoidance was for this attempt only (as in the server).
		w := *j.w
		w.AvoidRegions = nil
		j.w = &w
	}
	end := start + int64(j.w.Duration)
	endKind := evComplete
	j.failing = nil
	if f := j.failureOf(j.attempts); f != nil {
		if at := start + int64(f.After); at < end {
			end, endKind, j.failing = at, evFail, f
		}
	}
	if pi.spot && pi.spotRate > 0 {
		lambda := pi.spotRate * float64(len(a.Nodes)) // per hour
		at := start + int64(s.rng.ExpFloat64()/lambda*float64(time.Hour))
		if at < end {
			s.push(at, evSpot, int32(j.idx), j.attempt)
			return nil
		}
	}
	s.push(end, endKind, int32(j.idx), j.attempt)
	return nil
}

// complete ends a job's attempt that ran its remaining work.
func (s *sim) complete(j *job) {
	s.ended(j, "SUCCEEDED", lifecycle.Next(j.w.Recovery, j.restarts, lifecycle.Attempt{Number: j.attempts, Ending: lifecycle.Succeeded}).Reason)
	a := j.a
	s.record(j, a.start, s.now, false)
	s.release(j)
	j.state = stDone
	j.done = s.now
	j.w.Duration = 0
	s.res.Completed++
	s.sched.Release(j.w.ID)
	s.progress()
}

// ended notes how j's current attempt ended in its log.
func (s *sim) ended(j *job, outcome, reason string) {
	if n := len(j.log); n > 0 {
		j.log[n-1].Outcome, j.log[n-1].Reason = outcome, reason
	}
}

// interrupt ends a job's attempt that was lost or preempted: the lifecycle
// says what its next attempt must avoid; the job is pending again.
func (s *sim) interrupt(j *job, ending lifecycle.Ending, why string) {
	region := s.pools[j.a.pool].cluster.Region
	mv := lifecycle.Next(j.w.Recovery, j.restarts, lifecycle.Attempt{Number: j.attempts, Region: region, Ending: ending, Why: why})
	s.ended(j, "RETRIED", mv.Reason)
	s.stop(j, false)
	if mv.AvoidRegion != "" {
		// A new copy: the engine keys what it caches by the workload.
		w := *j.w
		w.AvoidRegions = []string{mv.AvoidRegion}
		j.w = &w
	}
	j.state = stPending
	s.enqueue(j)
}

// fail ends a job's attempt early as its Config.Failures entry says: lost
// (retried), or exited with an error (the lifecycle restarts it or gives
// up, as the server's reconciler would).
func (s *sim) fail(j *job) {
	if j.failing.Lost {
		s.interrupt(j, lifecycle.Lost, fmt.Sprintf("Lost: attempt %d vanished from cluster %s", j.attempts, s.pools[j.a.pool].ref.Cluster))
		s.sched.Release(j.w.ID)
		return
	}
	code := j.failing.ExitCode
	mv := lifecycle.Next(j.w.Recovery, j.restarts, lifecycle.Attempt{Number: j.attempts, Ending: lifecycle.Failed, ExitCode: &code})
	s.sched.Release(j.w.ID)
	if mv.Kind == lifecycle.Retry {
		s.ended(j, "RETRIED", mv.Reason)
		if mv.CountRestart {
			j.restarts++
		}
		s.stop(j, true)
		return
	}
	s.ended(j, "FAILED", mv.Reason)
	s.stop(j, false)
	j.state = stFailed
	j.done = s.now
	j.reason, j.detail = engine.Reason("Failed"), mv.Reason
	s.res.Failed++
	s.progress()
}

// stop ends a job's attempt early (preemption, outage). The work saved by
// its last checkpoint is kept; the rest is lost. The job is pending again.
func (s *sim) stop(j *job, requeue bool) {
	a := j.a
	ran := max(0, s.now-a.start)
	saved := int64(0)
	if j.ckpt > 0 {
		saved = ran / j.ckpt * j.ckpt
	}
	saved = min(saved, int64(j.w.Duration))
	if ran > 0 {
		s.record(j, a.start, a.start+saved, false)
		s.record(j, a.start+saved, a.start+ran, true)
	}
	s.release(j)
	j.w.Duration -= time.Duration(saved)
	j.attempt++
	if requeue {
		j.state = stPending
		s.enqueue(j)
	}
}

func (s *sim) release(j *job) {
	a := j.a
	st := &s.states[a.pool]
	for _, n := range a.nodes {
		st.NodeFree[n] += a.gpn
	}
	s.use.accrue(s.now)
	s.use.add(s.pools[a.pool].prov, j, -1)
	j.a = nil
}

func (s *sim) record(j *job, from, to int64, lost bool) {
	if to <= from {
		return
	}
	a := j.a
	pi := &s.pools[a.pool]
	s.led.Record(ledger.Interval{
		Workload: j.w.ID, Team: j.w.Team, Provider: pi.cluster.Provider,
		Cluster: pi.ref.Cluster, Pool: pi.ref.Pool, PriceClass: priceClass(pi),
		Contract: a.rate.Contract, GPUs: j.gpus, Start: tm(from), End: tm(to),
		BilledPerGPUHour: a.rate.PerGPUHour, TakeOrPay: a.rate.TakeOrPay, Lost: lost,
	})
}

// priceClass is the class the ledger books a pool under: the billing
// fleet's (a "cheapest" run schedules committed pools as on-demand, but
// they are still committed).
func priceClass(pi *poolInfo) model.PriceClass {
	if pi.billPool != nil {
		return pi.billPool.PriceClass
	}
	return pi.spec.PriceClass
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

// capChecker replays the engine's provider-share test over one round's
// admissions, from the same usage the round was given.
type capChecker struct {
	s     *sim
	prov  map[model.Provider]float64
	total float64
	// ahead and aheadTotal count only what running work and this round's
	// admissions are expected to use (the engine's view of the window ahead).
	ahead      map[model.Provider]float64
	aheadTotal float64
	floor      float64
	// future is what each running job is still expected to use in the
	// window; freed holds what preemptions free, per admission they are for.
	future map[string]providerHours
	freed  map[string][]providerHours
}

type providerHours struct {
	p model.Provider
	h float64
}

func (s *sim) newCapChecker() *capChecker {
	c := &capChecker{s: s, prov: s.use.providerMap(), ahead: map[model.Provider]float64{}, future: map[string]providerHours{}, freed: map[string][]providerHours{}}
	for _, p := range s.use.provs {
		c.total += c.prov[p]
	}
	for _, j := range s.jobs {
		if j.state != stRunning || j.a == nil {
			continue
		}
		left := s.v.Policy.WindowHours(time.Duration(j.a.expEnd - s.now).Hours())
		ph := providerHours{s.pools[j.a.pool].cluster.Provider, max(0, left) * float64(j.gpus)}
		c.future[j.w.ID] = ph
		c.prov[ph.p] += ph.h
		c.total += ph.h
		c.ahead[ph.p] += ph.h
		c.aheadTotal += ph.h
	}
	c.floor = s.v.Policy.ShareFloor(s.v.Fleet)
	return c
}

// preempted notes that a victim's expected use leaves the window when the
// admission it makes room for is placed (the engine drops it then).
func (c *capChecker) preempted(p engine.Preemption) {
	if ph, ok := c.future[p.Workload]; ok {
		c.freed[p.For] = append(c.freed[p.For], ph)
	}
}

func (c *capChecker) check(a engine.Admission, w *model.Workload) error {
	pol := c.s.v.Policy
	for _, ph := range c.freed[a.Workload] {
		c.prov[ph.p] -= ph.h
		c.total -= ph.h
		c.ahead[ph.p] -= ph.h
		c.aheadTotal -= ph.h
	}
	h := w.Duration.Hours()
	if w.Duration <= 0 {
		h = engine.DefaultDuration.Hours()
	}
	add := float64(a.GPUs()) * pol.WindowHours(h)
	if pol.MaxProviderShare > 0 && !a.OverCap {
		share := math.Max((c.prov[a.Provider]+add)/math.Max(c.total+add, c.floor),
			(c.ahead[a.Provider]+add)/math.Max(c.aheadTotal+add, c.floor))
		if share > pol.MaxProviderShare+1e-9 {
			return fmt.Errorf("%w: at %s %q admitted on %s takes it to %.4f of GPU-hours, over the cap %.4f, without OverCap", ErrInvariant, tm(c.s.now), a.Workload, a.Provider, share, pol.MaxProviderShare)
		}
	}
	c.prov[a.Provider] += add
	c.total += add
	c.ahead[a.Provider] += add
	c.aheadTotal += add
	return nil
}

func sortedBy[T any](xs []T, key func(T) string) {
	slices.SortFunc(xs, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
