package web

import (
	"cmp"
	"fmt"
	"html/template"
	"slices"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/ledger"
	"gpubroker/internal/model"
)

// refreshSeconds is how often the script reloads a page's content.
const refreshSeconds = 5

// capacityRow is GPUs of one provider and price class.
type capacityRow struct {
	Provider   model.Provider
	PriceClass model.PriceClass
	Total      int
	Used       int
}

type overviewData struct {
	Capacity      []capacityRow
	CapacityChart template.HTML
	GPUsTotal     int
	GPUsUsed      int
	SpendRate     float64 // USD per hour of what runs now
	MonthStart    time.Time
	MonthTotal    float64
	ByProvider    template.HTML
	ByTeam        template.HTML
	ShareChart    template.HTML
	ShareCap      float64
	ShareWindow   time.Duration
	Depth         []stateCount
	Clusters      []api.Cluster
	Unhealthy     int
}

type stateCount struct {
	State api.State
	N     int
}

func (h *Handler) overview(s *session) (string, view, error) {
	cls, err := h.clusters(s)
	if err != nil {
		return "", view{}, err
	}
	fl, err := h.fleetDoc(s)
	if err != nil {
		return "", view{}, err
	}
	policy := model.DefaultPolicy()
	if fl != nil {
		policy = fl.Policy
	}
	d := overviewData{Clusters: cls, ShareCap: policy.MaxProviderShare, ShareWindow: policy.ShareWindow}

	// GPUs by provider and price class.
	idx := map[string]int{}
	for _, c := range cls {
		if !c.Healthy {
			d.Unhealthy++
		}
		for _, p := range c.Pools {
			k := string(c.Provider) + "/" + string(p.PriceClass)
			i, ok := idx[k]
			if !ok {
				i = len(d.Capacity)
				idx[k] = i
				d.Capacity = append(d.Capacity, capacityRow{Provider: c.Provider, PriceClass: p.PriceClass})
			}
			d.Capacity[i].Total += p.GPUs()
			d.Capacity[i].Used += p.GPUs() - p.GPUsFree
			d.GPUsTotal += p.GPUs()
			d.GPUsUsed += p.GPUs() - p.GPUsFree
		}
	}
	slices.SortFunc(d.Capacity, func(a, b capacityRow) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.PriceClass, b.PriceClass))
	})
	var bars []bar
	for _, c := range d.Capacity {
		bars = append(bars, bar{Label: string(c.Provider) + " " + string(c.PriceClass), Parts: []float64{float64(c.Used), float64(c.Total - c.Used)},
			Note: fmt.Sprintf("%d used / %d free", c.Used, c.Total-c.Used)})
	}
	d.CapacityChart = barChart("GPUs in use and free by provider and price class", bars, 0, 0, "")

	// Queue depth and the spend rate of what runs now.
	active, err := h.jobs(s, activeStates)
	if err != nil {
		return "", view{}, err
	}
	counts := map[api.State]int{}
	for _, j := range active {
		counts[j.State]++
		if p := j.Placement; p != nil && (j.State == api.Running || j.State == api.Dispatched) {
			d.SpendRate += p.BilledPerGPUHour * float64(p.GPUsPerNode*len(p.Nodes))
		}
	}
	for _, st := range activeStates {
		d.Depth = append(d.Depth, stateCount{st, counts[st]})
	}

	// Spend this month by provider and by team.
	d.MonthStart = model.MonthStart(s.now)
	u, err := h.usage(s, d.MonthStart, "provider,team")
	if err != nil {
		return "", view{}, err
	}
	d.MonthTotal = u.TotalCostUSD
	byProv, byTeam := map[string]float64{}, map[string]float64{}
	for _, r := range u.Rows {
		byProv[r.Column("provider")] += r.CostUSD()
		byTeam[r.Column("team")] += r.CostUSD()
	}
	d.ByProvider = barChart("Spend this month by provider", moneyBars(byProv), 0, 0, "")
	d.ByTeam = barChart("Spend this month by team", moneyBars(byTeam), 0, 0, "")

	// Provider share of GPU-hours over the policy window against the cap.
	win := policy.Window()
	su, err := h.usage(s, s.now.Add(-win), "provider")
	if err != nil {
		return "", view{}, err
	}
	total := 0.0
	for _, r := range su.Rows {
		total += r.GPUHours()
	}
	var share []bar
	for _, r := range su.Rows {
		f := 0.0
		if total > 0 {
			f = r.GPUHours() / total
		}
		share = append(share, bar{Label: r.Column("provider"), Parts: []float64{f}, Note: fmt.Sprintf("%.0f%% · %s GPU-h", f*100, qty(r.GPUHours()))})
	}
	capLabel := ""
	if policy.MaxProviderShare > 0 {
		capLabel = fmt.Sprintf("cap %.0f%%", policy.MaxProviderShare*100)
	}
	d.ShareChart = barChart("Provider share of GPU-hours against the policy cap", share, 1, policy.MaxProviderShare, capLabel)
	return "overview", view{Title: "Overview", Nav: "overview", Refresh: refreshSeconds, Data: d}, nil
}

