package procnode

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"gpubroker/internal/backend/kubernetes/kubetest"
)

// The tests run against the cluster scripts/engines/k8s-up.sh starts (a
// real API server, controller-manager and scheduler). Pods are bound by
// spec.nodeName, so they never reach another node; every node and
// namespace a test makes is removed at its end.

// cluster returns the CI cluster's config, skipping the test when it is not
// running (failing it with GPUBROKER_REQUIRE_ENGINES=1).
func cluster(t *testing.T) (*rest.Config, k8s.Interface) {
	t.Helper()
	dir := os.Getenv("K8S_CI_DIR")
	if dir == "" {
		dir = "/tmp/k8s-ci"
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	var c *k8s.Clientset
	if err == nil {
		c, err = k8s.NewForConfig(cfg)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var body []byte
		body, err = c.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) != "ok" {
			err = errors.New("/readyz: " + string(body))
		}
	}
	if err != nil {
		msg := "Kubernetes not running; start it with scripts/engines/k8s-up.sh (" + err.Error() + ")"
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatal(msg + " (GPUBROKER_REQUIRE_ENGINES=1: required)")
		}
		t.Skip(msg)
	}
	return cfg, c
}

func randName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// env is a started node and a namespace of the test's own.
type env struct {
	node   *Node
	client k8s.Interface
	ns     string
}

func start(t *testing.T, gpus int) *env {
	t.Helper()
	cfg, c := cluster(t)
	ctx := context.Background()
	ns := randName("procnode-test-")
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	n, err := Start(ctx, Options{
		RESTConfig: cfg, Name: randName("procnode-"), GPUs: gpus, Product: "PROCNODE-TEST",
		Taints: []corev1.Taint{{Key: TaintKey, Value: "true", Effect: corev1.TaintEffectNoSchedule}},
		Dir:    t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{node: n, client: c, ns: ns}
}

// pod creates a one-container pod bound to the node running script.
func (e *env) pod(t *testing.T, script string, mod func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: randName("p-"), Annotations: map[string]string{"example.com/rank": "7"}},
		Spec: corev1.PodSpec{
			NodeName:      e.node.Name(),
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "main", Image: "ignored", Command: []string{"bash", "-c", script},
			}},
		},
	}
	if mod != nil {
		mod(p)
	}
	p, err := e.client.CoreV1().Pods(e.ns).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitPod polls the pod until ok says it is done.
func (e *env) waitPod(t *testing.T, name string, what string, ok func(*corev1.Pod, error) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, err := e.client.CoreV1().Pods(e.ns).Get(context.Background(), name, metav1.GetOptions{})
		if ok(p, err) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: not %s after 20s (phase %v, err %v)", name, what, phase(p), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func phase(p *corev1.Pod) corev1.PodPhase {
	if p == nil {
		return ""
	}
	return p.Status.Phase
}

func (e *env) waitPhase(t *testing.T, name string, want corev1.PodPhase) *corev1.Pod {
	t.Helper()
	return e.waitPod(t, name, string(want), func(p *corev1.Pod, err error) bool { return err == nil && p.Status.Phase == want })
}

func (e *env) logs(t *testing.T, name string) string {
	t.Helper()
	data, err := e.client.CoreV1().Pods(e.ns).GetLogs(name, &corev1.PodLogOptions{Container: "main"}).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	return string(data)
}

// A pod runs as a process with its env, args expansion and working
// directory, and ends Failed with its exit code; its logs come through the
// API server.
func TestPodRunsAndFails(t *testing.T) {
	t.Parallel()
	e := start(t, 4)
	work := t.TempDir()
	p := e.pod(t, `echo "name=$POD_NAME rank=$RANK node=$NODE ip=$IP greeting=$GREETING gpus=$CUDA_VISIBLE_DEVICES"
echo "arg=$0 dollar=$$$$" | sed "s/=[0-9][0-9]*$/=pid/"
echo "pwd=$(pwd -P)"
echo written > out.txt
exit 3`, func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Args = []string{"$(GREETING)-arg"}
		c.WorkingDir = work
		c.Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("2")}
		field := func(path string) *corev1.EnvVarSource {
			return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
		}
		c.Env = []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: field("metadata.name")},
			{Name: "RANK", ValueFrom: field("metadata.annotations['example.com/rank']")},
			{Name: "NODE", ValueFrom: field("spec.nodeName")},
			{Name: "IP", ValueFrom: field("status.podIP")},
			{Name: "GREETING", Value: "hello $(RANK)"},
		}
	})
	done := e.waitPhase(t, p.Name, corev1.PodFailed)
	cs := done.Status.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Terminated == nil || cs[0].State.Terminated.ExitCode != 3 || cs[0].Name != "main" {
		t.Fatalf("container statuses %+v, want main terminated with exit code 3", cs)
	}
	want := "name=" + p.Name + " rank=7 node=" + e.node.Name() + " ip=127.0.0.1 greeting=hello 7 gpus=0,1\n" +
		"arg=hello 7-arg dollar=pid\n" +
		"pwd=" + work + "\n"
	if diff := cmp.Diff(want, e.logs(t, p.Name)); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
	if data, err := os.ReadFile(filepath.Join(work, "out.txt")); err != nil || string(data) != "written\n" {
		t.Errorf("out.txt in workingDir: %q, %v", data, err)
	}
	if done.Status.PodIP != "127.0.0.1" || done.Status.StartTime == nil {
		t.Errorf("podIP %q, startTime %v", done.Status.PodIP, done.Status.StartTime)
	}
}

