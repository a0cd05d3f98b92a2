package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/kubernetes/kubetest"
	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

// The tests run against the real API server and kwok nodes that
// scripts/engines/k8s-up.sh starts (2 nodes x 8 nvidia.com/gpu). kwok has
// no kubelet: pods never run a process, so there is no output and the exit
// code is kwok's (0, or 1 for a pod annotated kwok.x-k8s.io/outcome=failed).
// Each test works in a namespace of its own, deleted afterwards.

// kubeconfig returns the CI cluster's kubeconfig, skipping the test when
// the cluster is not running (failing it with GPUBROKER_REQUIRE_ENGINES=1).
// Only the cluster k8s-up.sh started is used, never $KUBECONFIG: the tests
// create and delete namespaces.
func kubeconfig(t *testing.T) *rest.Config {
	t.Helper()
	dir := os.Getenv("K8S_CI_DIR")
	if dir == "" {
		dir = "/tmp/k8s-ci"
	}
	path := filepath.Join(dir, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err == nil {
		cfg.Timeout = 5 * time.Second
		var c *k8s.Clientset
		if c, err = k8s.NewForConfig(cfg); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var body []byte
			body, err = c.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err == nil && string(body) != "ok" {
				err = errors.New("/readyz: " + string(body))
			}
		}
		cfg.Timeout = 0
	}
	if err != nil {
		msg := "Kubernetes not running; start it with scripts/engines/k8s-up.sh (" + err.Error() + ")"
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatal(msg + " (GPUBROKER_REQUIRE_ENGINES=1: required)")
		}
		t.Skip(msg)
	}
	return cfg
}

