package sim

import (
	"math"
	"slices"
	"time"

	"gpubroker/internal/ledger"
	"gpubroker/internal/sim/report"
)

const day = 24 * time.Hour

// finish turns the run's state and ledger into the Result.
func (s *sim) finish() {
	r := s.res
	r.Ledger = s.led
	end := s.start
	for _, j := range s.jobs {
		end = max(end, ns(j.w.Submitted))
		if j.state == stDone {
			end = max(end, j.done)
		}
	}
	for _, iv := range s.led.Intervals() {
		end = max(end, ns(iv.End))
	}
	r.Start, r.End = tm(s.start), tm(end)
	from, to := r.Start, r.End
	if len(s.jobs) == 0 {
		return
	}

	// Jobs: outcomes, never-runnable, JCT, queueing, deadlines.
	var jct, queue []float64
	jctBy, queueBy := map[string][]float64{}, map[string][]float64{}
	r.Outcomes = make([]Outcome, len(s.jobs))
	for i, j := range s.jobs {
		gpus := j.gpus
		if gpus == 0 && len(j.w.Options) > 0 {
			gpus = j.w.GPUs(0)
		}
		o := Outcome{Workload: j.w.ID, GPUs: gpus, Submitted: j.w.Submitted, Attempts: j.attempts}
		sub := ns(j.w.Submitted)
		bucket := report.SizeBucket(gpus)
		if j.started >= 0 {
			o.FirstStart = tm(j.started)
			q := float64(j.started-sub) / 1e9
			queue = append(queue, q)
			queueBy[bucket] = append(queueBy[bucket], q)
		}
		if s.cfg.RecordAttempts {
			r.AttemptLogs = append(r.AttemptLogs, j.log)
		}
		switch j.state {
		case stDone:
			o.Completed, o.Finished = true, tm(j.done)
			c := float64(j.done-sub) / 1e9
			jct = append(jct, c)
			jctBy[bucket] = append(jctBy[bucket], c)
		case stFailed:
			o.Finished, o.Reason = tm(j.done), j.detail
		default:
			j.state = stNever
			reason := string(j.reason)
			if reason == "" {
				reason = "NeverScheduled"
			}
			o.Reason = reason
			r.NeverRunnable = append(r.NeverRunnable, NeverRunnable{Workload: j.w.ID, Reason: reason, Detail: j.detail})
			s.progress()
		}
		if !j.w.Deadline.IsZero() {
			r.WithDeadline++
			if j.state != stDone || j.done > ns(j.w.Deadline) {
				r.DeadlinesMissed++
			}
		}
		r.Outcomes[i] = o
	}
	sortedBy(r.NeverRunnable, func(n NeverRunnable) string { return n.Workload })
	r.JCT, r.Queueing = report.Summarize(jct), report.Summarize(queue)
	r.JCTBySize, r.QueueingBySize = map[string]report.Dist{}, map[string]report.Dist{}
	for _, b := range report.SizeBuckets {
		if len(jctBy[b]) > 0 {
			r.JCTBySize[b] = report.Summarize(jctBy[b])
		}
		if len(queueBy[b]) > 0 {
			r.QueueingBySize[b] = report.Summarize(queueBy[b])
		}
	}

	// Money and concentration.
	r.Summary = s.led.Summarize(from, to)
	r.CostOverTime = s.led.CostSeries(from, to, day)
	r.ShareWindow = s.v.Policy.Window()
	r.ShareCap = s.v.Policy.MaxProviderShare
	r.ProviderShare = s.led.ShareSeries(from, to, day, r.ShareWindow)
	floor := s.v.Policy.ShareFloor(s.v.Fleet)
	for _, p := range r.ProviderShare {
		total := 0.0
		for _, sh := range p.Shares {
			total += sh.GPUHours
		}
		for _, sh := range p.Shares {
			if d := math.Max(total, floor); d > 0 {
				r.MaxShare = math.Max(r.MaxShare, sh.GPUHours/d)
			}
		}
	}
	r.HHI = s.led.ProviderShare(from, to).HHI
	r.Commitments = s.commitments(from, to)
	r.Utilisation = s.utilisation(from, to)
}

func (s *sim) commitments(from, to time.Time) []Commitment {
	used := map[[2]string]float64{}
	for _, iv := range s.led.Intervals() {
		if iv.TakeOrPay {
			used[[2]string{iv.Cluster, iv.Pool}] += ledger.OverlapHours(iv.Start, iv.End, from, to) * float64(iv.GPUs)
		}
	}
	span := to.Sub(from).Hours()
	var out []Commitment
	for _, c := range s.led.Contracts() {
		series := s.led.BurnSeries(c.Name, from, to, day)
		cm := Commitment{Contract: c.Name, Provider: c.Provider, Kind: c.Kind, TakeOrPay: c.TakeOrPay, Series: series}
		if n := len(series); n > 0 {
			cm.PlanUSD, cm.SpentUSD, cm.ShortfallUSD = series[n-1].PlanUSD, series[n-1].SpentUSD, series[n-1].ShortfallUSD
		}
		for _, p := range s.led.CommittedPools() {
			if p.Contract != c.Name {
				continue
			}
			inst := float64(p.GPUs) * span
			idle := max(0, inst-used[[2]string{p.Cluster, p.Pool}])
			cm.CommittedGPUHours += inst
			cm.IdleGPUHours += idle
			cm.WastedUSD += idle * p.PricePerGPUHour
		}
		out = append(out, cm)
	}
	return out
}