func TestPodSucceedsAndGPUsAreReused(t *testing.T) {
	t.Parallel()
	e := start(t, 2)
	gpu := func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("2")}
	}
	for range 2 { // the second finds the GPUs the first freed
		p := e.pod(t, `echo "gpus=$CUDA_VISIBLE_DEVICES"`, gpu)
		done := e.waitPhase(t, p.Name, corev1.PodSucceeded)
		if ts := done.Status.ContainerStatuses[0].State.Terminated; ts == nil || ts.ExitCode != 0 || ts.Reason != "Completed" {
			t.Errorf("terminated %+v, want exit 0, Completed", ts)
		}
		if got := e.logs(t, p.Name); got != "gpus=0,1\n" {
			t.Errorf("logs %q", got)
		}
	}
	// More GPUs than the node has: refused the way a kubelet's admission
	// refuses it, not run.
	p := e.pod(t, `echo ran`, func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("3")}
	})
	done := e.waitPhase(t, p.Name, corev1.PodFailed)
	if !strings.Contains(done.Status.Message, "nvidia.com/gpu: requested 3") {
		t.Errorf("message %q, want the GPU shortage", done.Status.Message)
	}
	if got := e.logs(t, p.Name); strings.Contains(got, "ran") || !strings.Contains(got, "requested 3") {
		t.Errorf("logs %q", got)
	}
}

// Deleting a running pod stops its whole process group, reports it
// terminal and removes the object.
func TestDeleteStopsProcessGroup(t *testing.T) {
	t.Parallel()
	e := start(t, 0)
	marker := filepath.Join(t.TempDir(), "survived")
	p := e.pod(t, "(sleep 2; touch "+marker+") & echo up; sleep 100", nil)
	e.waitPhase(t, p.Name, corev1.PodRunning)
	w, err := e.client.CoreV1().Pods(e.ns).Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=" + p.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	t0 := time.Now()
	if err := e.client.CoreV1().Pods(e.ns).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(20))}); err != nil {
		t.Fatal(err)
	}
	var last corev1.PodStatus
	timeout := time.After(15 * time.Second)
	for gone := false; !gone; {
		select {
		case ev := <-w.ResultChan():
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				last = pod.Status
			}
			gone = ev.Type == "DELETED"
		case <-timeout:
			t.Fatalf("pod not gone 15s after its delete; last status %+v", last)
		}
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("gone after %v: SIGTERM did not end it", d)
	}
	if last.Phase != corev1.PodFailed || last.ContainerStatuses[0].State.Terminated.ExitCode != 143 {
		t.Errorf("last status %s %+v, want Failed with exit code 143 (SIGTERM)", last.Phase, last.ContainerStatuses)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("a child of the deleted pod survived: %s exists", marker)
	}
}

// follow streams output as it is written and ends with the process.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	e := start(t, 0)
	p := e.pod(t, "echo one; sleep 1.5; echo two; echo three", nil)
	e.waitPod(t, p.Name, "started", func(p *corev1.Pod, err error) bool { return err == nil && p.Status.Phase != corev1.PodPending })
	rc, err := e.client.CoreV1().Pods(e.ns).GetLogs(p.Name, &corev1.PodLogOptions{Follow: true}).Stream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	var lines []string
	var at []time.Time
	for {
		l, err := br.ReadString('\n')
		if l != "" {
			lines = append(lines, strings.TrimSpace(l))
			at = append(at, time.Now())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"one", "two", "three"}, lines); diff != "" {
		t.Fatalf("followed lines (-want +got):\n%s", diff)
	}
	if gap := at[1].Sub(at[0]); gap < time.Second {
		t.Errorf("one came only %v before two: not streamed", gap)
	}
	tail, err := e.client.CoreV1().Pods(e.ns).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: ptr(int64(2))}).DoRaw(context.Background())
	if err != nil || string(tail) != "two\nthree\n" {
		t.Errorf("tailLines 2: %q, %v", tail, err)
	}
}

// A pod procnode cannot run fails at once, saying why.
func TestUnsupportedPodFails(t *testing.T) {
	t.Parallel()
	e := start(t, 0)
	for name, mod := range map[string]func(*corev1.Pod){
		"two containers": func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "x", Command: []string{"true"}})
		},
		"no command": func(p *corev1.Pod) { p.Spec.Containers[0].Command = nil },
		"resource env": func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "CPU", ValueFrom: &corev1.EnvVarSource{
				ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}}}
		},
		"missing binary": func(p *corev1.Pod) { p.Spec.Containers[0].Command = []string{"/nonexistent/procnode-test"} },
	} {
		t.Run(name, func(t *testing.T) {
			p := e.pod(t, "echo ran", mod)
			done := e.waitPhase(t, p.Name, corev1.PodFailed)
			ts := done.Status.ContainerStatuses[0].State.Terminated
			if ts == nil || ts.ExitCode != 128 || ts.Reason != "StartError" || !strings.HasPrefix(done.Status.Message, "procnode: ") {
				t.Errorf("status %q %+v, want StartError with exit code 128 and a message", done.Status.Message, ts)
			}
		})
	}
}

