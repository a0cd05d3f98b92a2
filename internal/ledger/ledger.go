package ledger

import (
	"cmp"
	"slices"
	"time"

	"gpubroker/internal/model"
)

// Interval is one stretch of capacity held by one attempt of a workload.
// A preempted attempt is recorded as two intervals: the work kept by its
// last checkpoint, and the work lost after it (Lost set).
type Interval struct {
	Workload   string
	Team       string
	Provider   model.Provider
	Cluster    string
	Pool       string
	PriceClass model.PriceClass
	// Contract is the contract the spend counts toward; "" for none.
	Contract string
	GPUs     int
	Start    time.Time
	End      time.Time
	// BilledPerGPUHour is the USD paid per GPU-hour. On a take-or-pay pool
	// it is the pool's price, used only to attribute the pool's cost to
	// teams: the pool is paid whole through its CommittedPool.
	BilledPerGPUHour float64
	TakeOrPay        bool
	// Lost marks work thrown away by a preemption or outage.
	Lost bool
}

// GPUHours is the interval's GPUs x hours.
func (iv Interval) GPUHours() float64 { return float64(iv.GPUs) * iv.End.Sub(iv.Start).Hours() }

// CostUSD is what the interval itself is billed (0 on take-or-pay pools,
// which are paid through their CommittedPool).
func (iv Interval) CostUSD() float64 {
	if iv.TakeOrPay {
		return 0
	}
	return iv.GPUHours() * iv.BilledPerGPUHour
}

// CommittedPool is take-or-pay capacity: its installed GPUs cost their price
// every hour of the accounted span, used or not.
type CommittedPool struct {
	Provider        model.Provider
	Cluster         string
	Pool            string
	Contract        string
	GPUs            int
	PricePerGPUHour float64
}

// Ledger collects intervals and committed pools. The zero value is not
// usable; call New. A Ledger is not safe for concurrent use.
type Ledger struct {
	contracts []model.Contract
	pools     []CommittedPool
	ivs       []Interval
}

// New returns an empty ledger that knows the fleet's contracts (for plans).
func New(contracts []model.Contract) *Ledger {
	cs := slices.Clone(contracts)
	slices.SortFunc(cs, func(a, b model.Contract) int { return cmp.Compare(a.Name, b.Name) })
	return &Ledger{contracts: cs}
}

// AddCommittedPool registers a take-or-pay pool.
func (l *Ledger) AddCommittedPool(p CommittedPool) { l.pools = append(l.pools, p) }

// Record adds one interval. Intervals with End before Start are clamped to
// zero length.
func (l *Ledger) Record(iv Interval) {
	if iv.End.Before(iv.Start) {
		iv.End = iv.Start
	}
	l.ivs = append(l.ivs, iv)
}

// Intervals returns the recorded intervals in the order recorded. The slice
// is shared; do not modify it.
func (l *Ledger) Intervals() []Interval { return l.ivs }

// CommittedPools returns the registered take-or-pay pools.
func (l *Ledger) CommittedPools() []CommittedPool { return l.pools }

// Amount is money and GPU-hours under one key.
type Amount struct {
	Key      string  `json:"key"`
	USD      float64 `json:"usd"`
	GPUHours float64 `json:"gpu_hours"`
}

// Summary is the ledger's totals over a window.
type Summary struct {
	From, To time.Time
	TotalUSD float64
	// ByProvider, ByPriceClass, ByContract and ByTeam are sorted by key.
	// Provider and price-class totals include whole take-or-pay pools;
	// ByContract is spend counted toward each contract; ByTeam attributes
	// used take-or-pay capacity at its price and leaves idle capacity out.
	ByProvider   []Amount
	ByPriceClass []Amount
	ByContract   []Amount
	ByTeam       []Amount
	ByCluster    []Amount
	// GPUHoursRun is work kept; GPUHoursLost is work thrown away;
	// GPUHoursBilled is their sum (every GPU-hour that held capacity).
	GPUHoursRun    float64
	GPUHoursLost   float64
	GPUHoursBilled float64
	// TakeOrPayUSD is what the committed pools cost over the window;
	// WastedTakeOrPayUSD the part for idle GPU-hours.
	TakeOrPayUSD          float64
	WastedTakeOrPayUSD    float64
	CommittedGPUHours     float64
	IdleCommittedGPUHours float64
}

// OverlapHours returns the part of [s, e) inside [from, to) in hours.
func OverlapHours(s, e, from, to time.Time) float64 {
	if s.Before(from) {
		s = from
	}
	if e.After(to) {
		e = to
	}
	if !e.After(s) {
		return 0
	}
	return e.Sub(s).Hours()
}