// newBackend returns a Backend in a fresh namespace, removed at the end.
func newBackend(t *testing.T, opts Options) *Backend {
	t.Helper()
	cfg := kubeconfig(t)
	if opts.RESTConfig == nil {
		opts.RESTConfig = cfg
	}
	if opts.Namespace == "" {
		opts.Namespace = "gpubroker-test-" + randHex()
		ns := opts.Namespace
		t.Cleanup(func() {
			nb, err := New(Options{RESTConfig: cfg, Namespace: ns})
			if err != nil {
				return
			}
			stopJobs(t, nb)
			_ = nb.client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		})
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// stopJobs cancels the namespace's unfinished Jobs and waits (30s at most)
// for them to finish. kwok deletes a running pod without making it
// terminal first, as a kubelet would, so the Job controller's finalizer
// would hold such a pod, and the GPUs it requests, for as long as its Job
// is unfinished: in a namespace being deleted, forever.
func stopJobs(t *testing.T, b *Backend) {
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	cancelled := map[string]bool{}
	for {
		jobs, err := b.client.BatchV1().Jobs(b.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		running := 0
		for i := range jobs.Items {
			if name := jobs.Items[i].Name; !finished(&jobs.Items[i]) {
				running++
				if !cancelled[name] {
					_ = b.Cancel(ctx, name)
					cancelled[name] = true
				}
			}
		}
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("cleanup: %d Jobs of %s still unfinished after 30s", running, b.ns)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var nextID atomic.Int64

func spec(nodes, gpus int) backend.Spec {
	id := time.Now().UnixNano()/1e3%1e9*100 + nextID.Add(1)
	s := backend.Spec{Name: backend.Name(id, 1), JobID: id, Attempt: 1, Team: "test", Run: "echo hi"}
	for i := range nodes {
		n := backend.Node{Index: i}
		for g := range gpus {
			n.GPUs = append(n.GPUs, g)
		}
		s.Nodes = append(s.Nodes, n)
	}
	return s
}

func observe(t *testing.T, b *Backend, name string) (backend.Status, bool) {
	t.Helper()
	all, err := b.Observe(context.Background())
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	for _, st := range all {
		if st.Name == name {
			return st, true
		}
	}
	return backend.Status{}, false
}

// wait polls Observe until name is in phase want.
func wait(t *testing.T, b *Backend, name string, want backend.Phase) backend.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // the Job controller is shared
	var last backend.Status
	for time.Now().Before(deadline) {
		st, ok := observe(t, b, name)
		if !ok {
			t.Fatalf("%s: not observed", name)
		}
		if st.Phase == want {
			return st
		}
		if st.Phase != backend.PhasePending && st.Phase != backend.PhaseRunning {
			t.Fatalf("%s: %s (%s), want %s", name, st.Phase, st.Message, want)
		}
		last = st
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still %s after 60s, want %s", name, last.Phase, want)
	return last
}

func submit(t *testing.T, b *Backend, s backend.Spec) {
	t.Helper()
	if err := b.Submit(context.Background(), s); err != nil {
		t.Fatalf("Submit: %v", err)
	}
}

func TestSucceeds(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	s := spec(1, 1)
	s.Pool = "NVIDIA-H100-80GB-HBM3"
	submit(t, b, s)
	st := wait(t, b, s.Name, backend.PhaseSucceeded)
	if st.ExitCode == nil || *st.ExitCode != 0 {
		t.Errorf("ExitCode = %v, want 0", st.ExitCode)
	}
	if st.Ended.IsZero() || st.Started.IsZero() || st.Ended.Before(st.Started) {
		t.Errorf("Started %v, Ended %v", st.Started, st.Ended)
	}
	// kwok pods have no kubelet, hence no logs: Logs returns what exists
	// (nothing), and a follow ends because the Job has ended.
	for _, follow := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := b.Logs(ctx, s.Name, follow)
		if err != nil {
			t.Fatalf("Logs(follow=%v): %v", follow, err)
		}
		buf := make([]byte, 100)
		if _, err := r.Read(buf); err == nil || ctx.Err() != nil {
			t.Errorf("Logs(follow=%v) did not end with the Job (%v, ctx %v)", follow, err, ctx.Err())
		}
		r.Close()
		cancel()
	}
	pods, err := b.client.CoreV1().Pods(b.ns).List(context.Background(), metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + s.Name})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v, %d, want 1", err, len(pods.Items))
	}
	p := pods.Items[0]
	if got := p.Spec.NodeSelector[ProductLabel]; got != s.Pool {
		t.Errorf("node selector %s=%q, want %q", ProductLabel, got, s.Pool)
	}
	if got := p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]; got.Value() != 1 {
		t.Errorf("nvidia.com/gpu limit %v, want 1", got.String())
	}
	if p.Labels[LabelJobID] == "" || p.Labels[LabelAttempt] != "1" {
		t.Errorf("pod labels %v lack job id and attempt", p.Labels)
	}
}

func TestFailsWithExitCode(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{PodAnnotations: map[string]string{"kwok.x-k8s.io/outcome": "failed"}})
	s := spec(1, 1)
	submit(t, b, s)
	st := wait(t, b, s.Name, backend.PhaseFailed)
	if st.ExitCode == nil || *st.ExitCode != 1 {
		t.Errorf("ExitCode = %v (%s), want 1 (kwok's failed outcome)", st.ExitCode, st.Message)
	}
	if !strings.Contains(st.Message, batchv1.JobReasonPodFailurePolicy) {
		t.Errorf("Message %q does not name the pod failure policy", st.Message)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{PodAnnotations: map[string]string{"kwok.x-k8s.io/outcome": "running"}})
	ctx := context.Background()
	s := spec(2, 1)
	submit(t, b, s)
	wait(t, b, s.Name, backend.PhaseRunning)
	if err := b.Cancel(ctx, s.Name); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	st := wait(t, b, s.Name, backend.PhaseFailed)
	if st.Message != "cancelled" {
		t.Errorf("Message %q, want cancelled", st.Message)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pods, err := b.client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + s.Name})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		if running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods still running after Cancel", running)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := b.Cancel(ctx, s.Name); err != nil {
		t.Errorf("Cancel of an ended attempt: %v", err)
	}
	if err := b.Cancel(ctx, spec(1, 0).Name); err != nil {
		t.Errorf("Cancel of an unknown attempt: %v", err)
	}
}

