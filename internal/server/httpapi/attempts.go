package httpapi

import (
	"net/http"
	"strings"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/server/view"
	"gpubroker/internal/store"
)

// Attempt is one run of a job on one cluster, as its events tell it: where
// the engine placed it, when it started and ended, and why it ended. A job
// that failed over has one Attempt per cluster it ran on.
type Attempt struct {
	Attempt  int    `json:"attempt"`
	Cluster  string `json:"cluster,omitempty"`
	Pool     string `json:"pool,omitempty"`
	Provider string `json:"provider,omitempty"`
	Region   string `json:"region,omitempty"`
	// State is the last state the attempt reached: its job's state for
	// the current attempt; for an earlier one the state it was in when it
	// ended (RUNNING when it ran and was lost, preempted or restarted).
	State    store.State `json:"state"`
	Admitted time.Time   `json:"admitted,omitzero"`
	Started  time.Time   `json:"started,omitzero"`
	Ended    time.Time   `json:"ended,omitzero"`
	// Outcome is how it ended: SUCCEEDED, FAILED, CANCELLED, or RETRIED
	// for an attempt followed by another (lost, preempted, restarted after
	// an error, not dispatchable); empty while it lasts.
	Outcome string `json:"outcome,omitempty"`
	// Reason is why it ended, as the event that ended it says
	// ("Lost: cluster aws-slurm unreachable for 3s; ...").
	Reason string `json:"reason,omitempty"`
}

// OutcomeRetried is the Outcome of an attempt that another one followed.
const OutcomeRetried = "RETRIED"

// attemptsOf rebuilds a job's attempts from its events, oldest first.
func attemptsOf(evs []store.Event) []Attempt {
	var out []Attempt
	cur := func() *Attempt { return &out[len(out)-1] }
	for _, e := range evs {
		if len(out) == 0 || e.Attempt > cur().Attempt {
			if len(out) > 0 {
				a := cur()
				a.Ended, a.Outcome, a.Reason = e.At, OutcomeRetried, e.Message
			}
			out = append(out, Attempt{Attempt: e.Attempt, State: store.Pending})
		}
		a := cur()
		switch {
		case e.To == store.Admitted:
			a.Admitted = e.At
			if rest, ok := strings.CutPrefix(e.Message, view.PlacedPrefix); ok {
				ref, _, _ := strings.Cut(rest, " ")
				a.Cluster, a.Pool, _ = strings.Cut(ref, "/")
			}
		case e.To == store.Running:
			a.Started = e.At
		case e.To.Terminal():
			a.Ended, a.Outcome, a.Reason = e.At, string(e.To), e.Message
		}
		if e.To != store.Pending || e.From == "" {
			a.State = e.To
		}
	}
	return out
}

func (s *Server) handleAttempts(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	j, e := s.visibleJob(r, p)
	if e != nil {
		return e
	}
	evs, err := s.store.Events(r.Context(), j.ID)
	if err != nil {
		return storeError(err, "job")
	}
	as := attemptsOf(evs)
	clusters := map[string][2]string{}
	for _, c := range s.ctl.Fleet().Fleet.Clusters {
		clusters[c.Name] = [2]string{string(c.Provider), c.Region}
	}
	for i := range as {
		a := &as[i]
		if pl := j.Placement; pl != nil && a.Attempt == j.Attempt && pl.Cluster == a.Cluster {
			a.Provider, a.Region = string(pl.Provider), pl.Region
		} else if c, ok := clusters[a.Cluster]; ok {
			a.Provider, a.Region = c[0], c[1]
		}
	}
	writeJSON(w, http.StatusOK, api.AttemptList{Attempts: apiAttempts(as)})
	return nil
}