// moneyBars turns totals by key into bars sorted by key.
func moneyBars(m map[string]float64) []bar {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]bar, 0, len(keys))
	for _, k := range keys {
		label := k
		if label == "" {
			label = "(none)"
		}
		out = append(out, bar{Label: label, Parts: []float64{m[k]}, Note: money(m[k])})
	}
	return out
}

type queueRow struct {
	Pos    int
	Job    *api.Job
	Name   string
	GPU    model.GPUModel
	GPUs   int
	Where  string
	Since  time.Time
	Reason string
}

type queueData struct {
	Pending, Running []queueRow
	PPage, RPage     pager
}

func (h *Handler) queue(s *session) (string, view, error) {
	active, err := h.jobs(s, activeStates)
	if err != nil {
		return "", view{}, err
	}
	var pending, running []*api.Job
	for _, j := range active {
		if j.State == api.Pending {
			pending = append(pending, j)
		} else {
			running = append(running, j)
		}
	}
	queueOrder(pending)
	d := queueData{PPage: paginate(s.r, "page", len(pending)), RPage: paginate(s.r, "rpage", len(running))}
	for i, j := range pending[d.PPage.From:d.PPage.To] {
		g, n := jobGPUs(j)
		d.Pending = append(d.Pending, queueRow{Pos: d.PPage.From + i + 1, Job: j, Name: jobName(j), GPU: g, GPUs: n, Since: j.Created, Reason: j.Reason})
	}
	for _, j := range running[d.RPage.From:d.RPage.To] {
		g, n := jobGPUs(j)
		since := j.StartedAt
		if since.IsZero() {
			since = j.Updated
		}
		d.Running = append(d.Running, queueRow{Job: j, Name: jobName(j), GPU: g, GPUs: n, Where: where(j.Placement), Since: since})
	}
	return "queue", view{Title: "Queue", Nav: "queue", Refresh: refreshSeconds, Data: d}, nil
}

func where(p *api.Placement) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%s/%s (%s %s, %s)", p.Cluster, p.Pool, p.Provider, p.Region, p.PriceClass)
}

type fleetPool struct {
	api.Pool
	Used  int
	Price float64
}

type fleetCluster struct {
	api.Cluster
	// State is the cluster's health state, Checked when its last check
	// answered (zero: never).
	State     string
	Checked   time.Time
	Pools     []fleetPool
	GPUs      int
	Free      int
	HourlyUSD float64
}

type fleetData struct {
	Applied  bool
	Clusters []fleetCluster
}

