package server

import (
	"testing"
	"time"

	"gpubroker/internal/store"
)

// With a round interval of an hour, a submission still runs at once: the
// API wakes the reconciler, and while attempts are in flight on a backend
// that cannot signal changes (local) rounds come every pollInFlight. Eight
// jobs on four GPUs take two waves, all dispatched and recorded.
func TestRoundsFollowSubmissionsAndInFlightWork(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *Config) { c.RoundInterval = time.Hour })
	// The first round ran when the server opened; the next one is an hour
	// away unless something wakes it.
	var ids []int64
	for range 8 {
		ids = append(ids, e.submit(e.admin, "resources:\n  accelerators: H100:1\nrun: sleep 0.2\n")[0].ID)
	}
	for _, id := range ids {
		j := e.waitState(id, 10*time.Second, store.Succeeded, store.Failed)
		if j.State != store.Succeeded {
			t.Errorf("job %d: %s %q", id, j.State, j.Reason)
		}
	}
}
