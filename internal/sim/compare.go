package sim

import (
	"sync"

	"gpubroker/internal/model"
)

// RunPolicies runs the same workloads, fleet and seed under each policy,
// concurrently, and returns the results in the order of names. cfg.Policy
// is ignored; cfg.Progress, when set, sees jobs finished over all runs
// (total = jobs x policies) and is called from one goroutine at a time.
// The first error (in name order) is returned.
func RunPolicies(cfg Config, workloads []*model.Workload, names []string) ([]*Result, error) {
	for _, n := range names {
		if _, err := ApplyPolicy(cfg.Fleet, n); err != nil {
			return nil, err
		}
	}
	results := make([]*Result, len(names))
	errs := make([]error, len(names))
	var mu sync.Mutex
	done := make([]int, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		c := cfg
		c.Policy = n
		if cfg.Progress != nil {
			c.Progress = func(d, total int) {
				mu.Lock()
				defer mu.Unlock()
				done[i] = d
				sum := 0
				for _, x := range done {
					sum += x
				}
				cfg.Progress(sum, total*len(names))
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Run(c, workloads)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}
