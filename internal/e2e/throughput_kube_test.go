package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/kubernetes"
)

// kubeCase is one Kubernetes throughput case.
type kubeCase struct {
	nodes, jobs, gpus int
}

// kubeCases are the cases: 500 and 2,000 one-GPU jobs and 500
// eight-GPU jobs, on 16 and on 100 nodes of 8 GPUs; the smoke size keeps
// their shape with fewer nodes and jobs.
func kubeCases() []kubeCase {
	if fullScale() {
		var cs []kubeCase
		for _, nodes := range []int{16, 100} {
			cs = append(cs, kubeCase{nodes, 500, 1}, kubeCase{nodes, 2000, 1}, kubeCase{nodes, 500, 8})
		}
		return cs
	}
	return []kubeCase{{2, 16, 1}, {2, 32, 1}, {2, 4, 8}, {4, 16, 1}, {4, 48, 1}, {4, 8, 8}}
}

// kubeEngines are the processes of the CI cluster whose CPU each path
// costs, for the log.
var kubeEngines = []string{"kube-apiserver", "etcd", "kube-controller", "kube-scheduler", "kwok"}

// BenchmarkThroughputKubernetes: N jobs of G GPUs through a gpubroker
// server (HTTP API, SQLite, the Kubernetes backend; the fleet is the
// benchmark's kwok nodes as one pool) against the same batch/v1 Jobs (made
// by the backend's own Submit, from submitWorkers clients at once) placed
// by kube-scheduler alone. The benchmark adds its own kwok nodes (8
// nvidia.com/gpu each, a product label of their own and a taint, so that
// no other test's pods land there) and deletes them afterwards. Admitted
// is when the last Job's pod was bound to a node, complete when the last
// Job is Complete, both as seen by a watch, on both paths alike.
func BenchmarkThroughputKubernetes(b *testing.B) {
	for _, c := range kubeCases() {
		b.Run(fmt.Sprintf("nodes=%d/jobs=%dx%dgpu", c.nodes, c.jobs, c.gpus), func(b *testing.B) {
			benchKube(b, c)
		})
	}
}

func benchKube(b *testing.B, c kubeCase) {
	cfg := kwokConfig(b)
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	run := time.Now().UnixMilli()
	product := fmt.Sprintf("TPUT-H100-%d", run)
	if err := addNodes(client, run, c.nodes, product); err != nil {
		removeNodes(client, run)
		b.Fatal(err)
	}
	b.Cleanup(func() { removeNodes(client, run) })
	p := &pair{n: c.jobs}
	timeout := 2 * time.Minute
	if fullScale() {
		timeout = 10 * time.Minute
	}
	i := 0
	for b.Loop() {
		for _, broker := range order(i) {
			ns := fmt.Sprintf("tput-%s-%d", pathName(broker), time.Now().UnixMilli())
			be, err := kubernetes.New(kubernetes.Options{RESTConfig: cfg, Namespace: ns,
				PoolProducts: map[string]string{"kwok": product}, Tolerations: []corev1.Toleration{
					{Key: taintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}})
			if err != nil {
				b.Fatal(err)
			}
			waited := settle(kubeEngines...)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			var t pathTimes
			cpu, eng := cpuSeconds(), engineCPU(kubeEngines...)
			if broker {
				stop := profileBroker(b, "kube-broker")
				t, err = kubeBroker(b, ctx, client, be, c, run)
				stop()
			} else {
				t, err = kubeDirect(ctx, client, be, c, run)
			}
			cpu = cpuSeconds() - cpu
			engines := cpuDelta(eng, engineCPU(kubeEngines...), kubeEngines...)
			cancel()
			be.Close()
			// At full scale the namespace goes before the next path starts,
			// so that its garbage collection does not load the machine under
			// that path; the smoke does not wait for it.
			if derr := deleteNamespace(client, ns, fullScale()); derr != nil && err == nil {
				err = derr
			}
			if err != nil {
				b.Fatalf("%s: %v", pathName(broker), err)
			}
			b.Logf("kubernetes %d nodes, %d x %d GPU, %s (after %s for the engine to settle): submitted %.2fs created %.2fs pods %.2fs admitted %.2fs complete %.2fs succeeded %.2fs; %d rounds of %.3fs; CPU: this process %.1fs, %s (load %s)",
				c.nodes, c.jobs, c.gpus, pathName(broker), waited, t.submitted, t.created, t.pods, t.admitted, t.complete, t.api, t.rounds, t.roundMean, cpu, engines, load())
			p.add(broker, t)
		}
		i++
	}
	p.report(b)
}

// kwokConfig is the CI cluster's (k8s-up.sh) client config; only that
// cluster is used, never $KUBECONFIG, since the benchmark adds nodes.
func kwokConfig(b *testing.B) *rest.Config {
	b.Helper()
	dir := os.Getenv("K8S_CI_DIR")
	if dir == "" {
		dir = "/tmp/k8s-ci"
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err == nil {
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
	}
	if err != nil {
		requireEngine(b, "Kubernetes not running; start it with scripts/engines/k8s-up.sh ("+err.Error()+")")
	}
	// The benchmark's own clients (nodes, direct Jobs, watches) are as
	// unthrottled as the engine: the throttle under test is the broker's.
	cfg.QPS, cfg.Burst = 1000, 2000
	return cfg
}

// taintKey keeps every other pod off the benchmark's nodes: only the
// benchmark's backends tolerate it (Options.Tolerations), on both paths.
// The nodes' own product label keeps pods that select the CI nodes'
// product off them too.
const taintKey = "gpubroker.io/throughput"

func nodeName(run int64, i int) string { return fmt.Sprintf("tput-%d-%d", run, i) }

const runLabel = "gpubroker.io/throughput-run"

// addNodes creates n kwok nodes of 8 GPUs labelled with product and waits
// until they are Ready.
func addNodes(client k8s.Interface, run int64, n int, product string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rl := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("512Gi"),
		corev1.ResourcePods: resource.MustParse("110"), "nvidia.com/gpu": resource.MustParse("8"),
	}
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := nodeName(run, i)
			node := &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: name,
					Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
					Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
						"nvidia.com/gpu.present": "true", kubernetes.ProductLabel: product, "nvidia.com/gpu.count": "8",
						runLabel: strconv.FormatInt(run, 10)},
				},
				Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: taintKey, Value: "throughput", Effect: corev1.TaintEffectNoSchedule}}},
				Status: corev1.NodeStatus{Capacity: rl, Allocatable: rl},
			}
			if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("creating nodes: %w", err)
	}
	sel := metav1.ListOptions{LabelSelector: runLabel + "=" + strconv.FormatInt(run, 10)}
	for {
		list, err := client.CoreV1().Nodes().List(ctx, sel)
		if err != nil {
			return err
		}
		ready := 0
		for _, nd := range list.Items {
			for _, c := range nd.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d nodes Ready: %w", ready, n, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// removeNodes deletes the run's nodes.
func removeNodes(client k8s.Interface, run int64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = client.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: runLabel + "=" + strconv.FormatInt(run, 10)})
}

