package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

const maxKeyLen = 200

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	if !p.canWrite() {
		return forbidden("a %s token cannot submit; ask for a member token of team %q", p.tok.Role, p.tok.Team)
	}
	var req api.SubmitRequest
	if e := decodeBody(w, r, MaxSpecBody, &req); e != nil {
		return e
	}
	if strings.TrimSpace(req.Spec) == "" {
		return invalid("spec", "spec is empty; send the task file's YAML as a string")
	}
	if len(req.Key) > maxKeyLen {
		return invalid("key", "key is %d bytes; give at most %d", len(req.Key), maxKeyLen)
	}
	team := p.tok.Team
	if req.Team != "" {
		if !p.admin() && req.Team != p.tok.Team {
			return &apiError{Status: http.StatusForbidden, Code: codeForbidden, Field: "team",
				Message: fmt.Sprintf("a token of team %q cannot submit for team %q", p.tok.Team, req.Team)}
		}
		team = req.Team
	}
	file := req.File
	if file == "" {
		file = "task.yaml"
	}
	task, err := spec.ParseTask([]byte(req.Spec), file)
	if err != nil {
		return specError(err)
	}
	fs := s.ctl.Fleet()
	for _, wl := range task.Workloads {
		t := team
		switch {
		case req.Team != "":
			// The request names the team: it wins over the file.
		case wl.Team != "" && p.admin():
			t = wl.Team
		case wl.Team != "" && wl.Team != p.tok.Team:
			return &apiError{Status: http.StatusForbidden, Code: codeForbidden, Field: "x-gpubroker.team",
				Message: fmt.Sprintf("x-gpubroker.team: %q, but a token of team %q submits only for its own team", wl.Team, p.tok.Team)}
		}
		if !model.ValidName(t) {
			// Job keys are TEAM/KEY: a team "beta/x" would share keys
			// with team "beta" (the same rule as token teams).
			field := "x-gpubroker.team"
			if req.Team != "" {
				field = "team"
			}
			return invalid(field, "%s: %q is not a valid team name; %s", field, clip(t), model.NameRule)
		}
		if len(fs.Teams) > 0 && !fs.Teams[t] {
			return invalid("x-gpubroker.team", "x-gpubroker.team: team %q is not in the fleet (%s); use one of %s",
				t, fs.Name, strings.Join(fs.TeamNames, ", "))
		}
		if most, ok := fs.Fleet.MaxPriority(t); ok && wl.Priority > most && !p.admin() {
			return &apiError{Status: http.StatusForbidden, Code: codeForbidden, Field: "x-gpubroker.priority",
				Message: fmt.Sprintf("x-gpubroker.priority: %d is above team %s's maximum %d (the fleet's max_priority); give %d or less, or ask an admin", wl.Priority, t, most, most)}
		}
		wl.Team = t
	}
	jobs := make([]*store.Job, 0, len(task.Workloads))
	warnings := make([]string, 0, len(task.Warnings))
	for _, wn := range task.Warnings {
		warnings = append(warnings, wn.String())
	}
	user := p.tok.Name
	if user == "" {
		user = p.tok.ID
	}
	now := s.now().UTC()
	created := 0
	for i, wl := range task.Workloads {
		j := &store.Job{Team: wl.Team, User: user, Workload: wl, Spec: req.Spec}
		if i > 0 {
			// A pipeline: this stage runs once the previous one succeeded
			// (see pipeline.go).
			j.After = jobs[i-1].ID
		}
		if req.Key != "" {
			j.Key = jobKey(wl.Team, req.Key, i)
		}
		got, err := s.store.CreateJob(r.Context(), j, now)
		switch {
		case err == nil:
			created++
		case errors.Is(err, store.ErrConflict) && req.Key != "" && got != nil:
			// Submitted before with this key: answer with that job.
		default:
			if req.Key == "" {
				// Without a key a retry would duplicate what was made, so
				// undo it: the submit changes nothing.
				s.undoSubmit(jobs, p.actor())
			}
			return storeError(err, "job")
		}
		jobs = append(jobs, got)
	}
	status := http.StatusCreated
	if created == 0 {
		status = http.StatusOK
	} else {
		s.ctl.Kick()
	}
	writeJSON(w, status, api.SubmitResponse{Jobs: apiJobs(jobs), Warnings: warnings})
	return nil
}