func TestSubmitTwiceCreatesOneJob(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	ctx := context.Background()
	s := spec(2, 1)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() { errs <- b.Submit(ctx, s) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
	wait(t, b, s.Name, backend.PhaseSucceeded)
	submit(t, b, s) // after the end: still nothing new
	jobs, err := b.client.BatchV1().Jobs(b.ns).List(ctx, metav1.ListOptions{LabelSelector: LabelJobID})
	if err != nil || len(jobs.Items) != 1 {
		t.Fatalf("jobs: %v, %d, want 1", err, len(jobs.Items))
	}
	pods, err := b.client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("pods: %v, %d, want 2 (one per node, started once)", err, len(pods.Items))
	}
	if st, _ := observe(t, b, s.Name); st.Phase != backend.PhaseSucceeded {
		t.Errorf("after a re-Submit: %s, want Succeeded", st.Phase)
	}
}

// countingTransport counts the requests a client makes.
type countingTransport struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	c.mu.Unlock()
	return c.rt.RoundTrip(r)
}

// countingBackend is a backend whose requests ct counts.
func countingBackend(t *testing.T) (*Backend, *countingTransport) {
	cfg := rest.CopyConfig(kubeconfig(t))
	ct := &countingTransport{}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { ct.rt = rt; return ct }
	return newBackend(t, Options{RESTConfig: cfg}), ct
}

// reset forgets the requests counted so far.
func (c *countingTransport) reset() {
	c.mu.Lock()
	c.reqs = nil
	c.mu.Unlock()
}

