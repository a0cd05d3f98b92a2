package trace

import (
	"strconv"
	"strings"
	"time"

	"gpubroker/internal/model"
)

// openbGPUs maps openb's GPU type labels (node "model", pod "gpu_spec") to
// canonical GPU model names. G1, G2 and G3 are undisclosed internal codes
// with no public name: they are absent here, so they map to DefaultGPU and
// are counted in Result.Notes.
var openbGPUs = map[string]model.GPUModel{
	"V100M16": "V100",      // V100 16 GB
	"V100M32": "V100-32GB", // V100 32 GB
	"P100":    "P100",
	"T4":      "T4",
	"A10":     "A10",
}

// openbQoS maps the pod qos class to Workload.Priority: best effort lowest,
// then Kubernetes Burstable, Alibaba's latency-sensitive class, and
// Kubernetes Guaranteed highest.
var openbQoS = map[string]int{
	"be":         0,
	"burstable":  1,
	"ls":         2,
	"guaranteed": 3,
}

var openbFormat = format{
	required: []string{"name", "num_gpu"},
	parse:    parseOpenb,
}

// parseOpenb maps an openb pod row: name, num_gpu, gpu_milli, gpu_spec,
// qos, creation_time, deletion_time, scheduled_time. cpu_milli, memory_mib
// and pod_phase are not used.
//
// Duration is deletion_time minus scheduled_time (the time the pod held its
// GPUs), or minus creation_time for a pod never scheduled (Pending: how
// long it waited for GPUs before it was deleted). Running pods are deleted
// at the end of the trace, so their durations are cut off there.
//
// A file with no creation_time column (openb_pod_list_multigpu50.csv)
// reads with every pod at t=0 and zero duration, noted in Result.Notes.
func parseOpenb(c *cols, rec []string, t *tally) (row, *rowError) {
	var r row
	if r.id = c.get(rec, "name"); r.id == "" {
		return r, reject(ReasonMissingID, "empty name")
	}
	var rerr *rowError
	if r.gpus, rerr = gpuCount(c.get(rec, "num_gpu")); rerr != nil {
		return r, rerr
	}
	shared := false
	if s := c.get(rec, "gpu_milli"); s != "" {
		m, err := strconv.Atoi(s)
		if err != nil || m < 0 || m > 1000 {
			return r, reject(ReasonGPUMilli, "gpu_milli %q is not 0..1000", s)
		}
		// A share of one GPU: a whole one is asked for.
		shared = m < 1000
	}
	for _, label := range strings.Split(c.get(rec, "gpu_spec"), "|") {
		if label = strings.TrimSpace(label); label != "" {
			r.gpuTypes = append(r.gpuTypes, label)
		}
	}
	q := c.get(rec, "qos")
	p, knownQoS := openbQoS[strings.ToLower(q)]
	r.priority = p
	// Tally only rows that are kept.
	keep := func() (row, *rowError) {
		if shared {
			t.shared++
		}
		if q != "" && !knownQoS {
			t.unknownQoS[q]++
		}
		return r, nil
	}
	if !c.has("creation_time") {
		t.noTimes = true
		return keep()
	}
	var err error
	if r.at, err = seconds(c.get(rec, "creation_time")); err != nil {
		return r, reject(ReasonSubmitTime, "creation_time: %v", err)
	}
	var del time.Duration
	if del, err = seconds(c.get(rec, "deletion_time")); err != nil {
		return r, reject(ReasonDuration, "deletion_time: %v", err)
	}
	from := r.at
	if s := c.get(rec, "scheduled_time"); s != "" {
		sch, err := seconds(s)
		if err != nil {
			return r, reject(ReasonDuration, "scheduled_time: %v", err)
		}
		if sch < r.at {
			return r, reject(ReasonDuration, "scheduled_time %s is before creation_time %s", s, c.get(rec, "creation_time"))
		}
		from = sch
	}
	if del < from {
		return r, reject(ReasonDuration, "deletion_time %s is before the pod started", c.get(rec, "deletion_time"))
	}
	r.dur = del - from
	return keep()
}
