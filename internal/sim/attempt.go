package sim

import (
	"fmt"
	"time"

	"gpubroker/internal/engine"
	"gpubroker/internal/ledger"
	"gpubroker/internal/lifecycle"
	"gpubroker/internal/model"
)

// admit applies one of the engine's admissions: the nodes it names lose
// their GPUs, the attempt starts (after any scale-up delay), and its end
// (completion, failure or spot preemption) is scheduled.
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