// Observe serves from the watch's cache: once synced, it asks the API
// server nothing, however often it is called.
func TestObserveServesFromWatch(t *testing.T) {
	t.Parallel()
	b, ct := countingBackend(t)
	var names []string
	for range 3 {
		s := spec(1, 1)
		submit(t, b, s)
		names = append(names, s.Name)
	}
	for _, n := range names {
		wait(t, b, n, backend.PhaseSucceeded)
	}
	ct.reset()
	for range 5 {
		all, err := b.Observe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 {
			t.Errorf("Observe: %d statuses, want 3", len(all))
		}
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if len(ct.reqs) != 0 {
		t.Errorf("Observe made requests %q, want none (served from the watch)", ct.reqs)
	}
}

// Health reads the nodes from the node watch: once it has synced, each
// call asks the API server for /readyz alone, not for every node.
func TestHealthServesNodesFromWatch(t *testing.T) {
	t.Parallel()
	b, ct := countingBackend(t)
	ctx := context.Background()
	if err := b.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w := b.nodeWatch(); !w.informer.HasSynced(); {
		if time.Now().After(deadline) {
			t.Fatal("the node watch did not sync in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ct.reset()
	for range 5 {
		if err := b.Health(ctx); err != nil {
			t.Fatalf("Health: %v", err)
		}
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if want := slices.Repeat([]string{"GET /readyz?"}, 5); !slices.Equal(ct.reqs, want) {
		t.Errorf("5 Health calls made requests %q, want /readyz alone", ct.reqs)
	}
}

// Changes signals a Job's progress: following the signals alone (no
// polling) reaches the Job's end.
func TestChangesSignalsCompletion(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	ch := b.Changes()
	if b.Changes() != ch {
		t.Fatal("Changes returned another channel")
	}
	if _, err := b.Observe(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := spec(1, 1)
	submit(t, b, s)
	timeout := time.After(30 * time.Second)
	var phases []backend.Phase
	for {
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("no signal brought the Job to its end; phases seen %v", phases)
		}
		st, ok := observe(t, b, s.Name)
		if !ok {
			t.Fatalf("%s not observed", s.Name)
		}
		if len(phases) == 0 || phases[len(phases)-1] != st.Phase {
			phases = append(phases, st.Phase)
		}
		if st.Phase == backend.PhaseSucceeded {
			return
		}
	}
}

// Observe right after Submit and Forget reports what was done, though the
// watch may not have delivered it yet; after Close it is an error.
func TestObserveReadsOwnWrites(t *testing.T) {
	t.Parallel()
	// Pods no node can take: Forget of a running kwok pod would leave it
	// to the Job controller's finalizer (see stopJobs).
	b := newBackend(t, Options{NodeSelector: map[string]string{"gpubroker.io/test": "no-such-node"}})
	ctx := context.Background()
	if _, err := b.Observe(ctx); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		s := spec(1, 0)
		submit(t, b, s)
		if _, ok := observe(t, b, s.Name); !ok {
			t.Fatalf("%s not observed right after Submit", s.Name)
		}
		if err := b.Forget(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if st, ok := observe(t, b, s.Name); ok {
			t.Fatalf("%s observed right after Forget: %+v", s.Name, st)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Observe(ctx); err == nil {
		t.Error("Observe after Close: no error")
	}
}

func TestGang(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	ctx := context.Background()
	s := spec(2, 1)
	submit(t, b, s)
	wait(t, b, s.Name, backend.PhaseSucceeded)
	job, err := b.client.BatchV1().Jobs(b.ns).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *job.Spec.Completions != 2 || *job.Spec.Parallelism != 2 || *job.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("job spec: completions %d parallelism %d mode %s", *job.Spec.Completions, *job.Spec.Parallelism, *job.Spec.CompletionMode)
	}
	svc, err := b.client.CoreV1().Services(b.ns).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("gang service: %v", err)
	}
	if len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].UID != job.UID {
		t.Errorf("service owners %v, want the Job", svc.OwnerReferences)
	}
	pods, err := b.client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + s.Name})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("pods: %v, %d, want 2", err, len(pods.Items))
	}
	indexes := map[string]bool{}
	for _, p := range pods.Items {
		indexes[p.Annotations[batchv1.JobCompletionIndexAnnotation]] = true
		env := map[string]corev1.EnvVar{}
		for _, e := range p.Spec.Containers[0].Env {
			env[e.Name] = e
		}
		rank := env["GPUBROKER_NODE_RANK"]
		if rank.ValueFrom == nil || rank.ValueFrom.FieldRef == nil ||
			rank.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
			t.Errorf("GPUBROKER_NODE_RANK = %+v, want the completion index through the downward API", rank)
		}
		want := s.Name + "-0." + s.Name + "\n" + s.Name + "-1." + s.Name
		if env["GPUBROKER_NODE_IPS"].Value != want || env["SKYPILOT_NODE_IPS"].Value != want {
			t.Errorf("NODE_IPS %q, want %q", env["GPUBROKER_NODE_IPS"].Value, want)
		}
		if env["GPUBROKER_NUM_NODES"].Value != "2" || env["SKYPILOT_NUM_GPUS_PER_NODE"].Value != "1" {
			t.Errorf("env %v", env)
		}
	}
	if !indexes["0"] || !indexes["1"] {
		t.Errorf("completion indexes %v, want 0 and 1", indexes)
	}
}

// A second Backend (a restarted broker) finds the first one's attempts.
func TestRestartFindsAttempts(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{PodAnnotations: map[string]string{"kwok.x-k8s.io/outcome": "running"}})
	s := spec(1, 1)
	submit(t, b, s)
	wait(t, b, s.Name, backend.PhaseRunning)
	b2 := newBackend(t, Options{Namespace: b.ns, RESTConfig: b.opts.RESTConfig})
	if st, ok := observe(t, b2, s.Name); !ok || st.Phase != backend.PhaseRunning {
		t.Errorf("new backend observes %+v (%v), want Running", st, ok)
	}
	submit(t, b2, s)
	jobs, err := b2.client.BatchV1().Jobs(b.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 1 {
		t.Errorf("jobs after re-Submit from a new backend: %v, %d, want 1", err, len(jobs.Items))
	}
}

func TestForgetAndLogsUnknown(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	ctx := context.Background()
	s := spec(1, 1)
	submit(t, b, s)
	wait(t, b, s.Name, backend.PhaseSucceeded)
	if err := b.Forget(ctx, s.Name); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if st, ok := observe(t, b, s.Name); ok {
		t.Errorf("Observe reports a forgotten attempt: %+v", st)
	}
	if err := b.Forget(ctx, s.Name); err != nil && !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Forget twice: %v", err)
	}
	if _, err := b.Logs(ctx, spec(1, 0).Name, false); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Logs of an unknown attempt: %v, want ErrNotFound", err)
	}
}

