package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
)

// The job page: one job, its attempts as the store keeps them, the tail of
// its output, and the cancel button.

type attempt struct {
	N        int
	Where    string
	Start    time.Time
	End      time.Time
	Ended    string
	Running  bool
	Duration time.Duration
}

type jobData struct {
	Job       *api.Job
	Name      string
	GPU       model.GPUModel
	GPUs      int
	Where     string
	Attempts  []attempt
	Events    []api.Event
	Logs      string
	CostSoFar float64
	CanCancel bool
}

func (h *Handler) loadJob(s *session, idText string) (*api.Job, error) {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 {
		return nil, &apiErr{status: http.StatusNotFound, msg: fmt.Sprintf("no job %q", idText)}
	}
	var j api.Job
	if err := h.getJSON(s, "/v1/jobs/"+strconv.FormatInt(id, 10), &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// logTail is the last lines of the job's current attempt. The API reads
// them from the end of each log (?tail), so a view costs about the same
// whatever the log's size.
func (h *Handler) logTail(s *session, id int64) string {
	const maxBytes, maxLines = 64 << 10, 200
	b, err := s.call(h.cfg.API, http.MethodGet, "/v1/jobs/"+strconv.FormatInt(id, 10)+"/logs?tail="+strconv.Itoa(maxLines), nil)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

func (h *Handler) job(s *session) (string, view, error) {
	j, err := h.loadJob(s, s.r.PathValue("id"))
	if err != nil {
		return "", view{}, err
	}
	var ev struct {
		Events []api.Event `json:"events"`
	}
	if err := h.getJSON(s, fmt.Sprintf("/v1/jobs/%d/events", j.ID), &ev); err != nil {
		return "", view{}, err
	}
	g, n := jobGPUs(j)
	d := jobData{Job: j, Name: jobName(j), GPU: g, GPUs: n, Where: where(j.Placement), Events: ev.Events,
		Logs: h.logTail(s, j.ID), CanCancel: s.who.CanCancel() && !j.State.Terminal()}
	var as api.AttemptList
	if err := h.getJSON(s, fmt.Sprintf("/v1/jobs/%d/attempts", j.ID), &as); err != nil {
		return "", view{}, err
	}
	d.Attempts = attempts(as.Attempts, s.now)
	// Cost so far: the GPUs held by each attempt that ran, at the current
	// placement's billed price (the API keeps no per-job usage).
	if p := j.Placement; p != nil {
		for _, a := range d.Attempts {
			d.CostSoFar += a.Duration.Hours() * float64(p.GPUsPerNode*len(p.Nodes)) * p.BilledPerGPUHour
		}
	}
	return "job", view{Title: fmt.Sprintf("Job %d · %s", j.ID, d.Name), Nav: "queue", Refresh: refreshSeconds, Data: d}, nil
}

// attempts is each attempt as the store keeps it (GET
// /v1/jobs/{id}/attempts): where it ran, how long, and how it ended.
func attempts(as []api.Attempt, now time.Time) []attempt {
	out := make([]attempt, 0, len(as))
	for _, x := range as {
		a := attempt{N: x.Attempt, Start: x.Started, End: x.Ended}
		if x.Cluster != "" {
			a.Where = x.Cluster + "/" + x.Pool
			if x.Provider != "" || x.Region != "" {
				a.Where += " (" + strings.TrimSpace(x.Provider+" "+x.Region) + ")"
			}
		}
		a.Running = x.Outcome == "" && x.State == api.Running
		if x.Outcome != "" {
			a.Ended = x.Outcome
			if x.Reason != "" {
				a.Ended += ": " + x.Reason
			}
		}
		if !a.Start.IsZero() {
			end := a.End
			if end.IsZero() {
				end = now
			}
			if end.After(a.Start) {
				a.Duration = end.Sub(a.Start)
			}
		}
		out = append(out, a)
	}
	return out
}

// logsFragment is the log tail alone, for the refresh script.
func (h *Handler) logsFragment(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r)
	if err != nil {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	j, err := h.loadJob(s, r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(h.logTail(s, j.ID)))
}

// cancel asks the API to cancel the job; the API decides who may.
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r)
	if err != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !h.checkCSRF(s, r) {
		http.Error(w, "bad form token; reload the page and try again", http.StatusForbidden)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if _, err := s.call(h.cfg.API, http.MethodPost, fmt.Sprintf("/v1/jobs/%d/cancel", id), nil); err != nil {
		status := http.StatusInternalServerError
		if ae, ok := err.(*apiErr); ok {
			status = ae.status
		}
		h.render(w, r, status, "error", view{Title: "Cancel failed", Error: err.Error(), Who: s.who, CSRF: s.csrf, Now: s.now})
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/jobs/%d", id), http.StatusSeeOther)
}
