package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/backendtest"
	"gpubroker/internal/backend/kubernetes/kubetest/procnode"
)

// procCluster starts two procnodes (8 GPUs each, a product of their own,
// tainted so that no other test's pod lands there) and returns a Backend
// whose pods go only to them.
func procCluster(t *testing.T) *Backend {
	t.Helper()
	cfg := kubeconfig(t)
	id := randHex()
	product := "PROCNODE-" + strings.ToUpper(id)
	taint := corev1.Taint{Key: procnode.TaintKey, Value: "true", Effect: corev1.TaintEffectNoSchedule}
	for i := range 2 {
		n, err := procnode.Start(context.Background(), procnode.Options{
			RESTConfig: cfg, Name: "procnode-" + id + "-" + string(rune('a'+i)),
			GPUs: 8, Product: product, Taints: []corev1.Taint{taint}, Dir: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Errorf("procnode Close: %v", err)
			}
		})
	}
	return newBackend(t, Options{
		RESTConfig:   cfg,
		NodeSelector: map[string]string{ProductLabel: product},
		Tolerations:  []corev1.Toleration{{Key: taint.Key, Operator: corev1.TolerationOpEqual, Value: taint.Value, Effect: taint.Effect}},
	})
}

// The conformance suite against real processes: two procnodes run the
// pods the Job controller makes, and logs come through the API server's
// pods/log from their kubelet port.
func TestConformance(t *testing.T) {
	t.Parallel()
	b := procCluster(t)
	backendtest.Run(t, b, backendtest.Options{
		// The cluster's Job controller is shared with other tests and
		// benchmarks (thousands of Jobs at times): allow for its queue.
		Timeout:  90 * time.Second,
		MaxNodes: 2,
		GPUs:     []int{0, 1},
		// The device plugin (here procnode) numbers the slots it hands out.
		SkipGPUEnv: true,
		SharedDir:  t.TempDir(),
		Workdir:    t.TempDir(),
	})
}

// Scripts reach bash as written: the kubelet's $(VAR) expansion and $$
// escape do not touch them.
func TestScriptsNotExpandedByKubelet(t *testing.T) {
	t.Parallel()
	b := procCluster(t)
	s := spec(1, 0)
	s.Run = `x='$(GPUBROKER_NAME) $$'; echo "$x"`
	s.Envs = map[string]string{"V": "$(GPUBROKER_JOB_ID)$$"}
	s.Setup = `echo "setup $V"`
	submit(t, b, s)
	wait(t, b, s.Name, backend.PhaseSucceeded)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := b.Logs(ctx, s.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var sb strings.Builder
	buf := make([]byte, 1024)
	for {
		k, err := r.Read(buf)
		sb.Write(buf[:k])
		if err != nil {
			break
		}
	}
	if want := "setup $(GPUBROKER_JOB_ID)$$\n$(GPUBROKER_NAME) $$\n"; sb.String() != want {
		t.Errorf("output %q, want %q", sb.String(), want)
	}
}