// Other tests and benchmarks add nodes to the shared cluster while this
// runs (procnodes, more kwok nodes, products of their own): GPUs must
// match the node list around it, and the H100 pool count the nodes of that
// product, k8s-up.sh's two among them.
func TestHealthAndDiscovery(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	ctx := context.Background()
	if err := b.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	h100, err := catalog.ParseGPU("NVIDIA-H100-80GB-HBM3")
	if err != nil {
		t.Fatal(err)
	}
	// expect reads the nodes: the allocatable GPUs of those that have any,
	// in name order, and the Ready 8-GPU H100 nodes.
	expect := func() (gpus []int, h100s int, names []string) {
		list, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
		for _, n := range list.Items {
			names = append(names, n.Name+"/"+n.ResourceVersion)
			q := n.Status.Allocatable["nvidia.com/gpu"]
			if q.Value() > 0 {
				gpus = append(gpus, int(q.Value()))
			}
			if q.Value() == 8 && n.Labels[ProductLabel] == "NVIDIA-H100-80GB-HBM3" && nodeReady(&n) {
				h100s++
			}
		}
		return gpus, h100s, names
	}
	for try := 0; ; try++ {
		want, h100s, before := expect()
		gpus, err := b.GPUs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pools, err := b.DiscoverPools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cached, err := b.nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, n := range cached {
			seen = append(seen, n.Name+"/"+n.ResourceVersion)
		}
		if _, _, after := expect(); (!slices.Equal(before, after) || !slices.Equal(before, seen)) && try < 50 {
			// A node came, went or changed meanwhile, or the node watch
			// has not delivered it yet.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if diff := cmp.Diff(want, gpus); diff != "" {
			t.Errorf("GPUs (-want +got):\n%s", diff)
		}
		if h100s < 2 {
			t.Errorf("%d Ready 8-GPU H100 nodes, want k8s-up.sh's 2 at least", h100s)
		}
		var got *model.Pool
		for i := range pools {
			if pools[i].Name == "NVIDIA-H100-80GB-HBM3" {
				got = &pools[i]
			}
		}
		wantPool := model.Pool{
			Name: "NVIDIA-H100-80GB-HBM3", GPU: h100, GPUsPerNode: 8, Nodes: h100s, PriceClass: model.OnDemand,
			CPUsPerNode: 64, MemoryGiBPerNode: 512,
		}
		if got == nil {
			t.Fatalf("DiscoverPools: no NVIDIA-H100-80GB-HBM3 pool in %+v", pools)
		}
		if diff := cmp.Diff(wantPool, *got); diff != "" {
			t.Errorf("DiscoverPools (-want +got):\n%s", diff)
		}
		return
	}
}

// A cluster that does not answer is ErrUnavailable, in every call.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	b, err := New(Options{RESTConfig: &rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.Observe(ctx); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Observe: %v, want ErrUnavailable", err)
	}
	if err := b.Health(ctx); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Health: %v, want ErrUnavailable", err)
	}
	if err := b.Submit(ctx, spec(1, 1)); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Submit: %v, want ErrUnavailable", err)
	}
}

