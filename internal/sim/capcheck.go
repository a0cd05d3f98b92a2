package sim

import (
	"fmt"
	"math"
	"time"

	"gpubroker/internal/engine"
	"gpubroker/internal/model"
)

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
