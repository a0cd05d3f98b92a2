package engine

import (
	"math"
	"time"

	"gpubroker/internal/ledger"
	"gpubroker/internal/model"
)

// DefaultDuration is the run time assumed for a workload that states none;
// it sizes cost, budget and provider-share estimates.
const DefaultDuration = time.Hour

// restartOverhead is the work a preempted job loses besides the time since
// its last checkpoint: rescheduling, image pull, loading the checkpoint.
const restartOverhead = 0.1 // hours

// poolCost is the part of a pool's cost that depends only on the round's
// snapshot, not on the workload.
type poolCost struct {
	list     float64
	discount float64
	credit   float64
	shadow   float64
	// billed is list - discount - credit: what one more GPU-hour is paid.
	billed   float64
	contract string
	// spotRate is the expected preemptions per node-hour (0 off spot).
	spotRate float64
}

// shadowFraction is the share of billed cost that is free in effect because
// a take-or-pay spend commitment is behind plan: the shortfall will be paid
// anyway, so using capacity now costs nothing extra. It ramps from 0 (on
// plan) to 1 (a month's worth of spend behind).
func shadowFraction(c *model.Contract, spent float64, now time.Time) float64 {
	if c.Kind != model.SpendCommitment || !c.TakeOrPay || now.Before(c.Start) || !now.Before(c.End) {
		return 0
	}
	behind := ledger.Plan(*c, now) - spent
	if behind <= 0 {
		return 0
	}
	months := c.End.Sub(c.Start).Hours() / (24 * 365.25 / 12)
	monthly := c.SpendUSD / math.Max(months, 1)
	return math.Min(1, behind/monthly)
}

// computePoolCost prices one pool for this round by ledger.PoolPrice, the
// one pricing rule, and adds what only ranking needs: the shadow discount
// and the spot preemption rate.
func computePoolCost(f *model.Fleet, cl *model.Cluster, p *model.Pool, spent map[string]float64, now time.Time) poolCost {
	pr := ledger.PoolPrice(f, cl, p, now)
	pc := poolCost{list: pr.List, discount: pr.Discount, contract: pr.Contract, billed: pr.Marginal()}
	if pr.TakeOrPay {
		// Paid for whether used or not: using it costs nothing more.
		pc.credit = pr.PerGPUHour
	}
	if pr.Commitment != nil && p.PriceClass != model.Spot {
		// Spot capacity gets no shadow discount: it can be taken back, so
		// it is no way to plan a commitment's burn. This also keeps the
		// effective cost of spot pools a fixed multiple of their billed
		// price, which the per-class index relies on.
		pc.shadow = pc.billed * shadowFraction(pr.Commitment, spent[pr.Contract], now)
	}
	if p.PriceClass == model.Spot {
		pc.spotRate = f.Provider(cl.Provider).SpotPreemptionPerHour
	}
	return pc
}

// profile is what of a workload its cost depends on beyond the pool.
type profile struct {
	nodes      int
	gpus       int
	hours      float64 // expected run time
	riskHours  float64 // work lost per preemption, plus restart overhead
	dataRegion string
	dataGB     float64
}

func profileOf(w *model.Workload, opt int) profile {
	dur := w.Duration
	if dur <= 0 {
		dur = DefaultDuration
	}
	risk := w.CheckpointInterval / 2
	if w.CheckpointInterval <= 0 || w.CheckpointInterval > dur {
		risk = dur / 2
	}
	pr := profile{
		nodes:     w.NumNodes,
		gpus:      w.GPUs(opt),
		hours:     dur.Hours(),
		riskHours: risk.Hours() + restartOverhead,
	}
	if w.DataRegion != "" && w.DataGB > 0 {
		pr.dataRegion = w.DataRegion
		pr.dataGB = w.DataGB
	}
	return pr
}

// redo is the expected fraction of a run's work done again because of spot
// preemptions: per hour run, rate x nodes preemptions (losing any node of a
// gang loses the whole gang's work), each losing riskHours. Not capped: past
// 1 the job redoes more than it progresses, and its cost should show it.
func (pr profile) redo(spotRate float64) float64 {
	return spotRate * float64(pr.nodes) * pr.riskHours
}

// egress is the transfer cost per GPU-hour of running away from the data.
func (pr profile) egress(region string, perGB float64) float64 {
	if pr.dataRegion == "" || pr.dataRegion == region || pr.gpus == 0 {
		return 0
	}
	return pr.dataGB * perGB / (float64(pr.gpus) * pr.hours)
}

// costFor completes a pool's cost for a workload profile. Redoing lost work
// is paid at the billed price.
func costFor(pc poolCost, pr profile, region string, egressPerGB float64) Cost {
	c := Cost{
		ListPerGPUHour:   pc.list,
		Discount:         pc.discount,
		CommittedCredit:  pc.credit,
		ShadowDiscount:   pc.shadow,
		BilledPerGPUHour: pc.billed,
		SpotRisk:         pr.redo(pc.spotRate) * pc.billed,
		Egress:           pr.egress(region, egressPerGB),
	}
	c.EffectivePerGPUHour = pc.billed - pc.shadow + c.SpotRisk + c.Egress
	return c
}