// Close stops running pods as a node shutdown does and removes the node.
func TestClose(t *testing.T) {
	t.Parallel()
	cfg, c := cluster(t)
	e := start(t, 0)
	p := e.pod(t, "echo up; sleep 100", nil)
	e.waitPhase(t, p.Name, corev1.PodRunning)
	t0 := time.Now()
	if err := e.node.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	done, err := c.CoreV1().Pods(e.ns).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	disrupted := false
	for _, cond := range done.Status.Conditions {
		disrupted = disrupted || cond.Type == corev1.DisruptionTarget && cond.Status == corev1.ConditionTrue && cond.Reason == "TerminationByKubelet"
	}
	if done.Status.Phase != corev1.PodFailed || !disrupted {
		t.Errorf("after Close: phase %s, conditions %+v; want Failed with DisruptionTarget", done.Status.Phase, done.Status.Conditions)
	}
	if _, err := c.CoreV1().Nodes().Get(context.Background(), e.node.Name(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node after Close: %v, want NotFound", err)
	}
	if err := e.node.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_ = cfg
}

func TestStartRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]Options{
		"no name":      {RESTConfig: &rest.Config{Host: "https://127.0.0.1:1"}},
		"bad name":     {RESTConfig: &rest.Config{Host: "https://127.0.0.1:1"}, Name: "Not_A_Name"},
		"no cluster":   {Name: "n"},
		"negative gpu": {RESTConfig: &rest.Config{Host: "https://127.0.0.1:1"}, Name: "n", GPUs: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if n, err := Start(context.Background(), opts); err == nil || !strings.HasPrefix(err.Error(), "procnode: ") {
				t.Errorf("Start: %v, %v; want a procnode error", n, err)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := Start(ctx, Options{RESTConfig: &rest.Config{Host: "https://127.0.0.1:1"}, Name: "n", Dir: t.TempDir()}); err == nil {
		t.Error("Start against no API server succeeded")
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"A": "x", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)":           "x",
		"<$(A)$(A)>":     "<xx>",
		"$(EMPTY)!":      "!",
		"$(B)":           "$(B)",
		"$$(A)":          "$(A)",
		"$$$$":           "$$",
		"$1 $? ${A} $":   "$1 $? ${A} $",
		"$(A":            "$(A",
		"$( $$ $(A)":     "$( $$ $(A)", // the reference is " $$ $(A"
		"$( $$":          "$( $",
		"echo $(pwd -P)": "echo $(pwd -P)",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFieldRef(t *testing.T) {
	t.Parallel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u",
		Labels: map[string]string{"b": "2", "a": "1"}, Annotations: map[string]string{"x/y": "z"}}}
	for path, want := range map[string]string{
		"metadata.name": "p", "metadata.namespace": "ns", "metadata.uid": "u",
		"metadata.labels['a']": "1", "metadata.annotations['x/y']": "z", "metadata.annotations['none']": "",
		"metadata.labels": "a=\"1\"\nb=\"2\"", "status.podIP": "127.0.0.1",
	} {
		if got, err := fieldRef(pod, path); err != nil || got != want {
			t.Errorf("fieldRef(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := fieldRef(pod, "spec.nothing"); err == nil {
		t.Error("fieldRef of an unknown path: no error")
	}
}

// A pod that ends while the API server is away is reported once it is
// back: the status is retried, not lost.
func TestStatusSurvivesAPIServerOutage(t *testing.T) {
	t.Parallel()
	cfg, c := cluster(t)
	ctx := context.Background()
	ns := randName("procnode-test-")
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	cu := &kubetest.Proxy{Target: u.Host}
	cu.Start(t)
	t.Cleanup(cu.Cut)
	viaCutter := rest.CopyConfig(cfg)
	viaCutter.Host = "https://" + cu.Addr()
	n, err := Start(ctx, Options{RESTConfig: viaCutter, Name: randName("procnode-"), Dir: t.TempDir(),
		Taints: []corev1.Taint{{Key: TaintKey, Value: "true", Effect: corev1.TaintEffectNoSchedule}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	e := &env{node: n, client: c, ns: ns}
	p := e.pod(t, "echo up; sleep 1.5; echo down", nil)
	e.waitPhase(t, p.Name, corev1.PodRunning)
	cu.Cut()
	time.Sleep(3 * time.Second) // the process ends meanwhile
	if got, err := c.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{}); err != nil || got.Status.Phase != corev1.PodRunning {
		t.Fatalf("during the outage: %v, %v; want the pod still Running (nobody could tell)", phase(got), err)
	}
	cu.Start(t) // the same address
	e.waitPhase(t, p.Name, corev1.PodSucceeded)
}
