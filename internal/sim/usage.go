package sim

import (
	"time"

	"gpubroker/internal/model"
)

// usage accrues what the engine is told each round: GPU-hours per provider
// over the share window (hourly bins; the oldest bin counts whole until it
// leaves the window), spend per contract since the run began, and spend per
// team in the current calendar month (UTC).
type usage struct {
	provs  []model.Provider
	window int64
	last   int64

	rate []float64 // GPUs running per provider
	bins [][]bin   // per provider, oldest first from head
	head []int
	sum  []float64

	teamRate      map[string]float64 // USD per hour
	teamSpend     map[string]float64
	month         int64 // start of the current month, ns
	contractRate  map[string]float64
	contractSpent map[string]float64
}

type bin struct {
	hour int64
	v    float64
}

const hourNs = int64(time.Hour)

func newUsage(provs []model.Provider, window time.Duration, start int64) *usage {
	u := &usage{
		provs: provs, window: int64(window), last: start,
		rate: make([]float64, len(provs)), bins: make([][]bin, len(provs)),
		head: make([]int, len(provs)), sum: make([]float64, len(provs)),
		teamRate: map[string]float64{}, teamSpend: map[string]float64{},
		contractRate: map[string]float64{}, contractSpent: map[string]float64{},
	}
	u.month = monthStart(start)
	return u
}

func monthStart(t int64) int64 { return ns(model.MonthStart(tm(t))) }

// add starts (sign +1) or stops (-1) counting a job's allocation.
func (u *usage) add(prov int, j *job, sign float64) {
	u.rate[prov] += sign * float64(j.gpus)
	if !j.a.rate.TakeOrPay {
		usd := sign * float64(j.gpus) * j.a.rate.PerGPUHour
		u.teamRate[j.w.Team] += usd
		if c := j.a.rate.Contract; c != "" {
			u.contractRate[c] += usd
		}
	}
}

// accrue brings every figure forward to now.
func (u *usage) accrue(now int64) {
	if now <= u.last {
		return
	}
	for t := u.last; t < now; {
		h := t / hourNs
		end := min(now, (h+1)*hourNs)
		dh := hoursOf(end - t)
		for p, r := range u.rate {
			if r == 0 {
				continue
			}
			b := u.bins[p]
			if n := len(b); n > u.head[p] && b[n-1].hour == h {
				b[n-1].v += r * dh
			} else {
				u.bins[p] = append(b, bin{hour: h, v: r * dh})
			}
			u.sum[p] += r * dh
		}
		t = end
		if !u.anyRate() {
			break
		}
	}
	if u.window > 0 {
		oldest := (now - u.window) / hourNs
		for p := range u.bins {
			b := u.bins[p]
			for u.head[p] < len(b) && b[u.head[p]].hour < oldest {
				u.sum[p] -= b[u.head[p]].v
				u.head[p]++
			}
			if u.head[p] > 1024 && u.head[p] > len(b)/2 {
				u.bins[p] = append(b[:0], b[u.head[p]:]...)
				u.head[p] = 0
			}
			if u.head[p] == len(u.bins[p]) {
				u.sum[p] = 0 // no drift once the window is empty
			}
		}
	}
	dt := hoursOf(now - u.last)
	for c, r := range u.contractRate {
		u.contractSpent[c] += r * dt
	}
	from := u.last
	if m := monthStart(now); m != u.month {
		u.month = m
		clear(u.teamSpend)
		from = max(from, m)
	}
	dt = hoursOf(now - from)
	for t, r := range u.teamRate {
		if r != 0 {
			u.teamSpend[t] += r * dt
		}
	}
	u.last = now
}

func (u *usage) anyRate() bool {
	for _, r := range u.rate {
		if r != 0 {
			return true
		}
	}
	return false
}

// providerMap returns GPU-hours per provider in the window.
func (u *usage) providerMap() map[model.Provider]float64 {
	m := make(map[model.Provider]float64, len(u.provs))
	for i, p := range u.provs {
		m[p] = max(0, u.sum[i])
	}
	return m
}