func (h *Handler) fleet(s *session) (string, view, error) {
	cls, err := h.clusters(s)
	if err != nil {
		return "", view{}, err
	}
	fl, err := h.fleetDoc(s)
	if err != nil {
		return "", view{}, err
	}
	price := map[string]float64{}
	if fl != nil {
		for ci := range fl.Clusters {
			c := &fl.Clusters[ci]
			for pi := range c.Pools {
				price[c.Name+"/"+c.Pools[pi].Name] = ledger.PoolRate(fl, c, &c.Pools[pi], s.now).PerGPUHour
			}
		}
	}
	d := fleetData{Applied: fl != nil}
	for _, c := range cls {
		fc := fleetCluster{Cluster: c, State: clusterState(c)}
		if c.CheckedAt != nil {
			fc.Checked = *c.CheckedAt
		}
		for _, p := range c.Pools {
			fp := fleetPool{Pool: p, Used: p.GPUs() - p.GPUsFree, Price: price[c.Name+"/"+p.Name]}
			fc.Pools = append(fc.Pools, fp)
			fc.GPUs += p.GPUs()
			fc.Free += p.GPUsFree
			fc.HourlyUSD += float64(fp.Used) * fp.Price
		}
		d.Clusters = append(d.Clusters, fc)
	}
	return "fleet", view{Title: "Fleet", Nav: "fleet", Refresh: refreshSeconds, Data: d}, nil
}

type contractRow struct {
	C           model.Contract
	Commit      float64
	Spent       float64
	Plan        float64
	Shortfall   float64
	RatePerDay  float64
	Forecast    float64
	ForecastGap float64 // forecast - commitment (negative: under-burn)
	Chart       template.HTML
	// Take-or-pay capacity bound to the contract: GPUs in its pools, in
	// use now, and what the idle part costs per hour.
	PoolGPUs, PoolUsed int
	IdleUSDPerHour     float64
}

type contractsData struct {
	Applied   bool
	Contracts []contractRow
	Scoped    bool
}

func (h *Handler) contracts(s *session) (string, view, error) {
	fl, err := h.fleetDoc(s)
	if err != nil {
		return "", view{}, err
	}
	d := contractsData{Applied: fl != nil, Scoped: !s.who.Admin()}
	v := view{Title: "Contracts", Nav: "contracts", Refresh: 30, Data: &d}
	if fl == nil || len(fl.Contracts) == 0 {
		return "contracts", v, nil
	}
	cls, err := h.clusters(s)
	if err != nil {
		return "", view{}, err
	}
	used := map[string]int{}
	for _, c := range cls {
		for _, p := range c.Pools {
			used[c.Name+"/"+p.Name] = p.GPUs() - p.GPUsFree
		}
	}
	// Spend toward each contract since the earliest start, and since a
	// few sample times, give each contract's cumulative spend curve:
	// spent(t) = spent(since start) - spent(since t).
	earliest := fl.Contracts[0].Start
	for _, c := range fl.Contracts {
		if c.Start.Before(earliest) {
			earliest = c.Start
		}
	}
	if earliest.After(s.now) {
		earliest = s.now
	}
	const samples = 8
	sinceTimes := []time.Time{earliest}
	for i := 1; i < samples; i++ {
		sinceTimes = append(sinceTimes, earliest.Add(s.now.Sub(earliest)*time.Duration(i)/samples))
	}
	recent := s.now.Add(-30 * 24 * time.Hour)
	sinceTimes = append(sinceTimes, recent)
	spentSince := make([]map[string]float64, len(sinceTimes))
	for i, t := range sinceTimes {
		u, err := h.usage(s, t, "contract")
		if err != nil {
			return "", view{}, err
		}
		spentSince[i] = map[string]float64{}
		for _, r := range u.Rows {
			spentSince[i][r.Column("contract")] += r.CostUSD()
		}
	}
	for _, c := range fl.Contracts {
		row := contractRow{C: c, Commit: ledger.Plan(c, c.End), Plan: ledger.Plan(c, s.now)}
		total := spentSince[0][c.Name]
		row.Spent = total
		row.Shortfall = max(0, row.Plan-row.Spent)
		var spent []point
		for i, t := range sinceTimes[:samples] {
			if t.Before(c.Start) {
				continue
			}
			spent = append(spent, point{t, total - spentSince[i][c.Name]})
		}
		if s.now.After(c.Start) {
			spent = append(spent, point{s.now, total})
		}
		// Current rate: the last 30 days (or the term so far when shorter).
		from := recent
		if from.Before(c.Start) {
			from = c.Start
		}
		if days := s.now.Sub(from).Hours() / 24; days > 0 {
			row.RatePerDay = spentSince[samples][c.Name] / days
			if from.Equal(c.Start) {
				row.RatePerDay = total / days
			}
		}
		row.Forecast = row.Spent
		if s.now.Before(c.End) {
			row.Forecast += row.RatePerDay * c.End.Sub(s.now).Hours() / 24
		}
		row.ForecastGap = row.Forecast - row.Commit
		var plan []point
		for i := 0; i <= 24; i++ {
			t := c.Start.Add(c.End.Sub(c.Start) * time.Duration(i) / 24)
			plan = append(plan, point{t, ledger.Plan(c, t)})
		}
		var fc []point
		if s.now.After(c.Start) && s.now.Before(c.End) {
			fc = []point{{s.now, row.Spent}, {c.End, row.Forecast}}
		}
		row.Chart = burnChart("Burn-down of "+c.Name, c.Start, c.End, plan, spent, fc, row.Commit)
		// Take-or-pay pools whose capacity counts toward this contract.
		for ci := range fl.Clusters {
			cl := &fl.Clusters[ci]
			for pi := range cl.Pools {
				p := &cl.Pools[pi]
				rate := ledger.PoolRate(fl, cl, p, s.now)
				if rate.Contract != c.Name || !rate.TakeOrPay {
					continue
				}
				u := used[cl.Name+"/"+p.Name]
				row.PoolGPUs += p.GPUs()
				row.PoolUsed += u
				row.IdleUSDPerHour += float64(p.GPUs()-u) * rate.PerGPUHour
			}
		}
		d.Contracts = append(d.Contracts, row)
	}
	return "contracts", v, nil
}

