package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
)

// The dashboard reads the API's answers as internal/api types; pages
// embed them (fleetCluster, teamRow) and add what only pages show.

func (h *Handler) clusters(s *session) ([]api.Cluster, error) {
	var out api.ClusterList
	err := h.getJSON(s, "/v1/clusters", &out)
	return out.Clusters, err
}

func (h *Handler) teamList(s *session) ([]api.Team, error) {
	var out api.TeamList
	err := h.getJSON(s, "/v1/teams", &out)
	return out.Teams, err
}

func (h *Handler) usage(s *session, since time.Time, by string) (api.Usage, error) {
	var out api.Usage
	q := url.Values{"since": {since.UTC().Format(time.RFC3339)}, "by": {by}}
	err := h.getJSON(s, "/v1/usage?"+q.Encode(), &out)
	return out, err
}

// fleetDoc is the applied fleet, or nil while the server runs its
// built-in local fleet.
func (h *Handler) fleetDoc(s *session) (*model.Fleet, error) {
	var out api.FleetDoc
	err := h.getJSON(s, "/v1/fleet", &out)
	var ae *apiErr
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, _, err := spec.ParseFleetWith([]byte(out.Fleet), "fleet.yaml", spec.FleetOptions{Backends: h.cfg.Backends})
	if err != nil {
		return nil, fmt.Errorf("reading the applied fleet: %w", err)
	}
	return f, nil
}

// activeStates are the states of work that holds or waits for GPUs.
var activeStates = []api.State{api.Pending, api.Admitted, api.Dispatched, api.Running}

// jobs lists every job the session sees in the given states, in ID order,
// paging through the API.
func (h *Handler) jobs(s *session, states []api.State) ([]*api.Job, error) {
	st := ""
	for i, x := range states {
		if i > 0 {
			st += ","
		}
		st += string(x)
	}
	var all []*api.Job
	var after int64
	for {
		q := url.Values{"limit": {"10000"}, "after": {strconv.FormatInt(after, 10)}}
		if st != "" {
			q.Set("state", st)
		}
		var out struct {
			Jobs []listJob `json:"jobs"`
		}
		if err := h.getJSON(s, "/v1/jobs?"+q.Encode(), &out); err != nil {
			return nil, err
		}
		for i := range out.Jobs {
			all = append(all, out.Jobs[i].job())
		}
		if len(out.Jobs) < 10000 {
			return all, nil
		}
		after = out.Jobs[len(out.Jobs)-1].ID
	}
}

// listJob is the part of an api.Job that lists show, under the same JSON
// names (TestListJobDecodes checks them): decoding only these fields
// keeps a page over 10,000 jobs cheap (no spec, no environment, no run
// script).
type listJob struct {
	ID        int64          `json:"id"`
	Team      string         `json:"team"`
	State     api.State      `json:"state"`
	Attempt   int            `json:"attempt"`
	Reason    string         `json:"reason"`
	Placement *api.Placement `json:"placement"`
	Created   time.Time      `json:"created"`
	Updated   time.Time      `json:"updated"`
	StartedAt time.Time      `json:"started_at"`
	Workload  *struct {
		Name     string `json:"name"`
		Priority int    `json:"priority"`
		NumNodes int    `json:"num_nodes"`
		Options  []struct {
			GPU         model.GPUModel `json:"gpu"`
			GPUsPerNode int            `json:"gpus_per_node"`
		} `json:"options"`
	} `json:"workload"`
}

func (l *listJob) job() *api.Job {
	j := &api.Job{ID: l.ID, Team: l.Team, State: l.State, Attempt: l.Attempt, Reason: l.Reason, Placement: l.Placement,
		Created: l.Created, Updated: l.Updated, StartedAt: l.StartedAt}
	if w := l.Workload; w != nil {
		j.Workload = &api.Workload{Name: w.Name, Priority: w.Priority, NumNodes: w.NumNodes}
		if len(w.Options) > 0 {
			j.Workload.Options = []api.Resources{{GPU: w.Options[0].GPU, GPUsPerNode: w.Options[0].GPUsPerNode}}
		}
	}
	return j
}

// queueOrder sorts pending work the way the engine takes it: higher
// priority first, then earlier submission, then ID.
func queueOrder(js []*api.Job) {
	prio := func(j *api.Job) int {
		if j.Workload == nil {
			return 0
		}
		return j.Workload.Priority
	}
	slices.SortStableFunc(js, func(a, b *api.Job) int {
		if pa, pb := prio(a), prio(b); pa != pb {
			return pb - pa
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
}

// jobName is the workload's name, or "job N".
func jobName(j *api.Job) string {
	if j.Workload != nil && j.Workload.Name != "" {
		return j.Workload.Name
	}
	return "job " + strconv.FormatInt(j.ID, 10)
}

// jobGPUs is what the job holds (placed) or asks for (first option).
func jobGPUs(j *api.Job) (model.GPUModel, int) {
	if p := j.Placement; p != nil {
		return p.GPU, p.GPUsPerNode * len(p.Nodes)
	}
	if w := j.Workload; w != nil && len(w.Options) > 0 {
		return w.Options[0].GPU, w.GPUs(0)
	}
	return "", 0
}

// pager is one page of a list: its number (from 1), how many pages and
// rows there are, and the rows [From, To) it shows.
type pager struct {
	Page, Pages, Total, From, To int
}

func (p pager) Prev() int { return p.Page - 1 }
func (p pager) Next() int { return p.Page + 1 }
func (p pager) HasPrev() bool {
	return p.Page > 1
}
func (p pager) HasNext() bool { return p.Page < p.Pages }

// paginate reads the page number from the query parameter key (out of
// range: the nearest page) for a list of n rows, PageSize a page.
func paginate(r *http.Request, key string, n int) pager {
	pages := (n + PageSize - 1) / PageSize
	if pages < 1 {
		pages = 1
	}
	page, _ := strconv.Atoi(r.URL.Query().Get(key))
	page = max(1, min(page, pages))
	lo := (page - 1) * PageSize
	hi := min(lo+PageSize, n)
	return pager{Page: page, Pages: pages, Total: n, From: lo, To: hi}
}