// deleteNamespace deletes ns and, with wait, waits until it is gone.
func deleteNamespace(client k8s.Interface, ns string, wait bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || !wait {
		return err
	}
	for {
		_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s still there: %w", ns, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// kubeSpec is the attempt the broker would submit for one job of the
// case: one node of c.gpus GPUs in pool "kwok", running "true".
func kubeSpec(c kubeCase, id int64) backend.Spec {
	n := backend.Node{}
	for g := range c.gpus {
		n.GPUs = append(n.GPUs, g)
	}
	return backend.Spec{Name: backend.Name(id, 1), JobID: id, Attempt: 1, Team: "default",
		Cluster: "kwok", Pool: "kwok", Nodes: []backend.Node{n}, Run: "true"}
}

// kubeDirect creates the case's Jobs in the backend's namespace from
// submitWorkers clients at once, with no broker: kube-scheduler places
// their pods.
func kubeDirect(ctx context.Context, client k8s.Interface, be *kubernetes.Backend, c kubeCase, run int64) (pathTimes, error) {
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: be.Namespace()}},
		metav1.CreateOptions{}); err != nil {
		return pathTimes{}, err
	}
	first := run * 1000
	t0 := time.Now()
	w, err := watchJobs(ctx, client, be.Namespace(), c.jobs, t0)
	if err != nil {
		return pathTimes{}, err
	}
	var mu sync.Mutex
	var firstErr error
	next := make(chan int64)
	var wg sync.WaitGroup
	for range submitWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				if err := be.Submit(ctx, kubeSpec(c, id)); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range c.jobs {
		next <- first + int64(i)
	}
	close(next)
	wg.Wait()
	submitted := time.Since(t0).Seconds()
	if firstErr != nil {
		return pathTimes{}, firstErr
	}
	t, err := w()
	t.submitted = submitted
	return t, err
}

// kubeFleet is the benchmark's nodes as one committed pool of one cluster
// (queue_ahead: see queueAhead).
func kubeFleet(nodes, ahead int) string {
	return fmt.Sprintf(`
clusters:
  - name: kwok
    provider: onprem
    region: dc
    backend: kubernetes
    queue_ahead: %d
    pools:
      - {name: kwok, gpu: H100, gpus_per_node: 8, nodes: %d, price_class: committed}
`, ahead, nodes)
}

