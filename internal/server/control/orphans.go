package control

import (
	"context"
	"sort"

	"gpubroker/internal/backend"
	"gpubroker/internal/store"
)

// cleanOrphans stops and forgets backend objects that no active job's
// current attempt owns: attempts cancelled while their backend could not
// be reached, earlier attempts of preempted or lost jobs, objects whose
// job ended while the server was down. Other brokers' records adopted
// this round (observeRunners) are cleaned too: the attempts a dead leader
// left there whose jobs ended.
func (rd *round) cleanOrphans(ctx context.Context) {
	if rd.fenced() {
		return
	}
	all := make(map[string]*observation, len(rd.obs)+len(rd.runners))
	for n, o := range rd.obs {
		all[n] = o
	}
	for w, o := range rd.runners {
		all[w.Host+":"+w.Dir] = o
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, cl := range names {
		o := all[cl]
		if !o.ok() || !o.fresh {
			continue // a listing some round has acted on already
		}
		for name, st := range o.byName {
			id, attempt, ok := parseName(name)
			if !ok {
				continue
			}
			if _, later := rd.s.rec.ended[name]; rd.owned[name] || later {
				continue
			}
			if rd.s.rec.deferred[name] {
				continue // preempted; stopped once its successor is submitted
			}
			if j := rd.jobs[id]; j != nil && j.Attempt == attempt && j.State != store.Pending {
				continue
			}
			var err error
			switch st.Phase {
			case backend.PhasePending, backend.PhaseRunning:
				err = rd.s.within(ctx, "cancel", func(ctx context.Context) error { return o.b.Cancel(ctx, name) })
			default:
				err = rd.s.within(ctx, "forget", func(ctx context.Context) error { return o.b.Forget(ctx, name) })
			}
			if err != nil {
				rd.s.log.Warn("cleaning up an orphaned attempt", "cluster", cl, "name", name, "err", err)
			}
		}
	}
}
