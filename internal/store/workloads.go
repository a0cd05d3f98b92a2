package store

import (
	"encoding/json"
	"hash/maphash"
	"sync"

	"gpubroker/internal/model"
)

// maxCachedWorkloads bounds a WorkloadCache (a decoded workload is about
// a kilobyte): beyond it, each new one pushes out an arbitrary other.
const maxCachedWorkloads = 1 << 17

// WorkloadCache decodes the workloads drivers read back, keeping each
// decoded one by job ID next to the JSON it came from. A job's workload
// does not change after CreateJob, and the reconciler reads every active
// job's each round: decoding them again and again was a fifth of a busy
// broker's CPU, taken from the engines on the same machine. The zero value
// is ready; it is safe for concurrent use.
type WorkloadCache struct {
	mu   sync.Mutex
	seed maphash.Seed
	m    map[int64]cachedWorkload
}

type cachedWorkload struct {
	sum  uint64 // of the JSON it was decoded from
	w    *model.Workload
	spec string // the job's Spec, as immutable as its workload
}

// Known returns a deep copy of job id's workload and its spec when an
// earlier Decode cached them: a driver that lists many jobs need not read
// either column again.
func (c *WorkloadCache) Known(id int64) (*model.Workload, string, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok {
		return nil, "", false
	}
	return e.w.Clone(), e.spec, true
}

// Decode returns job id's workload from raw, its stored JSON: a deep copy
// of the cached one when raw is what was decoded before (same hash),
// otherwise newly decoded (and cached, with spec, the job's Spec).
func (c *WorkloadCache) Decode(id int64, raw []byte, spec string) (*model.Workload, error) {
	c.mu.Lock()
	if c.m == nil {
		c.seed = maphash.MakeSeed()
		c.m = make(map[int64]cachedWorkload)
	}
	sum := maphash.Bytes(c.seed, raw)
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && e.sum == sum {
		return e.w.Clone(), nil
	}
	w := new(model.Workload)
	if err := json.Unmarshal(raw, w); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if _, ok := c.m[id]; !ok && len(c.m) >= maxCachedWorkloads {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = cachedWorkload{sum: sum, w: w.Clone(), spec: spec}
	c.mu.Unlock()
	return w, nil
}
