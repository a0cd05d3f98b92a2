package ledger

import (
	"math"
	"testing"
	"time"

	"gpubroker/internal/model"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func h(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// fixture: aws has a committed pool of 8 GPUs at $2 under spend contract
// "k" and on-demand use at $3 under it too; gcp on-demand at $4.
func fixture() *Ledger {
	l := New([]model.Contract{{Name: "k", Provider: "aws", Kind: model.SpendCommitment, SpendUSD: 8760, Start: t0, End: t0.AddDate(1, 0, 0), TakeOrPay: true}})
	l.AddCommittedPool(CommittedPool{Provider: "aws", Cluster: "a", Pool: "c", Contract: "k", GPUs: 8, PricePerGPUHour: 2})
	l.Record(Interval{Workload: "w1", Team: "x", Provider: "aws", Cluster: "a", Pool: "c", PriceClass: model.Committed, Contract: "k", GPUs: 8, Start: h(0), End: h(5), BilledPerGPUHour: 2, TakeOrPay: true})
	l.Record(Interval{Workload: "w2", Team: "y", Provider: "aws", Cluster: "a", Pool: "o", PriceClass: model.OnDemand, Contract: "k", GPUs: 2, Start: h(0), End: h(10), BilledPerGPUHour: 3})
	l.Record(Interval{Workload: "w3", Team: "y", Provider: "gcp", Cluster: "g", Pool: "o", PriceClass: model.OnDemand, GPUs: 4, Start: h(2), End: h(7), BilledPerGPUHour: 4})
	l.Record(Interval{Workload: "w3", Team: "y", Provider: "gcp", Cluster: "g", Pool: "o", PriceClass: model.OnDemand, GPUs: 4, Start: h(7), End: h(8), BilledPerGPUHour: 4, Lost: true})
	return l
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	s := fixture().Summarize(h(0), h(10))
	// take-or-pay 8x10x2 = 160 (used 40 GPU-h of 80: wasted 40x2 = 80);
	// aws on demand 2x10x3 = 60; gcp 4x6x4 = 96. Total 316.
	checks := map[string][2]float64{
		"total":        {s.TotalUSD, 316},
		"take-or-pay":  {s.TakeOrPayUSD, 160},
		"wasted":       {s.WastedTakeOrPayUSD, 80},
		"idle":         {s.IdleCommittedGPUHours, 40},
		"run":          {s.GPUHoursRun, 40 + 20 + 20},
		"lost":         {s.GPUHoursLost, 4},
		"billed":       {s.GPUHoursBilled, 84},
		"aws":          {s.ByProvider[0].USD, 220},
		"gcp":          {s.ByProvider[1].USD, 96},
		"contract k":   {s.ByContract[0].USD, 220},
		"committed":    {s.ByPriceClass[0].USD, 160},
		"ondemand":     {s.ByPriceClass[1].USD, 156},
		"team x":       {s.ByTeam[0].USD, 80},
		"team y":       {s.ByTeam[1].USD, 156},
		"cluster a gh": {s.ByCluster[0].GPUHours, 60},
	}
	for name, c := range checks {
		if !near(c[0], c[1]) {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	// A window clips intervals and charges take-or-pay for its length only.
	s = fixture().Summarize(h(5), h(10))
	if !near(s.TakeOrPayUSD, 80) || !near(s.WastedTakeOrPayUSD, 80) || !near(s.TotalUSD, 80+30+4*3*4) {
		t.Errorf("window 5-10h: %+v", s)
	}
}

func TestBurnDown(t *testing.T) {
	t.Parallel()
	l := fixture()
	// Plan: 8760 over a year = $1/h. Spent by 10h: 160 + 60 = 220.
	b := l.BurnDown("k", h(0), h(10))
	if !near(b.PlanUSD, 10) || !near(b.SpentUSD, 220) || b.ShortfallUSD != 0 {
		t.Errorf("burn = %+v", b)
	}
	series := l.BurnSeries("k", h(0), h(10), 4*time.Hour)
	if len(series) != 3 || !series[2].At.Equal(h(10)) || !near(series[0].SpentUSD, 8*4*2+2*4*3) {
		t.Errorf("series = %+v", series)
	}
	// Yearly minimums: year one asks 1000, spread over the year.
	c := model.Contract{Name: "m", Kind: model.SpendCommitment, SpendUSD: 5000, YearlyMinimumsUSD: []float64{1000, 4000}, Start: t0, End: t0.AddDate(2, 0, 0)}
	if p := Plan(c, t0.AddDate(1, 0, 0)); !near(p, 1000) {
		t.Errorf("plan after year one = %v", p)
	}
	l2 := New([]model.Contract{c})
	if b := l2.BurnDown("m", t0, t0.AddDate(1, 0, 0)); !near(b.ShortfallUSD, 1000) {
		t.Errorf("nothing spent in year one: shortfall %v, want 1000", b.ShortfallUSD)
	}
}

func TestShare(t *testing.T) {
	t.Parallel()
	l := fixture()
	sp := l.ProviderShare(h(0), h(10))
	// aws 40+20 = 60 GPU-h, gcp 24: shares 60/84, 24/84.
	a, g := 60.0/84, 24.0/84
	if !near(sp.Shares[0].Fraction, a) || !near(sp.Shares[1].Fraction, g) || !near(sp.HHI, a*a+g*g) {
		t.Errorf("share = %+v", sp)
	}
	if !near(HHI([]float64{1}), 1) || !near(HHI([]float64{0.5, 0.5}), 0.5) {
		t.Error("HHI")
	}
	series := l.ShareSeries(h(0), h(10), time.Hour, 2*time.Hour)
	if len(series) != 10 {
		t.Fatalf("%d points", len(series))
	}
	// Window ending at 2h: aws 2x(8+2) = 20, gcp none.
	if !near(series[1].Shares[0].Fraction, 1) || !near(series[1].Shares[0].GPUHours, 20) {
		t.Errorf("point 2h = %+v", series[1])
	}
	cs := l.CostSeries(h(0), h(10), 5*time.Hour)
	if len(cs) != 2 || !near(cs[1].ByProvider[0].USD, 220) || !near(cs[1].ByProvider[1].USD, 96) {
		t.Errorf("cost series = %+v", cs)
	}
	if New(nil).ShareSeries(h(0), h(2), time.Hour, 0) == nil {
		t.Error("empty ledger: want zero points, not nil")
	}
}

func TestPoolRate(t *testing.T) {
	t.Parallel()
	f := &model.Fleet{Contracts: []model.Contract{
		{Name: "edp", Provider: "aws", Kind: model.SpendCommitment, SpendUSD: 1e6, Discount: 0.25, Start: t0, End: t0.AddDate(1, 0, 0)},
		{Name: "cap", Provider: "aws", Kind: model.CapacityCommitment, GPU: "H100", GPUs: 8, PricePerGPUHour: 1.5, Start: t0, End: t0.AddDate(1, 0, 0)},
	}}
	cl := &model.Cluster{Name: "a", Provider: "aws"}
	od := &model.Pool{Name: "od", PriceClass: model.OnDemand, PricePerGPUHour: 4}
	if r := PoolRate(f, cl, od, h(1)); r.Contract != "edp" || !near(r.PerGPUHour, 3) || r.TakeOrPay {
		t.Errorf("on-demand under edp = %+v", r)
	}
	if r := PoolRate(f, cl, od, t0.AddDate(2, 0, 0)); r.Contract != "" || r.PerGPUHour != 4 {
		t.Errorf("after the term = %+v", r)
	}
	spot := &model.Pool{Name: "s", PriceClass: model.Spot, PricePerGPUHour: 1}
	if r := PoolRate(f, cl, spot, h(1)); r.Contract != "" || r.PerGPUHour != 1 {
		t.Errorf("spot = %+v", r)
	}
	cp := &model.Pool{Name: "c", PriceClass: model.Committed, PricePerGPUHour: 4, Contract: "cap"}
	if r := PoolRate(f, cl, cp, h(1)); r.Contract != "cap" || r.PerGPUHour != 1.5 || !r.TakeOrPay {
		t.Errorf("committed under capacity contract = %+v", r)
	}
}