func (s *sim) utilisation(from, to time.Time) []ClusterUse {
	used := map[string]float64{}
	for _, a := range s.res.Summary.ByCluster {
		used[a.Key] = a.GPUHours
	}
	byCluster := map[string]*ClusterUse{}
	var names []string
	for k := range s.pools {
		pi := &s.pools[k]
		cu := byCluster[pi.ref.Cluster]
		if cu == nil {
			cu = &ClusterUse{Cluster: pi.ref.Cluster, Provider: pi.cluster.Provider}
			byCluster[pi.ref.Cluster] = cu
			names = append(names, pi.ref.Cluster)
		}
		g := float64(pi.spec.GPUsPerNode)
		cu.CapacityGPUHours += g * float64(pi.spec.Nodes) * to.Sub(from).Hours()
		for _, at := range pi.added {
			cu.CapacityGPUHours += g * ledger.OverlapHours(tm(at), to, from, to)
		}
	}
	slices.Sort(names)
	out := make([]ClusterUse, 0, len(names))
	for _, n := range names {
		cu := byCluster[n]
		cu.UsedGPUHours = used[n]
		if cu.CapacityGPUHours > 0 {
			cu.Fraction = math.Min(1, cu.UsedGPUHours/cu.CapacityGPUHours)
		}
		out = append(out, *cu)
	}
	return out
}

// PolicyRun fills the report's entry for this run.
func (r *Result) PolicyRun() report.PolicyRun {
	pr := report.PolicyRun{
		Name:              r.Policy,
		CostUSD:           r.Summary.TotalUSD,
		CostByProvider:    amounts(r.Summary.ByProvider),
		CostByPriceClass:  amounts(r.Summary.ByPriceClass),
		CostByContract:    amounts(r.Summary.ByContract),
		CostByTeam:        amounts(r.Summary.ByTeam),
		GPUHoursRun:       r.Summary.GPUHoursRun,
		GPUHoursBilled:    r.Summary.GPUHoursBilled,
		GPUHoursLost:      r.Summary.GPUHoursLost,
		ProviderShareCap:  r.ShareCap,
		PeakCapShare:      r.MaxShare,
		JCT:               r.JCT,
		JCTBySize:         r.JCTBySize,
		Queueing:          r.Queueing,
		QueueingBySize:    r.QueueingBySize,
		Utilisation:       map[string]float64{},
		DeadlinesMissed:   r.DeadlinesMissed,
		WithDeadline:      r.WithDeadline,
		JobsCompleted:     r.Completed,
		NeverRunnable:     map[string]int{},
		Events:            r.Events,
		Admissions:        r.Admissions,
		OverCapAdmissions: r.OverCapAdmissions,
		EnginePreemptions: r.EnginePreemptions,
		SpotPreemptions:   r.SpotPreemptions,
		OutageKills:       r.OutageKills,
	}
	for _, c := range r.Commitments {
		rc := report.Commitment{
			Contract: c.Contract, Provider: string(c.Provider), TakeOrPay: c.TakeOrPay,
			CommittedUSD: c.PlanUSD, UsedUSD: c.SpentUSD, WastedUSD: c.WastedUSD, ShortfallUSD: c.ShortfallUSD,
		}
		for _, b := range c.Series {
			rc.Series = append(rc.Series, report.BurnPoint{Time: b.At, PlannedUSD: b.PlanUSD, ActualUSD: b.SpentUSD})
		}
		pr.Commitments = append(pr.Commitments, rc)
	}
	for _, p := range r.ProviderShare {
		sp := report.SharePoint{Time: p.At, Share: map[string]float64{}, HHI: p.HHI}
		for _, sh := range p.Shares {
			sp.Share[string(sh.Provider)] = sh.Fraction
		}
		pr.ProviderShare = append(pr.ProviderShare, sp)
	}
	for _, c := range r.CostOverTime {
		pr.CostOverTime = append(pr.CostOverTime, report.CostPoint{Time: c.At, ByProvider: amounts(c.ByProvider)})
	}
	for _, u := range r.Utilisation {
		pr.Utilisation[u.Cluster] = u.Fraction
	}
	for _, n := range r.NeverRunnable {
		pr.NeverRunnable[n.Reason]++
	}
	return pr
}

func amounts(as []ledger.Amount) map[string]float64 {
	m := make(map[string]float64, len(as))
	for _, a := range as {
		if a.Key == "" {
			continue
		}
		m[a.Key] = a.USD
	}
	return m
}

// NewReport gathers runs of the same trace, fleet, seed and scale into one
// report, policies in the order given.
func NewReport(traceName, fleetName string, seed int64, scale float64, runs []*Result) report.Report {
	rep := report.Report{Trace: traceName, Fleet: fleetName, Seed: seed, Scale: scale}
	for i, r := range runs {
		if i == 0 || r.Start.Before(rep.Start) {
			rep.Start = r.Start
		}
		if r.End.After(rep.End) {
			rep.End = r.End
		}
		rep.Jobs = max(rep.Jobs, r.Jobs)
		rep.Policies = append(rep.Policies, r.PolicyRun())
	}
	return rep
}
