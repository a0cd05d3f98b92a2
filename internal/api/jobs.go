package api

import (
	"time"

	"gpubroker/internal/model"
)

// State is where a job stands. The values are the store's; the server
// converts, so the wire does not depend on the store package.
type State string

// The states of a job (DESIGN.md: PENDING -> ADMITTED -> DISPATCHED ->
// RUNNING -> SUCCEEDED | FAILED | CANCELLED).
const (
	Pending    State = "PENDING"
	Admitted   State = "ADMITTED"
	Dispatched State = "DISPATCHED"
	Running    State = "RUNNING"
	Succeeded  State = "SUCCEEDED"
	Failed     State = "FAILED"
	Cancelled  State = "CANCELLED"
)

// States lists every state in lifecycle order.
var States = []State{Pending, Admitted, Dispatched, Running, Succeeded, Failed, Cancelled}

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	for _, x := range States {
		if s == x {
			return true
		}
	}
	return false
}

// Terminal reports whether a job in s has ended for good.
func (s State) Terminal() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Job is one submitted workload and where it stands (GET /v1/jobs/{id}).
type Job struct {
	ID int64 `json:"id"`
	// Key is the stored idempotency key, TEAM/KEY/INDEX.
	Key string `json:"key,omitempty"`
	// After is the job this one waits for: the previous pipeline stage.
	After    int64     `json:"after,omitempty"`
	Team     string    `json:"team"`
	User     string    `json:"user"`
	Workload *Workload `json:"workload"`
	// Spec is the task file as submitted.
	Spec    string `json:"spec,omitempty"`
	State   State  `json:"state"`
	Attempt int    `json:"attempt"`
	// Reason says why the job waits (the engine's reason) or why it ended.
	Reason    string     `json:"reason,omitempty"`
	Placement *Placement `json:"placement,omitempty"`
	// Restarts counts error restarts used against the recovery policy.
	Restarts  int       `json:"restarts"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// Name is the workload's name, "" when it has none.
func (j *Job) Name() string {
	if j.Workload == nil {
		return ""
	}
	return j.Workload.Name
}

// Workload is what a job asks for, as its task file said.
type Workload struct {
	ID       string             `json:"id,omitempty"`
	Name     string             `json:"name,omitempty"`
	Kind     model.WorkloadKind `json:"kind"`
	Team     string             `json:"team,omitempty"`
	Priority int                `json:"priority,omitempty"`
	NumNodes int                `json:"num_nodes"`
	// Options are the accepted resources, in the task file's order.
	Options []Resources       `json:"options"`
	Order   model.OptionOrder `json:"order,omitempty"`

	Envs       map[string]string `json:"envs,omitempty"`
	Setup      string            `json:"setup,omitempty"`
	Run        string            `json:"run,omitempty"`
	Workdir    string            `json:"workdir,omitempty"`
	FileMounts map[string]string `json:"file_mounts,omitempty"`
	Recovery   Recovery          `json:"recovery,omitzero"`
	Service    *Service          `json:"service,omitempty"`

	Deadline      time.Time `json:"deadline,omitzero"`
	CheckpointDir string    `json:"checkpoint_dir,omitempty"`
	// CheckpointIntervalSeconds is how often the job checkpoints; absent
	// when it does not.
	CheckpointIntervalSeconds float64 `json:"checkpoint_interval_seconds,omitempty"`
	DataRegion                string  `json:"data_region,omitempty"`
	DataGB                    float64 `json:"data_gb,omitempty"`
	// DurationSeconds is the expected run time, when one was given.
	DurationSeconds float64   `json:"duration_seconds,omitempty"`
	Submitted       time.Time `json:"submitted,omitzero"`
	// AvoidRegions are regions the current attempt must not run in
	// (job_recovery eager_next_region).
	AvoidRegions []string `json:"avoid_regions,omitempty"`
}

// GPUs is the workload's total GPU count under option i.
func (w *Workload) GPUs(i int) int { return w.NumNodes * w.Options[i].GPUsPerNode }

// Resources is one accepted resource option of a workload.
type Resources struct {
	GPU            model.GPUModel `json:"gpu"`
	GPUsPerNode    int            `json:"gpus_per_node"`
	Provider       model.Provider `json:"provider,omitempty"`
	Region         string         `json:"region,omitempty"`
	Zone           string         `json:"zone,omitempty"`
	UseSpot        bool           `json:"use_spot,omitempty"`
	AllowSpot      bool           `json:"allow_spot,omitempty"`
	CPUs           float64        `json:"cpus,omitempty"`
	CPUsAtLeast    bool           `json:"cpus_at_least,omitempty"`
	MemoryGiB      float64        `json:"memory_gib,omitempty"`
	MemoryAtLeast  bool           `json:"memory_at_least,omitempty"`
	InstanceType   string         `json:"instance_type,omitempty"`
	MaxHourlyCost  float64        `json:"max_hourly_cost,omitempty"`
	DiskSizeGiB    int            `json:"disk_size_gib,omitempty"`
	AcceleratorArg string         `json:"accelerator_arg,omitempty"`
}

// Recovery is what happens when an attempt fails or is lost.
type Recovery struct {
	Strategy            string `json:"strategy,omitempty"`
	MaxRestartsOnErrors int    `json:"max_restarts_on_errors,omitempty"`
	RecoverOnExitCodes  []int  `json:"recover_on_exit_codes,omitempty"`
}

// Service is the serving part of a service workload.
type Service struct {
	MinReplicas   int    `json:"min_replicas,omitempty"`
	MaxReplicas   int    `json:"max_replicas,omitempty"`
	ReadinessPath string `json:"readiness_path,omitempty"`
	Port          int    `json:"port,omitempty"`
}

// Placement is where a job's current attempt was placed.
type Placement struct {
	Cluster     string           `json:"cluster"`
	Pool        string           `json:"pool"`
	Provider    model.Provider   `json:"provider"`
	Region      string           `json:"region"`
	GPU         model.GPUModel   `json:"gpu"`
	GPUsPerNode int              `json:"gpus_per_node"`
	Nodes       []int            `json:"nodes"`
	PriceClass  model.PriceClass `json:"price_class"`
	// BilledPerGPUHour is what the attempt is expected to cost.
	BilledPerGPUHour float64 `json:"billed_per_gpu_hour"`
	Contract         string  `json:"contract,omitempty"`
	Borrowed         bool    `json:"borrowed,omitempty"`
	// Host is the machine a local cluster's attempt runs on (a local
	// cluster is one machine: the leader's when the attempt was placed).
	Host string `json:"host,omitempty"`
}

// Event is one entry of a job's history (GET /v1/jobs/{id}/events).
type Event struct {
	JobID   int64     `json:"job_id"`
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"` // "api:TOKEN-ID", "reconciler", ...
	From    State     `json:"from,omitempty"`
	To      State     `json:"to"`
	Attempt int       `json:"attempt"`
	Message string    `json:"message,omitempty"`
}