// jobKey is the stored idempotency key: scoped by team, so one team's key
// never answers with another team's job, and by the workload's index in a
// pipeline.
func jobKey(team, key string, i int) string {
	return team + "/" + key + "/" + strconv.Itoa(i)
}

// undoSubmit cancels the jobs of a pipeline whose later jobs could not be
// stored, before the reconciler can run them (they are Pending).
func (s *Server) undoSubmit(jobs []*store.Job, actor string) {
	ctx, cancel := context.WithTimeout(context.Background(), contextTimeout)
	defer cancel()
	for _, j := range jobs {
		_, err := s.store.MoveJob(ctx, j.ID, store.Move{From: store.Pending, Attempt: j.Attempt, To: store.Cancelled,
			Reason: "SubmitFailed: a later workload of the same submit could not be stored", Actor: actor, At: s.now().UTC()})
		if err != nil {
			s.log.Error("undoing a partial submit", "job", j.ID, "err", err)
		}
	}
}

const (
	defaultListLimit = 1000
	maxListLimit     = 10000
)

func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	q := r.URL.Query()
	f := store.Filter{Team: q.Get("team"), Limit: defaultListLimit}
	if !p.admin() {
		if f.Team != "" && f.Team != p.tok.Team {
			// Another team's work is absent, not forbidden.
			writeJSON(w, http.StatusOK, api.JobList{Jobs: []*api.Job{}})
			return nil
		}
		f.Team = p.tok.Team
	}
	if v := q.Get("state"); v != "" {
		for _, one := range strings.Split(v, ",") {
			st := store.State(strings.ToUpper(strings.TrimSpace(one)))
			if !st.Valid() {
				return invalid("state", "state: unknown state %q; use PENDING, ADMITTED, DISPATCHED, RUNNING, SUCCEEDED, FAILED or CANCELLED", one)
			}
			if !slices.Contains(f.States, st) {
				f.States = append(f.States, st)
			}
		}
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return invalid("after", "after: %q is not a job ID", v)
		}
		f.AfterID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return invalid("limit", "limit: %q is out of range; give 1 to %d", v, maxListLimit)
		}
		f.Limit = n
	}
	jobs, err := s.store.ListJobs(r.Context(), f)
	if err != nil {
		return internalError(err)
	}
	s.ctl.Explain(jobs)
	writeJSON(w, http.StatusOK, api.JobList{Jobs: apiJobs(jobs)})
	return nil
}

// visibleJob reads the job named by the path's {id}, answering 404 for a
// job of another team exactly as for one that does not exist.
func (s *Server) visibleJob(r *http.Request, p principal) (*store.Job, *apiError) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		return nil, notFound("job %q not found; job IDs are positive integers", raw)
	}
	j, err := s.store.GetJob(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.sees(j.Team)) {
		return nil, notFound("job %d not found", id)
	}
	if err != nil {
		return nil, internalError(err)
	}
	s.ctl.Explain([]*store.Job{j})
	return j, nil
}

func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	j, e := s.visibleJob(r, p)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, apiJob(j))
	return nil
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	j, e := s.visibleJob(r, p)
	if e != nil {
		return e
	}
	evs, err := s.store.Events(r.Context(), j.ID)
	if err != nil {
		return storeError(err, "job")
	}
	writeJSON(w, http.StatusOK, api.EventList{Events: apiEvents(evs)})
	return nil
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	if !p.canWrite() {
		return forbidden("a %s token cannot cancel", p.tok.Role)
	}
	j, e := s.visibleJob(r, p)
	if e != nil {
		return e
	}
	j, err := s.ctl.Cancel(r.Context(), j, p.actor())
	if err != nil {
		return storeError(err, "job")
	}
	s.ctl.Explain([]*store.Job{j})
	writeJSON(w, http.StatusOK, apiJob(j))
	return nil
}
