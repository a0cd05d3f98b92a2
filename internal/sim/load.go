package sim

import (
	"fmt"
	"slices"
	"time"

	"gpubroker/internal/engine"
	"gpubroker/internal/ledger"
	"gpubroker/internal/model"
)

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