type acc map[string]*Amount

func (a acc) add(key string, usd, gpuh float64) {
	x := a[key]
	if x == nil {
		x = &Amount{Key: key}
		a[key] = x
	}
	x.USD += usd
	x.GPUHours += gpuh
}

func (a acc) sorted() []Amount {
	out := make([]Amount, 0, len(a))
	for _, x := range a {
		out = append(out, *x)
	}
	slices.SortFunc(out, func(x, y Amount) int { return cmp.Compare(x.Key, y.Key) })
	return out
}

type poolKey struct{ cluster, pool string }

// Summarize totals the window [from, to). Take-or-pay pools are charged for
// the whole window.
func (l *Ledger) Summarize(from, to time.Time) Summary {
	s := Summary{From: from, To: to}
	prov, class, contract, team, cluster := acc{}, acc{}, acc{}, acc{}, acc{}
	used := map[poolKey]float64{}
	for _, iv := range l.ivs {
		h := OverlapHours(iv.Start, iv.End, from, to)
		if h == 0 {
			continue
		}
		gh := h * float64(iv.GPUs)
		usd := gh * iv.BilledPerGPUHour
		if iv.Lost {
			s.GPUHoursLost += gh
		} else {
			s.GPUHoursRun += gh
		}
		team.add(iv.Team, usd, gh)
		cluster.add(iv.Cluster, 0, gh)
		if iv.TakeOrPay {
			used[poolKey{iv.Cluster, iv.Pool}] += gh
			prov.add(string(iv.Provider), 0, gh)
			class.add(string(iv.PriceClass), 0, gh)
			if iv.Contract != "" {
				contract.add(iv.Contract, 0, gh)
			}
			continue
		}
		prov.add(string(iv.Provider), usd, gh)
		class.add(string(iv.PriceClass), usd, gh)
		if iv.Contract != "" {
			contract.add(iv.Contract, usd, gh)
		}
	}
	span := OverlapHours(from, to, from, to)
	for _, p := range l.pools {
		installed := float64(p.GPUs) * span
		usd := installed * p.PricePerGPUHour
		idle := max(0, installed-used[poolKey{p.Cluster, p.Pool}])
		s.TakeOrPayUSD += usd
		s.CommittedGPUHours += installed
		s.IdleCommittedGPUHours += idle
		s.WastedTakeOrPayUSD += idle * p.PricePerGPUHour
		prov.add(string(p.Provider), usd, 0)
		class.add(string(model.Committed), usd, 0)
		if p.Contract != "" {
			contract.add(p.Contract, usd, 0)
		}
	}
	s.ByProvider, s.ByPriceClass, s.ByContract = prov.sorted(), class.sorted(), contract.sorted()
	s.ByTeam, s.ByCluster = team.sorted(), cluster.sorted()
	for _, a := range s.ByProvider {
		s.TotalUSD += a.USD
	}
	s.GPUHoursBilled = s.GPUHoursRun + s.GPUHoursLost
	return s
}

// Contract returns the named contract and whether the ledger knows it.
func (l *Ledger) Contract(name string) (model.Contract, bool) {
	for _, c := range l.contracts {
		if c.Name == name {
			return c, true
		}
	}
	return model.Contract{}, false
}

// Contracts returns the known contracts sorted by name.
func (l *Ledger) Contracts() []model.Contract { return l.contracts }

// Plan returns how much of a spend commitment should be spent by t since
// the start of its term: its yearly minimums, each spread evenly over its
// contract year, when given, else a straight line over the term. A
// capacity commitment's plan is its GPUs x price for the elapsed term.
func Plan(c model.Contract, t time.Time) float64 {
	if !t.After(c.Start) {
		return 0
	}
	if c.Kind == model.CapacityCommitment {
		end := t
		if end.After(c.End) {
			end = c.End
		}
		return float64(c.GPUs) * c.PricePerGPUHour * end.Sub(c.Start).Hours()
	}
	if !t.Before(c.End) {
		return c.SpendUSD
	}
	if len(c.YearlyMinimumsUSD) > 0 {
		plan := 0.0
		for y, m := range c.YearlyMinimumsUSD {
			ys, ye := c.Start.AddDate(y, 0, 0), c.Start.AddDate(y+1, 0, 0)
			switch {
			case !t.Before(ye):
				plan += m
			case t.After(ys):
				plan += m * float64(t.Sub(ys)) / float64(ye.Sub(ys))
			}
		}
		return plan
	}
	return c.SpendUSD * float64(t.Sub(c.Start)) / float64(c.End.Sub(c.Start))
}

