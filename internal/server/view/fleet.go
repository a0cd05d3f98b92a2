package view

import (
	"fmt"
	"sort"
	"time"

	"gpubroker/internal/engine"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// Fleet is one parsed fleet, shared read-only.
type Fleet struct {
	Fleet *model.Fleet
	// Version is the store's fleet version; 0 for the built-in local fleet.
	Version int64
	// Name says which fleet this is in messages and plan output.
	Name string
	// Applied is the fleet as applied when Fleet is its provisioned view
	// (elastic pools at their ready size, see control's provisioning
	// controller); nil when Fleet is.
	Applied   *model.Fleet
	Teams     map[string]bool
	TeamNames []string
	// Invalid, when set, is why the store's newest fleet (Version) does
	// not validate with this server (one an older version accepted): the
	// fleet then holds no cluster, and the reconciler schedules and
	// observes nothing until a valid fleet is applied.
	Invalid error
}

// InvalidFleet is the fleet state of a stored fleet version that does not
// validate: no clusters, and why.
func InvalidFleet(version int64, err error) *Fleet {
	fs := NewFleet(&model.Fleet{Policy: model.DefaultPolicy()}, version, fmt.Sprintf("fleet v%d (invalid)", version))
	fs.Invalid = err
	return fs
}

// NewFleet is f as version of the store's fleets, called name.
func NewFleet(f *model.Fleet, version int64, name string) *Fleet {
	fs := &Fleet{Fleet: f, Version: version, Name: name, Teams: map[string]bool{}}
	for _, t := range f.Teams {
		fs.Teams[t.Name] = true
		fs.TeamNames = append(fs.TeamNames, t.Name)
	}
	sort.Strings(fs.TeamNames)
	return fs
}

// Names of the built-in local fleet.
const (
	LocalCluster = "local"
	LocalPool    = "local"
)

// LocalFleet is the fleet a server runs while none was applied: this
// machine as one committed (free) pool of one node.
func LocalFleet(gpu model.GPUModel, gpus int) *model.Fleet {
	return &model.Fleet{
		Clusters: []model.Cluster{{
			Name: LocalCluster, Provider: "onprem", Region: "local", Backend: model.BackendLocal,
			Pools: []model.Pool{{Name: LocalPool, GPU: gpu, GPUsPerNode: gpus, Nodes: 1, PriceClass: model.Committed}},
		}},
		Policy: model.DefaultPolicy(),
	}
}

// QueuedAhead reports whether pl is on a queue slot of its pool.
func QueuedAhead(f *model.Fleet, pl *store.Placement) bool {
	if pl == nil || len(pl.Nodes) == 0 {
		return false
	}
	c := f.Cluster(pl.Cluster)
	if c == nil {
		return false
	}
	for i := range c.Pools {
		if c.Pools[i].Name == pl.Pool {
			return pl.Nodes[0] >= SlotBase(&c.Pools[i])
		}
	}
	return false
}

// SlotBase is the index of a pool's first queue slot: past every node the
// pool has or may add, so that work on slots never holds a real node.
func SlotBase(p *model.Pool) int { return max(p.Nodes, p.MaxNodes) }

// PlacedPrefix starts the message of every admission event ("placed on
// CLUSTER/POOL ..."): the reconciler writes it, GET /v1/jobs/{id}/attempts
// reads where each attempt ran from it.
const PlacedPrefix = "placed on "

// Round is what the last round saw, for the read endpoints.
type Round struct {
	At    time.Time
	Fleet *Fleet
	// Snap is the state after the round's decisions: what plan plans
	// against and what clusters and teams report.
	Snap *engine.Snapshot
	// Down maps a cluster that could not take work to why.
	Down map[string]string
	// Health holds each observed cluster's state as its last health
	// check found it; a cluster of the fleet without an entry has not
	// been checked yet (StateUnknown).
	Health map[string]ClusterHealth
	// Running is the usage so far of attempts still running.
	Running []store.Usage
}

// ClusterHealth is one cluster's state as its last health check and
// observation found it.
type ClusterHealth struct {
	// State is StateHealthy, StateClosed, StateUnhealthy or StateUnknown.
	State string
	// Why is what keeps the cluster from new work: the failed check's
	// error, trimmed to one bounded line ("" when healthy).
	Why string
	// Checked is when that check answered or was given up at its
	// deadline; zero when none has.
	Checked time.Time
}

// Cluster health states.
const (
	// StateUnknown: the cluster's first health check has not answered
	// yet; nothing is placed on it.
	StateUnknown = "UNKNOWN"
	// StateHealthy: it answered its last check and takes work.
	StateHealthy = "HEALTHY"
	// StateClosed: it answers and its attempts run on, but it takes no
	// new work (every node drained, say).
	StateClosed = "CLOSED"
	// StateUnhealthy: its last check failed or did not answer within its
	// deadline; after the cluster timeout its attempts are lost.
	StateUnhealthy = "UNHEALTHY"
)
