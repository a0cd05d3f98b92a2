package control

import (
	"github.com/prometheus/client_golang/prometheus"

	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// metrics are the control side's Prometheus series (docs/api.md), on the
// registry the server gives (one per server, so that several servers in
// one process, tests, do not clash).
type metrics struct {
	queueDepth  *prometheus.GaugeVec
	admissions  prometheus.Counter
	dispatchLat prometheus.Histogram
	gpusInUse   *prometheus.GaugeVec
	roundSecs   prometheus.Histogram
	transitions *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gpubroker_queue_depth",
			Help: "Jobs in each state, as of the last reconcile round.",
		}, []string{"state"}),
		admissions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpubroker_admissions_total",
			Help: "Attempts the scheduler admitted (placed on a pool).",
		}),
		dispatchLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gpubroker_dispatch_latency_seconds",
			Help:    "Time from an attempt's admission to its backend accepting it.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}),
		gpusInUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gpubroker_gpus_in_use",
			Help: "GPUs held by admitted, dispatched and running attempts, by provider.",
		}, []string{"provider"}),
		roundSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gpubroker_reconcile_round_seconds",
			Help:    "Duration of one reconcile round.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 10),
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpubroker_transitions_total",
			Help: "Job state changes the server made, by target state.",
		}, []string{"to"}),
	}
	reg.MustRegister(m.queueDepth, m.admissions, m.dispatchLat, m.gpusInUse, m.roundSecs, m.transitions)
	for _, st := range []store.State{store.Pending, store.Admitted, store.Dispatched, store.Running, store.Succeeded, store.Failed, store.Cancelled} {
		m.queueDepth.WithLabelValues(string(st))
		m.transitions.WithLabelValues(string(st))
	}
	return m
}

// setGPUsInUse replaces the per-provider gauge; providers with nothing in
// use are set to zero rather than dropped, so graphs fall to zero.
func (m *metrics) setGPUsInUse(fleet *model.Fleet, inUse map[model.Provider]int) {
	for _, c := range fleet.Clusters {
		m.gpusInUse.WithLabelValues(string(c.Provider)).Set(0)
	}
	for p, n := range inUse {
		m.gpusInUse.WithLabelValues(string(p)).Set(float64(n))
	}
}