func TestStatusFromConditions(t *testing.T) {
	t.Parallel()
	at := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	start := metav1.NewTime(at.Add(-time.Minute))
	job := func(ann map[string]string, st batchv1.JobStatus) *batchv1.Job {
		st.StartTime = &start
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Annotations: ann}, Status: st}
	}
	cond := func(typ batchv1.JobConditionType, reason, msg string) []batchv1.JobCondition {
		return []batchv1.JobCondition{{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastTransitionTime: at}}
	}
	for name, tc := range map[string]struct {
		job  *batchv1.Job
		want backend.Status
	}{
		"pending": {job(nil, batchv1.JobStatus{Active: 1, Ready: ptr(int32(0))}),
			backend.Status{Name: "j", Phase: backend.PhasePending}},
		"running": {job(nil, batchv1.JobStatus{Active: 2, Ready: ptr(int32(2))}),
			backend.Status{Name: "j", Phase: backend.PhaseRunning, Started: start.Time}},
		"complete": {job(nil, batchv1.JobStatus{Succeeded: 1, Conditions: cond(batchv1.JobComplete, "", "")}),
			backend.Status{Name: "j", Phase: backend.PhaseSucceeded, ExitCode: ptr(0), Started: start.Time, Ended: at.Time}},
		"exit code": {job(nil, batchv1.JobStatus{Failed: 1, Conditions: cond(batchv1.JobFailed, "PodFailurePolicy",
			"Container main for pod ns/j-0-abc failed with exit code 3 matching FailJob rule at index 1")}),
			backend.Status{Name: "j", Phase: backend.PhaseFailed, ExitCode: ptr(3), Started: start.Time, Ended: at.Time,
				Message: "PodFailurePolicy: Container main for pod ns/j-0-abc failed with exit code 3 matching FailJob rule at index 1"}},
		"disrupted": {job(nil, batchv1.JobStatus{Failed: 1, Conditions: cond(batchv1.JobFailed, "PodFailurePolicy",
			"Pod ns/j-0-abc has condition DisruptionTarget matching FailJob rule at index 0")}),
			backend.Status{Name: "j", Phase: backend.PhaseLost, Started: start.Time, Ended: at.Time,
				Message: "PodFailurePolicy: Pod ns/j-0-abc has condition DisruptionTarget matching FailJob rule at index 0"}},
		"cancelled": {job(map[string]string{AnnotationCancelled: "true"}, batchv1.JobStatus{Conditions: cond(batchv1.JobFailed, "DeadlineExceeded", "Job was active longer than specified deadline")}),
			backend.Status{Name: "j", Phase: backend.PhaseFailed, Started: start.Time, Ended: at.Time, Message: "cancelled"}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, status(tc.job)); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

// Pods' phases reach the watch before the Job controller folds them into
// the Job: a running pod makes a pending Job Running, a succeeded pod of
// every index makes it Succeeded; failures wait for the Job's condition.
func TestStatusFromPods(t *testing.T) {
	t.Parallel()
	start := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	end := metav1.NewTime(start.Add(3 * time.Second))
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: batchv1.JobSpec{Completions: ptr(int32(2))}}
	pod := func(index string, phase corev1.PodPhase, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{completionIndex: index}},
			Status: corev1.PodStatus{Phase: phase, StartTime: &start}}
		if deleting {
			p.DeletionTimestamp = &end
		}
		if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			code := int32(0)
			if phase == corev1.PodFailed {
				code = 3
			}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: end}}}}
		}
		return p
	}
	pending := backend.Status{Name: "j", Phase: backend.PhasePending}
	running := backend.Status{Name: "j", Phase: backend.PhaseRunning, Started: start.Time}
	for name, tc := range map[string]struct {
		in   backend.Status
		pods []*corev1.Pod
		want backend.Status
	}{
		"no pods":          {pending, nil, pending},
		"a pod runs":       {pending, []*corev1.Pod{pod("0", corev1.PodRunning, false), pod("1", corev1.PodPending, false)}, running},
		"one index done":   {running, []*corev1.Pod{pod("0", corev1.PodSucceeded, false), pod("1", corev1.PodRunning, false)}, running},
		"same index twice": {running, []*corev1.Pod{pod("0", corev1.PodSucceeded, false), pod("0", corev1.PodSucceeded, false)}, running},
		"every index done": {running, []*corev1.Pod{pod("0", corev1.PodSucceeded, false), pod("1", corev1.PodSucceeded, true)},
			backend.Status{Name: "j", Phase: backend.PhaseSucceeded, ExitCode: ptr(0), Started: start.Time, Ended: end.Time}},
		"a pod failed":        {running, []*corev1.Pod{pod("0", corev1.PodSucceeded, false), pod("1", corev1.PodFailed, false)}, running},
		"deleted running pod": {pending, []*corev1.Pod{pod("0", corev1.PodRunning, true)}, pending},
		"job already failed": {backend.Status{Name: "j", Phase: backend.PhaseFailed, Message: "cancelled"},
			[]*corev1.Pod{pod("0", corev1.PodSucceeded, false), pod("1", corev1.PodSucceeded, false)},
			backend.Status{Name: "j", Phase: backend.PhaseFailed, Message: "cancelled"}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, podPhase(tc.in, job, tc.pods)); diff != "" {
				t.Errorf("podPhase (-want +got):\n%s", diff)
			}
		})
	}
}

