package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/lifecycle"
	"gpubroker/internal/store"
)

// Leadership and host-bound attempts (docs/adr/0010-failover-and-local-clusters.md).
//
// With a shared store one broker leads: it takes the store's lease at the
// start of each round (store.Leader) and acts only while its own clock is
// short of the lease's end by fenceMargin. Every broker beats each round
// (store.Members) with its host, so that the leader knows which hosts have
// a broker alive.
//
// A local cluster's attempts live on one machine, in the records of the
// broker that started them: each attempt's placement names that host and
// directory (backend.HostBound). The leader adopts the attempts recorded
// by another broker on its own machine (a leader that died: its work runs
// on) and observes, cancels and forgets them there; attempts on another
// machine it cannot see, and leaves as they are while that machine has a
// broker alive. Once none has beaten for the lease's length, they are
// lost.

// fenceMargin is how long before its lease ends by its own clock a leader
// stops acting: the next leader takes over once the lease has ended by its
// clock, so clocks may disagree by this much.
const fenceMargin = leaderLease / 3

// lead beats for this broker and takes or renews the lease. It reports
// whether this round leads and until when it may act (zero: a store of
// one broker, always). A broker that leads again after a gap forgets what
// it kept between rounds: other leaders moved jobs meanwhile.
func (s *Controller) lead(ctx context.Context, now time.Time) (bool, time.Time, error) {
	if m, ok := s.store.(store.Members); ok && s.cfg.Host != "" {
		if err := m.Beat(ctx, s.leaderID, s.cfg.Host, now.Add(leaderLease)); err != nil {
			s.log.Warn("broker heartbeat failed", "err", err)
		}
	}
	l, ok := s.store.(store.Leader)
	if !ok {
		return true, time.Time{}, nil
	}
	until := now.Add(leaderLease)
	lead, err := l.TryLead(ctx, s.leaderID, now, until)
	if err != nil || !lead {
		if s.rec.led {
			s.log.Warn("no longer the leader", "broker", s.leaderID, "err", err)
		}
		s.rec.led = false
		return false, time.Time{}, err
	}
	if !s.rec.led {
		s.log.Info("leading the reconciler", "broker", s.leaderID, "host", s.cfg.Host)
		s.rec.led = true
		s.rec.active = nil
		s.rec.missing = map[string]int{}
		s.rec.failing = map[string]time.Time{}
	}
	return true, until.Add(-fenceMargin), nil
}

// fenced reports whether the round's lease has run out (by this broker's
// clock, with fenceMargin to spare): it must not act any more. A leader
// paused past its lease (SIGSTOP, a VM migration, a long GC) wakes up
// fenced and its round does nothing more; the next round asks for the
// lease again.
func (rd *round) fenced() bool {
	if rd.until.IsZero() || rd.s.clock.Now().Before(rd.until) {
		return false
	}
	if !rd.fenceLogged {
		rd.fenceLogged = true
		rd.s.log.Warn("the round outlasted its leader lease; it acts no more", "lease_end", rd.until.Add(fenceMargin))
	}
	return true
}

// where is the host-bound location recorded with j's current attempt, if
// any.
func where(j *store.Job) (backend.Where, bool) {
	if j.Placement == nil || j.Placement.Host == "" {
		return backend.Where{}, false
	}
	return backend.Where{Host: j.Placement.Host, Dir: j.Placement.Dir}, true
}

// recordWhere sets on pl where b, a host-bound backend, runs its attempts.
func recordWhere(pl *store.Placement, b backend.Backend) {
	if hb, ok := b.(backend.HostBound); ok {
		w := hb.Where()
		pl.Host, pl.Dir = w.Host, w.Dir
	}
}

// adopt returns the backend of an attempt recorded at w on cluster
// backend b: b itself when w is b's, else b's adoption of w (an error
// wrapping backend.ErrOtherHost when w is on another machine).
func adopt(b backend.Backend, w backend.Where) (backend.Backend, error) {
	hb, ok := b.(backend.HostBound)
	if !ok || hb.Where() == w {
		return b, nil
	}
	return hb.Adopt(w)
}

// attemptBackend is the backend of j's current attempt: its cluster's, or
// the adopted records of another broker on this machine.
func (s *Controller) attemptBackend(ctx context.Context, j *store.Job) (backend.Backend, error) {
	b, err := s.backendFor(ctx, j.Placement.Cluster)
	if err != nil {
		return nil, err
	}
	if w, ok := where(j); ok {
		return adopt(b, w)
	}
	return b, nil
}

// observeRunners observes, once per round, the records of other brokers
// that active attempts were recorded at (see where): adopted on this
// machine, or marked elsewhere (observation.elsewhere) when on another.
func (rd *round) observeRunners(ctx context.Context) {
	rd.runners = map[backend.Where]*observation{}
	for _, id := range rd.order {
		j := rd.jobs[id]
		if j == nil || !holds(j) {
			continue
		}
		w, ok := where(j)
		o := rd.obs[j.Placement.Cluster]
		if !ok || !o.ok() || rd.runners[w] != nil {
			continue
		}
		b, err := adopt(o.b, w)
		switch {
		case errors.Is(err, backend.ErrOtherHost):
			rd.runners[w] = &observation{err: err, elsewhere: w.Host}
			continue
		case err != nil:
			rd.runners[w] = &observation{err: fmt.Errorf("adopting %s: %w", w.Dir, err)}
			continue
		case b == o.b:
			continue
		}
		// Observed now, in this round: an answer no round used yet.
		r := &observation{b: b, fresh: true, checked: rd.now, round: rd.now}
		octx, cancel := context.WithTimeout(ctx, rd.s.deadlines.Observe)
		sts, err := b.Observe(octx)
		cancel()
		if err != nil {
			r.err = fmt.Errorf("observe %s: %w", w.Dir, err)
		} else {
			r.byName = make(map[string]backend.Status, len(sts))
			for _, st := range sts {
				r.byName[st.Name] = st
			}
		}
		rd.runners[w] = r
	}
}

// obsOf is the observation that sees j's current attempt: its cluster's,
// or that of the records it was recorded at.
func (rd *round) obsOf(j *store.Job) *observation {
	o := rd.obs[j.Placement.Cluster]
	if w, ok := where(j); ok {
		if r := rd.runners[w]; r != nil {
			return r
		}
	}
	return o
}

// hostAlive reports whether some broker on host has beaten recently
// (store.Members); read once per round. A store without beats knows of
// none.
func (rd *round) hostAlive(ctx context.Context, host string) bool {
	if rd.live == nil {
		rd.live = map[string]bool{}
		if m, ok := rd.s.store.(store.Members); ok {
			live, err := m.LiveHosts(ctx, rd.now)
			if err != nil {
				rd.s.log.Warn("reading live hosts failed; taking every host as alive", "err", err)
				return true
			}
			rd.live = live
		}
	}
	return rd.live[host]
}

// observeElsewhere handles an attempt recorded on another machine: left as
// it is while a broker there is alive (that broker alone can see it, and
// will when it leads), lost once none is.
func (rd *round) observeElsewhere(ctx context.Context, j *store.Job, host string) {
	if rd.hostAlive(ctx, host) {
		return
	}
	rd.retry(j, lifecycle.Lost, "Lost: host "+host+" has no live broker",
		fmt.Sprintf("%s on %s/%s runs on host %s, whose broker has not been heard from for %s", attemptName(j),
			j.Placement.Cluster, j.Placement.Pool, host, leaderLease), nil)
}
