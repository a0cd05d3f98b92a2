package store

import (
	"encoding/json"
	"sync"

	"gpubroker/internal/model"
)

// maxCachedWorkloads bounds a WorkloadCache; when full it starts afresh.
const maxCachedWorkloads = 1 << 16

// WorkloadCache decodes the workloads drivers read back, keeping each
// decoded one by job ID next to the JSON it came from. A job's workload
// does not change after CreateJob, and the reconciler reads every active
// job's each round: decoding them again and again was a fifth of a busy
// broker's CPU, taken from the engines on the same machine. The zero value
// is ready; it is safe for concurrent use.
type WorkloadCache struct {
	mu sync.Mutex
	m  map[int64]cachedWorkload
}

type cachedWorkload struct {
	raw string
	w   *model.Workload
}

// Decode returns job id's workload from raw, its stored JSON: a deep copy
// of the cached one when raw is what was decoded before, otherwise newly
// decoded (and cached).
func (c *WorkloadCache) Decode(id int64, raw []byte) (*model.Workload, error) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && e.raw == string(raw) {
		return e.w.Clone(), nil
	}
	w := new(model.Workload)
	if err := json.Unmarshal(raw, w); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedWorkloads {
		c.m = make(map[int64]cachedWorkload)
	}
	c.m[id] = cachedWorkload{raw: string(raw), w: w.Clone()}
	c.mu.Unlock()
	return w, nil
}