// kubeBroker runs a fresh broker whose fleet is the benchmark's nodes,
// submits the case's jobs through its API and waits until every Job is
// Complete and the broker recorded them all SUCCEEDED.
func kubeBroker(b *testing.B, ctx context.Context, client k8s.Interface, be *kubernetes.Backend, c kubeCase, run int64) (pathTimes, error) {
	env := startBroker(b, be, kubeFleet(c.nodes, queueAhead(b, c.nodes)), run*1000)
	defer env.close()
	// The namespace exists before the watch starts, as on the direct path.
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: be.Namespace()}},
		metav1.CreateOptions{}); err != nil {
		return pathTimes{}, err
	}
	task := fmt.Sprintf("name: tput\nresources:\n  accelerators: H100:%d\nrun: \"true\"\n", c.gpus)
	t0 := time.Now()
	w, err := watchJobs(ctx, client, be.Namespace(), c.jobs, t0)
	if err != nil {
		return pathTimes{}, err
	}
	if _, err := env.submit(ctx, c.jobs, task); err != nil {
		return pathTimes{}, err
	}
	submitted := time.Since(t0).Seconds()
	t, err := w()
	if err != nil {
		return t, err
	}
	t.submitted = submitted
	t.api, err = env.waitSucceeded(ctx, c.jobs, t0)
	t.rounds, t.roundMean = env.rounds(ctx)
	return t, err
}

// watchJobs watches the namespace's pods and Jobs from now on; the
// function it returns waits until n Jobs are complete (the Job Complete or
// its one pod Succeeded, whichever is seen first) and reports when the
// pods of n Jobs had been bound to nodes and when n Jobs were complete, in
// seconds after t0. A failed Job is an error.
func watchJobs(ctx context.Context, client k8s.Interface, ns string, n int, t0 time.Time) (func() (pathTimes, error), error) {
	pods, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	jobs, err := client.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		pods.Stop()
		return nil, err
	}
	type result struct {
		t   pathTimes
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { pods.Stop(); jobs.Stop() }()
		var t pathTimes
		bound := map[string]bool{} // by Job name
		jobSeen, podSeen := map[string]bool{}, map[string]bool{}
		complete := map[string]bool{}
		podRV, jobRV := "", ""
		for {
			select {
			case <-ctx.Done():
				done <- result{t, fmt.Errorf("%d of %d Jobs bound, %d Complete: %w", len(bound), n, len(complete), ctx.Err())}
				return
			case ev, ok := <-pods.ResultChan():
				if !ok || ev.Type == watch.Error {
					// The server ended the watch: resume where it was.
					pods.Stop()
					if pods, err = client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: podRV}); err != nil {
						done <- result{t, err}
						return
					}
					continue
				}
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				podRV = pod.ResourceVersion
				job := pod.Labels[batchv1.JobNameLabel]
				if job != "" && !podSeen[job] {
					podSeen[job] = true
					if len(podSeen) == n {
						t.pods = time.Since(t0).Seconds()
					}
				}
				if pod.Spec.NodeName != "" && job != "" && !bound[job] {
					bound[job] = true
					if len(bound) == n {
						t.admitted = time.Since(t0).Seconds()
					}
				}
				// Every case's Jobs have one pod: its success is the Job's.
				// (The broker may learn of it from the pod and delete the Job
				// before the Job controller marks it Complete.)
				if pod.Status.Phase == corev1.PodSucceeded && job != "" && !complete[job] {
					complete[job] = true
					if len(complete) == n {
						t.complete = time.Since(t0).Seconds()
						if t.admitted == 0 {
							t.admitted = t.complete
						}
						done <- result{t, nil}
						return
					}
				}
			case ev, ok := <-jobs.ResultChan():
				if !ok || ev.Type == watch.Error {
					jobs.Stop()
					if jobs, err = client.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: jobRV}); err != nil {
						done <- result{t, err}
						return
					}
					continue
				}
				j, ok := ev.Object.(*batchv1.Job)
				if !ok {
					continue
				}
				jobRV = j.ResourceVersion
				if !jobSeen[j.Name] {
					jobSeen[j.Name] = true
					if len(jobSeen) == n {
						t.created = time.Since(t0).Seconds()
					}
				}
				for _, c := range j.Status.Conditions {
					if c.Status != corev1.ConditionTrue {
						continue
					}
					switch c.Type {
					case batchv1.JobFailed:
						done <- result{t, fmt.Errorf("job %s failed: %s %s", j.Name, c.Reason, c.Message)}
						return
					case batchv1.JobComplete:
						complete[j.Name] = true
					}
				}
				if len(complete) == n {
					t.complete = time.Since(t0).Seconds()
					if t.admitted == 0 {
						// A pod's binding event can trail its Job's completion.
						t.admitted = t.complete
					}
					done <- result{t, nil}
					return
				}
			}
		}
	}()
	return func() (pathTimes, error) {
		r := <-done
		return r.t, r.err
	}, nil
}
