package control

import (
	"context"
	"time"

	"gpubroker/internal/store"
)

// countRefresh is how often the number of jobs in each state is read
// from the store; in between it is kept from what the rounds see.
const countRefresh = 30 * time.Second

// jobCounts is how many jobs are in each state, for the queue-depth
// metric, kept without counting every job the store holds each round (a
// GROUP BY over all of them was a third of a round with 100,000 jobs,
// BenchmarkReconcileRound100k). The active states are counted from the
// round's own jobs when it publishes. The terminal ones are the store's
// count, read every countRefresh (and after each full read of the active
// jobs), plus the jobs that ended since, as activeJobs sees them in the
// store's changes: a job it held as active that is now terminal, whoever
// moved it. A job created and ended between two rounds, never seen
// active, is counted at the next read; so is one that ended in the
// moment between a round's changes and the read that follows them.
type jobCounts struct {
	// terminal is the store's count of each terminal state at read.
	terminal map[store.State]int
	read     time.Time // zero: read at the next round
	// ended counts, per terminal state, the jobs seen ending since read.
	ended map[store.State]int
}

// sawEnd notes that a job activeJobs held as active is now in st.
func (c *jobCounts) sawEnd(st store.State) {
	if c.ended == nil {
		c.ended = map[store.State]int{}
	}
	c.ended[st]++
}

// refreshCounts reads the counts when they are due (see jobCounts). It
// runs right after activeJobs has read the changes, so that what a later
// change lists is not in the count read here.
func (s *Controller) refreshCounts(ctx context.Context, now time.Time) {
	c := &s.rec.counts
	if !c.read.IsZero() && now.Sub(c.read) < countRefresh && !now.Before(c.read) {
		return
	}
	all, err := s.store.CountByState(ctx)
	if err != nil {
		s.log.Warn("counting jobs; keeping the previous counts", "err", err)
		return
	}
	c.terminal = map[store.State]int{}
	for st, n := range all {
		if st.Terminal() {
			c.terminal[st] = n
		}
	}
	c.read, c.ended = now, nil
}

// countJobs is how many jobs are in each state after the round: the
// round's own for the active states, the kept counts for the terminal
// ones (false until a first read succeeded).
func (rd *round) countJobs() (map[store.State]int, bool) {
	c := &rd.s.rec.counts
	if c.terminal == nil {
		return nil, false
	}
	out := make(map[store.State]int, 7)
	for _, st := range activeStates {
		out[st] = 0
	}
	for _, j := range rd.jobs {
		out[j.State]++
	}
	for _, st := range []store.State{store.Succeeded, store.Failed, store.Cancelled} {
		out[st] = c.terminal[st] + c.ended[st]
	}
	return out, true
}
