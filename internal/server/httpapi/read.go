package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gpubroker/internal/api"
	"gpubroker/internal/engine"
	"gpubroker/internal/model"
	"gpubroker/internal/plandoc"
	"gpubroker/internal/server/view"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

func (s *Server) handleClusters(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	v := s.ctl.View()
	free := map[engine.PoolRef]int{}
	for _, ps := range v.Snap.Pools {
		n := 0
		for _, f := range ps.NodeFree {
			n += f
		}
		free[ps.Ref] = n
	}
	out := make([]api.Cluster, 0, len(v.Fleet.Fleet.Clusters))
	for _, c := range v.Fleet.Fleet.Clusters {
		h, checked := v.Health[c.Name]
		if !checked {
			h = view.ClusterHealth{State: view.StateUnknown, Why: "waiting for the first health check"}
		}
		cj := api.Cluster{Name: c.Name, Provider: c.Provider, Region: c.Region, Backend: string(c.Backend),
			Healthy: h.State == view.StateHealthy, State: h.State, Why: h.Why, Pools: make([]api.Pool, 0, len(c.Pools))}
		if !h.Checked.IsZero() {
			at := h.Checked.UTC()
			cj.CheckedAt = &at
		}
		for _, pl := range c.Pools {
			cj.Pools = append(cj.Pools, api.Pool{Name: pl.Name, GPU: pl.GPU, GPUsPerNode: pl.GPUsPerNode, Nodes: pl.Nodes,
				GPUsFree: free[engine.PoolRef{Cluster: c.Name, Pool: pl.Name}], PriceClass: pl.PriceClass})
		}
		out = append(out, cj)
	}
	writeJSON(w, http.StatusOK, api.ClusterList{Clusters: out})
	return nil
}

// handleTeams lists the fleet's teams (a non-admin sees its own) with
// what they hold now and spent this month. A fleet without teams (the
// built-in local one) lists the teams that hold or spent something.
func (s *Server) handleTeams(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	v := s.ctl.View()
	inUse := map[string]map[model.GPUModel]int{}
	for _, a := range v.Snap.Running {
		if inUse[a.Team] == nil {
			inUse[a.Team] = map[model.GPUModel]int{}
		}
		inUse[a.Team][a.GPU] += a.GPUs()
	}
	spend := v.Snap.TeamSpendUSD
	teams := v.Fleet.Fleet.Teams
	if len(teams) == 0 {
		names := map[string]bool{}
		for t := range inUse {
			names[t] = true
		}
		for t := range spend {
			names[t] = true
		}
		for t := range names {
			teams = append(teams, model.Team{Name: t, Weight: 1})
		}
		sort.Slice(teams, func(a, b int) bool { return teams[a].Name < teams[b].Name })
	}
	out := make([]api.Team, 0, len(teams))
	for _, t := range teams {
		if !p.sees(t.Name) {
			continue
		}
		weight := t.Weight
		if weight <= 0 {
			weight = 1
		}
		tj := api.Team{Name: t.Name, Cohort: t.Cohort, Weight: weight, Quota: t.Quota, InUse: inUse[t.Name],
			MonthlyBudgetUSD: t.MonthlyBudgetUSD, SpendThisMonthUSD: spend[t.Name]}
		if tj.Quota == nil {
			tj.Quota = map[model.GPUModel]int{}
		}
		if tj.InUse == nil {
			tj.InUse = map[model.GPUModel]int{}
		}
		out = append(out, tj)
	}
	writeJSON(w, http.StatusOK, api.TeamList{Teams: out})
	return nil
}

func usageDim(u store.Usage, dim string) string {
	switch dim {
	case "provider":
		return string(u.Provider)
	case "team":
		return u.Team
	case "cluster":
		return u.Cluster
	case "pool":
		return u.Pool
	case "price_class":
		return string(u.PriceClass)
	case "contract":
		return u.Contract
	}
	return ""
}

// parseSince reads "30d", "12h", "90m", "2w", a Go duration, or an RFC 3339
// time or a date (2026-03-01).
func parseSince(v string, now time.Time) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, true
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, true
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if len(v) > 1 {
		if u, ok := unit[v[len(v)-1]]; ok {
			n, err := strconv.ParseFloat(v[:len(v)-1], 64)
			if err == nil && n >= 0 {
				return now.Add(-time.Duration(n * float64(u))), true
			}
			return time.Time{}, false
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, false
	}
	return now.Add(-d), true
}