// Burn is a contract's burn-down at one instant, over the accounted span
// that began at From.
type Burn struct {
	Contract string    `json:"contract"`
	At       time.Time `json:"at"`
	// SpentUSD is spend counted toward the contract from From to At.
	SpentUSD float64 `json:"spent_usd"`
	// PlanUSD is what the plan asks to be spent from From to At.
	PlanUSD float64 `json:"plan_usd"`
	// ShortfallUSD is max(0, PlanUSD - SpentUSD).
	ShortfallUSD float64 `json:"shortfall_usd"`
}

// BurnDown returns the contract's burn between from and at: spend inside
// the contract term counted toward it, against the plan for the same
// stretch. An unknown contract gives a zero Burn with the name set.
func (l *Ledger) BurnDown(name string, from, at time.Time) Burn {
	pts := l.BurnSeries(name, from, at, at.Sub(from))
	if len(pts) == 0 {
		return Burn{Contract: name, At: at}
	}
	return pts[len(pts)-1]
}

// BurnSeries samples BurnDown at from+step, from+2*step, ... up to and
// including to (the last point is at to).
func (l *Ledger) BurnSeries(name string, from, to time.Time, step time.Duration) []Burn {
	c, ok := l.Contract(name)
	if !ok || step <= 0 || !to.After(from) {
		return nil
	}
	lo, hi := from, to
	if lo.Before(c.Start) {
		lo = c.Start
	}
	if hi.After(c.End) {
		hi = c.End
	}
	b := newBins(from, to, step)
	if hi.After(lo) {
		for _, iv := range l.ivs {
			if iv.Contract == name && !iv.TakeOrPay {
				b.spread(iv.Start, iv.End, lo, hi, float64(iv.GPUs)*iv.BilledPerGPUHour)
			}
		}
		for _, p := range l.pools {
			if p.Contract == name {
				b.spread(lo, hi, lo, hi, float64(p.GPUs)*p.PricePerGPUHour)
			}
		}
	}
	out := make([]Burn, len(b.v))
	cum := 0.0
	base := Plan(c, from)
	for i := range b.v {
		cum += b.v[i]
		at := b.end(i)
		p := Plan(c, at) - base
		out[i] = Burn{Contract: name, At: at, SpentUSD: cum, PlanUSD: p, ShortfallUSD: max(0, p-cum)}
	}
	return out
}

// bins accumulates per-hour rates over fixed steps.
type bins struct {
	from, to time.Time
	step     time.Duration
	v        []float64
}

func newBins(from, to time.Time, step time.Duration) *bins {
	n := int((to.Sub(from) + step - 1) / step)
	return &bins{from: from, to: to, step: step, v: make([]float64, max(n, 0))}
}

// end returns the end of bin i (the last bin ends at to).
func (b *bins) end(i int) time.Time {
	e := b.from.Add(time.Duration(i+1) * b.step)
	if e.After(b.to) {
		return b.to
	}
	return e
}

// spread adds rate (per hour) x the overlap of [s, e) ∩ [lo, hi) with
// each bin.
func (b *bins) spread(s, e, lo, hi time.Time, rate float64) {
	if s.Before(lo) {
		s = lo
	}
	if e.After(hi) {
		e = hi
	}
	if s.Before(b.from) {
		s = b.from
	}
	if e.After(b.to) {
		e = b.to
	}
	if !e.After(s) {
		return
	}
	i := int(s.Sub(b.from) / b.step)
	for ; i < len(b.v); i++ {
		bs := b.from.Add(time.Duration(i) * b.step)
		be := b.end(i)
		if !bs.Before(e) {
			break
		}
		b.v[i] += rate * OverlapHours(s, e, bs, be)
	}
}

// Share is one provider's part of the GPU-hours in a window.
type Share struct {
	Provider model.Provider `json:"provider"`
	GPUHours float64        `json:"gpu_hours"`
	Fraction float64        `json:"fraction"`
}

// SharePoint is provider concentration over the window ending At.
type SharePoint struct {
	At     time.Time `json:"at"`
	Shares []Share   `json:"shares"`
	// HHI is the sum of squared fractions, 0..1.
	HHI float64 `json:"hhi"`
}

// HHI returns the Herfindahl-Hirschman index of fractions on the 0..1
// scale (x 10,000 for the antitrust convention).
func HHI(fractions []float64) float64 {
	h := 0.0
	for _, f := range fractions {
		h += f * f
	}
	return h
}