type teamRow struct {
	api.Team
	GPUs     []teamGPU
	Share    float64 // fair share: weight over the sum of weights shown
	Borrowed int
}

type teamGPU struct {
	GPU      model.GPUModel
	Quota    int
	InUse    int
	Borrowed int
}

func (h *Handler) teams(s *session) (string, view, error) {
	ts, err := h.teamList(s)
	if err != nil {
		return "", view{}, err
	}
	sum := 0.0
	for _, t := range ts {
		sum += t.Weight
	}
	var rows []teamRow
	var bars []bar
	for _, t := range ts {
		r := teamRow{Team: t}
		if sum > 0 {
			r.Share = t.Weight / sum
		}
		var gpus []model.GPUModel
		for g := range t.Quota {
			gpus = append(gpus, g)
		}
		for g := range t.InUse {
			if _, ok := t.Quota[g]; !ok {
				gpus = append(gpus, g)
			}
		}
		slices.Sort(gpus)
		for _, g := range gpus {
			tg := teamGPU{GPU: g, Quota: t.Quota[g], InUse: t.InUse[g]}
			if len(t.Quota) > 0 {
				tg.Borrowed = max(0, tg.InUse-tg.Quota)
			}
			r.Borrowed += tg.Borrowed
			r.GPUs = append(r.GPUs, tg)
		}
		rows = append(rows, r)
		note := money(t.SpendThisMonthUSD)
		if t.MonthlyBudgetUSD > 0 {
			note += " of " + money(t.MonthlyBudgetUSD)
		}
		bars = append(bars, bar{Label: t.Name, Parts: []float64{t.SpendThisMonthUSD}, Note: note})
	}
	d := struct {
		Teams []teamRow
		Spend template.HTML
	}{rows, barChart("Spend this month by team", bars, 0, 0, "")}
	return "teams", view{Title: "Teams", Nav: "teams", Refresh: refreshSeconds, Data: d}, nil
}

// clusterState is c's health state; a server older than the field
// says only whether it is healthy.
func clusterState(c api.Cluster) string {
	switch {
	case c.State != "":
		return c.State
	case c.Healthy:
		return "HEALTHY"
	}
	return "UNHEALTHY"
}