// Attempt is one run of a job on one cluster (GET /v1/jobs/{id}/attempts).
type Attempt struct {
	Attempt  int    `json:"attempt"`
	Cluster  string `json:"cluster,omitempty"`
	Pool     string `json:"pool,omitempty"`
	Provider string `json:"provider,omitempty"`
	Region   string `json:"region,omitempty"`
	// State is the last state the attempt reached: its job's state for
	// the current attempt; for an earlier one the state it was in when it
	// ended (RUNNING when it ran and was lost, preempted or restarted).
	State    State     `json:"state"`
	Admitted time.Time `json:"admitted,omitzero"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
	// Outcome is how it ended: SUCCEEDED, FAILED, CANCELLED, or
	// OutcomeRetried; empty while it lasts.
	Outcome string `json:"outcome,omitempty"`
	// Reason is why it ended, as the event that ended it says.
	Reason string `json:"reason,omitempty"`
}

// OutcomeRetried is the Outcome of an attempt that another one followed
// (lost, preempted, restarted after an error, not dispatchable).
const OutcomeRetried = "RETRIED"

// SubmitRequest is the body of POST /v1/jobs.
type SubmitRequest struct {
	Spec string `json:"spec"`
	// Team is the team to submit for (admins only; others submit for
	// their token's team).
	Team string `json:"team,omitempty"`
	// Key makes the submit idempotent.
	Key string `json:"key,omitempty"`
	// File names the task file in error messages (default task.yaml).
	File string `json:"file,omitempty"`
}

// SubmitResponse is the answer of POST /v1/jobs: one job per workload, in
// pipeline order.
type SubmitResponse struct {
	Jobs     []*Job   `json:"jobs"`
	Warnings []string `json:"warnings"`
}

// JobList is the answer of GET /v1/jobs.
type JobList struct {
	Jobs []*Job `json:"jobs"`
}

// EventList is the answer of GET /v1/jobs/{id}/events.
type EventList struct {
	Events []Event `json:"events"`
}

// AttemptList is the answer of GET /v1/jobs/{id}/attempts, oldest first.
type AttemptList struct {
	Attempts []Attempt `json:"attempts"`
}

// ListOptions filters and pages GET /v1/jobs.
type ListOptions struct {
	Team   string
	States []State
	// After pages: only jobs with a larger ID.
	After int64
	// Limit is the page size; 0 for the server's default.
	Limit int
}