func sharePoint(at time.Time, provs []model.Provider, gpuh []float64) SharePoint {
	sp := SharePoint{At: at, Shares: make([]Share, len(provs))}
	total := 0.0
	for _, g := range gpuh {
		total += g
	}
	for i, p := range provs {
		sp.Shares[i] = Share{Provider: p, GPUHours: gpuh[i]}
		if total > 0 {
			sp.Shares[i].Fraction = gpuh[i] / total
			sp.HHI += sp.Shares[i].Fraction * sp.Shares[i].Fraction
		}
	}
	return sp
}

// providers returns every provider with an interval or a committed pool,
// sorted.
func (l *Ledger) providers() []model.Provider {
	seen := map[model.Provider]bool{}
	var out []model.Provider
	for _, iv := range l.ivs {
		if !seen[iv.Provider] {
			seen[iv.Provider] = true
			out = append(out, iv.Provider)
		}
	}
	for _, p := range l.pools {
		if !seen[p.Provider] {
			seen[p.Provider] = true
			out = append(out, p.Provider)
		}
	}
	slices.Sort(out)
	return out
}

// ProviderShare returns each provider's share of the GPU-hours (run and
// lost) in [from, to), providers sorted by name.
func (l *Ledger) ProviderShare(from, to time.Time) SharePoint {
	provs := l.providers()
	idx := make(map[model.Provider]int, len(provs))
	for i, p := range provs {
		idx[p] = i
	}
	gpuh := make([]float64, len(provs))
	for _, iv := range l.ivs {
		gpuh[idx[iv.Provider]] += OverlapHours(iv.Start, iv.End, from, to) * float64(iv.GPUs)
	}
	return sharePoint(to, provs, gpuh)
}

// ShareSeries samples provider share at the end of every step from from to
// to, each over the window [t-window, t) rounded up to whole steps (window
// <= 0 means one step).
func (l *Ledger) ShareSeries(from, to time.Time, step, window time.Duration) []SharePoint {
	if step <= 0 || !to.After(from) {
		return nil
	}
	provs := l.providers()
	idx := make(map[model.Provider]int, len(provs))
	per := make([]*bins, len(provs))
	for i, p := range provs {
		idx[p] = i
		per[i] = newBins(from, to, step)
	}
	for _, iv := range l.ivs {
		per[idx[iv.Provider]].spread(iv.Start, iv.End, from, to, float64(iv.GPUs))
	}
	w := 1
	if window > step {
		w = int((window + step - 1) / step)
	}
	b0 := newBins(from, to, step)
	n := len(b0.v)
	out := make([]SharePoint, n)
	gpuh := make([]float64, len(provs))
	for k := 0; k < n; k++ {
		for i := range provs {
			sum := 0.0
			for j := max(0, k-w+1); j <= k; j++ {
				sum += per[i].v[j]
			}
			gpuh[i] = sum
		}
		out[k] = sharePoint(b0.end(k), provs, gpuh)
	}
	return out
}

// CostPoint is cumulative cost per provider at one instant.
type CostPoint struct {
	At         time.Time `json:"at"`
	ByProvider []Amount  `json:"by_provider"`
}

// CostSeries samples cumulative cost by provider (take-or-pay pools
// accruing evenly) at the end of every step from from to to.
func (l *Ledger) CostSeries(from, to time.Time, step time.Duration) []CostPoint {
	if step <= 0 || !to.After(from) {
		return nil
	}
	provs := l.providers()
	idx := make(map[model.Provider]int, len(provs))
	per := make([]*bins, len(provs))
	for i, p := range provs {
		idx[p] = i
		per[i] = newBins(from, to, step)
	}
	for _, iv := range l.ivs {
		if !iv.TakeOrPay {
			per[idx[iv.Provider]].spread(iv.Start, iv.End, from, to, float64(iv.GPUs)*iv.BilledPerGPUHour)
		}
	}
	for _, p := range l.pools {
		per[idx[p.Provider]].spread(from, to, from, to, float64(p.GPUs)*p.PricePerGPUHour)
	}
	b0 := newBins(from, to, step)
	n := len(b0.v)
	out := make([]CostPoint, n)
	cum := make([]float64, len(provs))
	for k := 0; k < n; k++ {
		pt := CostPoint{At: b0.end(k), ByProvider: make([]Amount, len(provs))}
		for i, p := range provs {
			cum[i] += per[i].v[k]
			pt.ByProvider[i] = Amount{Key: string(p), USD: cum[i]}
		}
		out[k] = pt
	}
	return out
}
