package httpapi

import (
	"net/http"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/store"
)

// Attempt is one run of a job on one cluster, as the store keeps it
// (store.Attempt), in the API's wire form: where the engine placed it, when
// it started and ended, and why it ended. A job that failed over has one
// Attempt per cluster it ran on.
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
const OutcomeRetried = store.OutcomeRetried

func (s *Server) handleAttempts(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	j, e := s.visibleJob(r, p)
	if e != nil {
		return e
	}
	stored, err := s.store.Attempts(r.Context(), j.ID)
	if err != nil {
		return storeError(err, "job")
	}
	// Attempts from before the store kept them (filled from their events)
	// have no provider and region: the fleet's cluster of that name says.
	clusters := map[string][2]string{}
	for _, c := range s.ctl.Fleet().Fleet.Clusters {
		clusters[c.Name] = [2]string{string(c.Provider), c.Region}
	}
	as := make([]Attempt, len(stored))
	for i, a := range stored {
		as[i] = Attempt{Attempt: a.Attempt, Cluster: a.Cluster, Pool: a.Pool, Provider: string(a.Provider),
			Region: a.Region, State: a.State, Admitted: a.Admitted, Started: a.Started, Ended: a.Ended,
			Outcome: a.Outcome, Reason: a.Reason}
		if c, ok := clusters[a.Cluster]; ok && a.Provider == "" {
			as[i].Provider, as[i].Region = c[0], c[1]
		}
	}
	writeJSON(w, http.StatusOK, api.AttemptList{Attempts: apiAttempts(as)})
	return nil
}
