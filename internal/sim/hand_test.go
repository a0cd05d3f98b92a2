package sim

import (
	"testing"
	"time"

	"gpubroker/internal/model"
)

// TestHandComputed replays five jobs on two providers and checks cost and
// completion times against numbers worked out by hand.
//
// Fleet: aws "a" has 1 committed node of 8 H100 at $2/GPU-h (take-or-pay,
// zero marginal cost); gcp "g" has 2 on-demand nodes of 8 H100 at $3/GPU-h.
// FIFO, no preemption, no cap. Rounds happen when something changes.
//
//	job  arrives  GPUs  runs   placed              start  end   cost
//	j1   0:00     8     2h     aws node 0          0:00   2:00  take-or-pay
//	j2   0:00     4     1h     gcp node 0          0:00   1:00  4x1x3   = 12
//	j3   0:30     8     1h     gcp node 1          0:30   1:30  8x1x3   = 24
//	j5   1:00     16    1h     gcp nodes 0,1 (*)   1:30   2:30  16x1x3  = 48
//	j4   1:30     4     30m    aws node 0 (**)     2:00   2:30  take-or-pay
//
// (*) at 1:00 node 1 is busy with j3 and aws has one node: j5 waits for
// capacity until j3 ends at 1:30. (**) at 1:30 j5 is first in line (earlier
// arrival) and takes both gcp nodes; j4 waits for aws, free at 2:00.
//
// The run spans 0:00-2:30. aws costs 8 GPUs x 2.5 h x $2 = $40 used or
// not; it was busy 8x2 + 4x0.5 = 18 of its 20 GPU-hours, so $4 of it is
// wasted. gcp costs 12+24+48 = $84. Total $124. GPU-hours run: 16+4+8+16+2
// = 46, none lost. JCT: 2h, 1h, 1h, 1h30, 1h; queueing 0, 0, 0, 30m, 30m.
func TestHandComputed(t *testing.T) {
	t.Parallel()
	f := &model.Fleet{
		Clusters: []model.Cluster{
			cluster("a", "aws", pool("p", "H100", 1, model.Committed, 2)),
			cluster("g", "gcp", pool("p", "H100", 2, model.OnDemand, 3)),
		},
		Policy: model.Policy{SpotAllowed: true},
	}
	ws := []*model.Workload{
		wl("j1", 0, 8, 2*time.Hour),
		wl("j2", 0, 4, time.Hour),
		wl("j3", 30*time.Minute, 8, time.Hour),
		wl("j5", time.Hour, 16, time.Hour),
		wl("j4", 90*time.Minute, 4, 30*time.Minute),
	}
	for _, ref := range []bool{false, true} {
		r := mustRun(t, Config{Seed: 1, Fleet: f, CheckInvariants: true, reference: ref}, ws)
		want := map[string][2]time.Duration{ // start, end
			"j1": {0, 2 * time.Hour},
			"j2": {0, time.Hour},
			"j3": {30 * time.Minute, 90 * time.Minute},
			"j5": {90 * time.Minute, 150 * time.Minute},
			"j4": {2 * time.Hour, 150 * time.Minute},
		}
		for _, o := range r.Outcomes {
			w := want[o.Workload]
			if !o.Completed || !o.FirstStart.Equal(t0.Add(w[0])) || !o.Finished.Equal(t0.Add(w[1])) {
				t.Errorf("ref=%v %s: started %s finished %s, want %s %s", ref, o.Workload, o.FirstStart.Sub(t0), o.Finished.Sub(t0), w[0], w[1])
			}
		}
		s := r.Summary
		checks := []struct {
			name      string
			got, want float64
		}{
			{"total", s.TotalUSD, 124},
			{"take-or-pay", s.TakeOrPayUSD, 40},
			{"wasted", s.WastedTakeOrPayUSD, 4},
			{"run", s.GPUHoursRun, 46},
			{"lost", s.GPUHoursLost, 0},
			{"jct mean", r.JCT.Mean, (2 + 1 + 1 + 1.5 + 1) * 3600 / 5},
			{"queue max", r.Queueing.Max, 1800},
		}
		for _, c := range checks {
			if !near(c.got, c.want) {
				t.Errorf("ref=%v %s = %v, want %v", ref, c.name, c.got, c.want)
			}
		}
		if len(s.ByProvider) != 2 || !near(s.ByProvider[0].USD, 40) || !near(s.ByProvider[1].USD, 84) {
			t.Errorf("ref=%v by provider = %+v, want aws 40, gcp 84", ref, s.ByProvider)
		}
		if !r.End.Equal(t0.Add(150 * time.Minute)) {
			t.Errorf("end = %s", r.End)
		}
	}
}

// TestHandPreemption checks a preemption and restart from a checkpoint.
//
// One on-demand node of 8 H100 at $1/GPU-h. "low" (priority 0, 8 GPUs, 2h
// of work, checkpoint every 30m) starts at 0:00. "high" (priority 1, 8
// GPUs, 1h) arrives at 1:10 and preempts it: low saved 1h of work at its
// 1:00 checkpoint and loses the 10 minutes since (8 x 1/6 = 1.333 GPU-h).
// high runs 1:10-2:10; low restarts at 2:10 with 1h left and ends at 3:10.
// GPU-hours run 8x1 + 8x1 + 8x1 = 24, lost 4/3, cost $25.333.
func TestHandPreemption(t *testing.T) {
	t.Parallel()
	f := &model.Fleet{
		Clusters: []model.Cluster{cluster("a", "aws", pool("p", "H100", 1, model.OnDemand, 1))},
		Policy:   model.Policy{Preemption: true},
	}
	low := wl("low", 0, 8, 2*time.Hour)
	low.CheckpointInterval = 30 * time.Minute
	high := wl("high", 70*time.Minute, 8, time.Hour)
	high.Priority = 1
	for _, ref := range []bool{false, true} {
		r := mustRun(t, Config{Seed: 1, Fleet: f, reference: ref}, []*model.Workload{low, high})
		got := map[string]Outcome{}
		for _, o := range r.Outcomes {
			got[o.Workload] = o
		}
		if o := got["low"]; !o.Finished.Equal(t0.Add(190*time.Minute)) || o.Attempts != 2 {
			t.Errorf("ref=%v low: %+v", ref, o)
		}
		if o := got["high"]; !o.FirstStart.Equal(t0.Add(70*time.Minute)) || !o.Finished.Equal(t0.Add(130*time.Minute)) {
			t.Errorf("ref=%v high: %+v", ref, o)
		}
		s := r.Summary
		if r.EnginePreemptions != 1 || !near(s.GPUHoursRun, 24) || !near(s.GPUHoursLost, 8.0/6) || !near(s.TotalUSD, 24+8.0/6) {
			t.Errorf("ref=%v preemptions %d, run %v, lost %v, cost %v", ref, r.EnginePreemptions, s.GPUHoursRun, s.GPUHoursLost, s.TotalUSD)
		}
	}
}