// While the API server does not answer, Observe says so (ErrUnavailable)
// instead of serving the cache; when it is back, Observe is right again
// and Changes said so.
func TestObserveWhileAPIServerGone(t *testing.T) {
	t.Parallel()
	cfg := rest.CopyConfig(kubeconfig(t))
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := &kubetest.Proxy{Target: u.Host}
	p.Start(t)
	t.Cleanup(p.Cut)
	cfg.Host = "https://" + p.Addr()
	b := newBackend(t, Options{RESTConfig: cfg, PodAnnotations: map[string]string{"kwok.x-k8s.io/outcome": "running"}})
	s := spec(1, 0)
	submit(t, b, s)
	wait(t, b, s.Name, backend.PhaseRunning)
	ctx := context.Background()

	t0 := time.Now()
	p.Cut()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := b.Observe(ctx)
		if errors.Is(err, backend.ErrUnavailable) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Observe with the API server gone for 20s: %v, want ErrUnavailable", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for len(b.Changes()) > 0 {
		<-b.Changes()
	}

	t.Logf("ErrUnavailable %v after the cut", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	p.Start(t) // the same address
	select {
	case <-b.Changes():
	case <-time.After(60 * time.Second):
		t.Fatal("no change signalled when the API server came back")
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		all, err := b.Observe(ctx)
		if err == nil {
			if len(all) != 1 || all[0].Name != s.Name || all[0].Phase != backend.PhaseRunning {
				t.Errorf("Observe after the API server came back: %+v, want %s Running", all, s.Name)
			}
			t.Logf("Observe answers %v after the API server is back", time.Since(t0).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Observe 60s after the API server came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOrderedPodsCarryPriority: on a cluster that queues work ahead
// (Spec.Ordered) a Job's pods get the PriorityClass of the broker's
// priority (made on first use, never preempting), so that kube-scheduler
// takes queued pods in the broker's order; other Jobs get none.
func TestOrderedPodsCarryPriority(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	ctx := context.Background()
	high, low, plain := spec(1, 1), spec(1, 1), spec(1, 1)
	high.Ordered, high.Priority = true, 70
	low.Ordered, low.Priority = true, -3
	plain.Priority = 70
	for _, s := range []backend.Spec{high, low, plain} {
		submit(t, b, s)
	}
	want := map[string]int32{high.Name: 70, low.Name: -3, plain.Name: 0}
	for name, v := range want {
		wait(t, b, name, backend.PhaseSucceeded)
		pods, err := b.client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("pods of %s: %v, %d, want 1", name, err, len(pods.Items))
		}
		p := pods.Items[0].Spec
		if got := int32(0); p.Priority != nil {
			got = *p.Priority
			if got != v {
				t.Errorf("%s: pod priority %d (class %q), want %d", name, got, p.PriorityClassName, v)
			}
		} else if v != 0 {
			t.Errorf("%s: pod has no priority (class %q), want %d", name, p.PriorityClassName, v)
		}
		if name == plain.Name && p.PriorityClassName != "" {
			t.Errorf("unordered Job got PriorityClass %q", p.PriorityClassName)
		}
		if name != plain.Name {
			pc, err := b.client.SchedulingV1().PriorityClasses().Get(ctx, p.PriorityClassName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("PriorityClass %q of %s: %v", p.PriorityClassName, name, err)
			}
			if pc.PreemptionPolicy == nil || *pc.PreemptionPolicy != corev1.PreemptNever || pc.GlobalDefault {
				t.Errorf("PriorityClass %s may preempt or is the default: %+v", pc.Name, pc)
			}
		}
	}
}