// handleUsage sums usage records overlapping [since, now), each counted
// for its part inside the interval, plus what running attempts used so
// far, grouped by the requested columns. Non-admins see their team only.
func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	q := r.URL.Query()
	now := s.now().UTC()
	since := now.Add(-30 * 24 * time.Hour)
	if v := q.Get("since"); v != "" {
		t, ok := parseSince(v, now)
		if !ok {
			return invalid("since", "since: %q is neither a duration (30d, 12h) nor a date (2026-03-01)", v)
		}
		since = t.UTC()
	}
	dims := []string{"provider"}
	if v := q.Get("by"); v != "" {
		dims = nil
		for _, d := range strings.Split(v, ",") {
			d = strings.TrimSpace(d)
			ok := false
			for _, k := range api.UsageColumns {
				ok = ok || k == d
			}
			if !ok {
				return invalid("by", "by: unknown column %q; use %s", d, strings.Join(api.UsageColumns, ", "))
			}
			dims = append(dims, d)
		}
	}
	recs, err := s.store.ListUsage(r.Context(), since, now)
	if err != nil {
		return internalError(err)
	}
	recs = append(recs, s.ctl.View().Running...)
	type acc struct {
		key   []string
		hours float64
		cost  float64
	}
	groups := map[string]*acc{}
	total := 0.0
	for _, u := range recs {
		if !p.sees(u.Team) || u.GPUs <= 0 || !u.End.After(u.Start) {
			continue
		}
		start, end := u.Start, u.End
		if start.Before(since) {
			start = since
		}
		if end.After(now) {
			end = now
		}
		if !end.After(start) {
			continue
		}
		frac := float64(end.Sub(start)) / float64(u.End.Sub(u.Start))
		key := make([]string, len(dims))
		for i, d := range dims {
			key[i] = usageDim(u, d)
		}
		k := strings.Join(key, "\x00")
		a := groups[k]
		if a == nil {
			a = &acc{key: key}
			groups[k] = a
		}
		a.hours += end.Sub(start).Hours() * float64(u.GPUs)
		a.cost += u.CostUSD * frac
		total += u.CostUSD * frac
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([]api.UsageRow, 0, len(keys))
	for _, k := range keys {
		a := groups[k]
		row := api.UsageRow{"gpu_hours": a.hours, "cost_usd": a.cost}
		for i, d := range dims {
			row[d] = a.key[i]
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, api.Usage{Since: since, Until: now, By: dims, Rows: rows, TotalCostUSD: total})
	return nil
}

// handlePlan ranks where each workload of a task would run against the
// server's fleet and its state as of the last round (what is running,
// usage, down clusters), exactly as engine.Plan does for the CLI.
func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	var req api.PlanRequest
	if e := decodeBody(w, r, MaxSpecBody, &req); e != nil {
		return e
	}
	if strings.TrimSpace(req.Spec) == "" {
		return invalid("spec", "spec is empty; send the task file's YAML as a string")
	}
	if req.Team != "" && !p.sees(req.Team) {
		return &apiError{Status: http.StatusForbidden, Code: codeForbidden, Field: "team",
			Message: fmt.Sprintf("a token of team %q cannot plan for team %q", p.tok.Team, req.Team)}
	}
	file := req.File
	if file == "" {
		file = "task.yaml"
	}
	task, err := spec.ParseTask([]byte(req.Spec), file)
	if err != nil {
		return specError(err)
	}
	v := s.ctl.View()
	now := s.now().UTC()
	doc := api.Plan{Fleet: v.Fleet.Name, Now: now, Workloads: make([]api.WorkloadPlan, 0, len(task.Workloads))}
	for _, wn := range task.Warnings {
		doc.Warnings = append(doc.Warnings, wn.String())
	}
	for _, wl := range task.Workloads {
		switch {
		case req.Team != "":
			wl.Team = req.Team
		case wl.Team == "" || !p.admin():
			wl.Team = p.tok.Team
		}
		cands := engine.Plan(v.Snap, v.Fleet.Fleet.Policy, wl, now)
		doc.Workloads = append(doc.Workloads, plandoc.Describe(wl, cands))
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	if !p.admin() {
		return forbidden("creating tokens needs an admin token")
	}
	var req api.TokenRequest
	if e := decodeBody(w, r, 64<<10, &req); e != nil {
		return e
	}
	if strings.TrimSpace(req.Team) == "" {
		return invalid("team", "team is empty; name the team the token acts for")
	}
	if !model.ValidName(req.Team) {
		return invalid("team", "team: %q is not a valid team name; %s", clip(req.Team), model.NameRule)
	}
	if err := api.CheckTokenName(req.Name); err != nil {
		return invalid("name", "name: %v", err)
	}
	if !ValidRole(req.Role) {
		return invalid("role", "role: unknown role %q; use %s", clip(req.Role), api.Roles)
	}
	ttl, err := api.ParseTTL(req.TTL)
	if err != nil {
		return invalid("ttl", "ttl: %v", err)
	}
	secret, t := NewToken(req.Team, req.Role, req.Name)
	t.Created = s.now().UTC()
	if ttl > 0 {
		t.Expires = t.Created.Add(ttl)
	}
	if err := s.store.CreateToken(r.Context(), t); err != nil {
		return storeError(err, "token")
	}
	writeJSON(w, http.StatusCreated, api.CreatedToken{Token: secret, ID: t.ID, Team: t.Team, Role: t.Role, Name: t.Name, Expires: t.Expires})
	return nil
}

// handleRevokeToken revokes a token by ID. Nothing caches tokens, so the
// next request with it gets 401, on this replica and every other.
func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	if !p.admin() {
		return forbidden("revoking tokens needs an admin token")
	}
	id := r.PathValue("id")
	if len(id) > 64 || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		// No token has such an ID (they are tok- and 12 hex digits), and
		// PostgreSQL refuses NUL in text.
		return notFound("no token %q; gpubroker token list shows their IDs", clip(id))
	}
	t, err := s.store.RevokeToken(r.Context(), id, s.now().UTC())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("no token %q; gpubroker token list shows their IDs", clip(id))
		}
		return storeError(err, "token")
	}
	s.log.Info("revoked a token", "token", t.ID, "team", t.Team, "role", t.Role, "by", p.actor())
	writeJSON(w, http.StatusOK, apiToken(t))
	return nil
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	if !p.admin() {
		return forbidden("listing tokens needs an admin token")
	}
	toks, err := s.store.ListTokens(r.Context())
	if err != nil {
		return internalError(err)
	}
	writeJSON(w, http.StatusOK, api.TokenList{Tokens: apiTokens(toks)})
	return nil
}

// clip shortens s for a message (a hostile name may be 100 KB).
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
