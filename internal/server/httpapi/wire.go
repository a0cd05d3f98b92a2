package httpapi

import (
	"gpubroker/internal/api"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// The conversion boundary: handlers answer with internal/api types only,
// built here from the store's and the model's. The store's Go types are
// its storage contract, not the wire format (docs/adr/0005-wire-types.md).

func apiJob(j *store.Job) *api.Job {
	if j == nil {
		return nil
	}
	out := &api.Job{
		ID: j.ID, Key: j.Key, After: j.After, Team: j.Team, User: j.User, Workload: apiWorkload(j.Workload),
		Spec: j.Spec, State: api.State(j.State), Attempt: j.Attempt, Reason: j.Reason,
		Placement: apiPlacement(j.Placement), Restarts: j.Restarts, ExitCode: j.ExitCode,
		Created: j.Created, Updated: j.Updated, StartedAt: j.StartedAt, EndedAt: j.EndedAt,
	}
	return out
}

func apiJobs(js []*store.Job) []*api.Job {
	out := make([]*api.Job, len(js))
	for i, j := range js {
		out[i] = apiJob(j)
	}
	return out
}

func apiWorkload(w *model.Workload) *api.Workload {
	if w == nil {
		return nil
	}
	out := &api.Workload{
		ID: w.ID, Name: w.Name, Kind: w.Kind, Team: w.Team, Priority: w.Priority, NumNodes: w.NumNodes,
		Options: make([]api.Resources, len(w.Options)), Order: w.Order,
		Envs: w.Envs, Setup: w.Setup, Run: w.Run, Workdir: w.Workdir, FileMounts: w.FileMounts,
		Recovery: api.Recovery{Strategy: w.Recovery.Strategy, MaxRestartsOnErrors: w.Recovery.MaxRestartsOnErrors,
			RecoverOnExitCodes: w.Recovery.RecoverOnExitCodes},
		Deadline:      w.Deadline,
		CheckpointDir: w.CheckpointDir, CheckpointIntervalSeconds: w.CheckpointInterval.Seconds(),
		DataRegion: w.DataRegion, DataGB: w.DataGB, DurationSeconds: w.Duration.Seconds(),
		Submitted: w.Submitted, AvoidRegions: w.AvoidRegions,
	}
	for i, o := range w.Options {
		out.Options[i] = api.Resources{
			GPU: o.GPU, GPUsPerNode: o.GPUsPerNode, Provider: o.Provider, Region: o.Region, Zone: o.Zone,
			UseSpot: o.UseSpot, AllowSpot: o.AllowSpot, CPUs: o.CPUs, CPUsAtLeast: o.CPUsAtLeast,
			MemoryGiB: o.MemoryGiB, MemoryAtLeast: o.MemoryAtLeast, InstanceType: o.InstanceType,
			MaxHourlyCost: o.MaxHourlyCost, DiskSizeGiB: o.DiskSizeGiB, AcceleratorArg: o.AcceleratorArg,
		}
	}
	if s := w.Service; s != nil {
		out.Service = &api.Service{MinReplicas: s.MinReplicas, MaxReplicas: s.MaxReplicas, ReadinessPath: s.ReadinessPath, Port: s.Port}
	}
	return out
}

func apiPlacement(p *store.Placement) *api.Placement {
	if p == nil {
		return nil
	}
	return &api.Placement{
		Cluster: p.Cluster, Pool: p.Pool, Provider: p.Provider, Region: p.Region, GPU: p.GPU,
		GPUsPerNode: p.GPUsPerNode, Nodes: p.Nodes, PriceClass: p.PriceClass,
		BilledPerGPUHour: p.BilledPerGPUHour, Contract: p.Contract, Borrowed: p.Borrowed, Host: p.Host,
	}
}

func apiEvents(evs []store.Event) []api.Event {
	out := make([]api.Event, len(evs))
	for i, e := range evs {
		out[i] = api.Event{JobID: e.JobID, Seq: e.Seq, At: e.At, Actor: e.Actor, From: api.State(e.From),
			To: api.State(e.To), Attempt: e.Attempt, Message: e.Message}
	}
	return out
}

func apiTokens(ts []store.Token) []api.Token {
	out := make([]api.Token, len(ts))
	for i, t := range ts {
		out[i] = apiToken(t)
	}
	return out
}

func apiToken(t store.Token) api.Token {
	return api.Token{ID: t.ID, Team: t.Team, Role: t.Role, Name: t.Name, Created: t.Created,
		Expires: t.Expires, LastUsed: t.LastUsed, Revoked: t.Revoked}
}

func apiAttempts(as []Attempt) []api.Attempt {
	out := make([]api.Attempt, len(as))
	for i, a := range as {
		out[i] = api.Attempt{Attempt: a.Attempt, Cluster: a.Cluster, Pool: a.Pool, Provider: a.Provider, Region: a.Region,
			State: api.State(a.State), Admitted: a.Admitted, Started: a.Started, Ended: a.Ended, Outcome: a.Outcome, Reason: a.Reason}
	}
	return out
}
