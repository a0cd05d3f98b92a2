package procnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
)

// Labels and taint keys a node carries.
const (
	// ProductLabel names the node's GPU model, as NVIDIA's GPU feature
	// discovery labels real nodes.
	ProductLabel = "nvidia.com/gpu.product"
	// TaintKey is a taint key callers may use to keep other pods off a
	// procnode (e.g. {Key: TaintKey, Value: "true", Effect: NoSchedule});
	// Start adds no taint by itself.
	TaintKey = "gpubroker.io/procnode"
	// leaseNamespace holds node heartbeats.
	leaseNamespace = "kube-node-lease"
	// leaseSeconds is the Lease's duration; it is renewed every quarter.
	leaseSeconds = 40
)

// Options configure a Node. Name and one of RESTConfig or Kubeconfig are
// required.
type Options struct {
	// RESTConfig reaches the API server; when nil, Kubeconfig is loaded.
	RESTConfig *rest.Config
	// Kubeconfig is a kubeconfig file (its current context), used when
	// RESTConfig is nil.
	Kubeconfig string
	// Name is the Node's name (a DNS subdomain). A Node of that name that
	// is not kwok's is taken over: its labels, taints and status are
	// replaced.
	Name string
	// GPUs is the node's capacity of GPUResource (0: none).
	GPUs int
	// GPUResource is the extended resource a GPU is; default
	// "nvidia.com/gpu".
	GPUResource string
	// Product, when set, is the node's nvidia.com/gpu.product label.
	Product string
	// Labels are added to the node's labels (after the defaults:
	// kubernetes.io/hostname, kubernetes.io/os, kubernetes.io/arch and, with
	// GPUs, nvidia.com/gpu.present and nvidia.com/gpu.count).
	Labels map[string]string
	// Taints are the node's taints.
	Taints []corev1.Taint
	// CPUs and MemoryGiB are the node's capacity; defaults: this host's
	// CPU count and 64. Pods are not limited to them.
	CPUs      int
	MemoryGiB int
	// Dir holds the pods' logs and default work directories
	// (Dir/pods/NAMESPACE_POD_UID/). Default: a temporary directory removed
	// by Close.
	Dir string
	// Log receives what the node does and what fails in the background
	// (status updates, lease renewals); nil: discarded.
	Log *slog.Logger
}

// Node is a running procnode. Its methods are safe for concurrent use.
type Node struct {
	opts   Options
	client k8s.Interface
	log    *slog.Logger
	dir    string
	tmpDir bool // dir is Start's own and Close removes it
	port   int
	srv    *http.Server

	// ctx ends the pod watch and the lease loop (Close, first step); api
	// ends every API call (Close, last step).
	ctx, api          context.Context
	cancel, cancelAPI context.CancelFunc
	informer          cache.SharedIndexInformer
	wg                sync.WaitGroup // pod runners, lease loop, informer
	closeOnce         sync.Once
	closeErr          error

	mu       sync.Mutex
	pods     map[types.UID]*proc // every pod seen, until its object is gone
	byName   map[string]*proc    // "namespace/name" -> its newest proc
	gpus     []bool              // slot -> in use
	shutdown bool                // Close has begun: no new pods, stops are disruptions
}

// Start registers the Node and starts running the pods bound to it. ctx
// bounds only the start; the node lives until Close.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if errs := validation.IsDNS1123Subdomain(opts.Name); len(errs) > 0 {
		return nil, fmt.Errorf("procnode: Options.Name %q: %v", opts.Name, errs)
	}
	if opts.GPUs < 0 || opts.CPUs < 0 || opts.MemoryGiB < 0 {
		return nil, fmt.Errorf("procnode: negative capacity (GPUs %d, CPUs %d, MemoryGiB %d)", opts.GPUs, opts.CPUs, opts.MemoryGiB)
	}
	if opts.GPUResource == "" {
		opts.GPUResource = "nvidia.com/gpu"
	}
	if opts.CPUs == 0 {
		opts.CPUs = runtime.NumCPU()
	}
	if opts.MemoryGiB == 0 {
		opts.MemoryGiB = 64
	}
	cfg := opts.RESTConfig
	if cfg == nil {
		if opts.Kubeconfig == "" {
			return nil, errors.New("procnode: Options.RESTConfig or Options.Kubeconfig is required")
		}
		var err error
		if cfg, err = clientcmd.BuildConfigFromFlags("", opts.Kubeconfig); err != nil {
			return nil, fmt.Errorf("procnode: kubeconfig: %w", err)
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "procnode/" + opts.Name
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 100, 200
	}
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("procnode: client: %w", err)
	}
	n := &Node{opts: opts, client: client, log: opts.Log, dir: opts.Dir,
		pods: map[types.UID]*proc{}, byName: map[string]*proc{}, gpus: make([]bool, opts.GPUs)}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.log = n.log.With("node", opts.Name)
	if n.dir == "" {
		if n.dir, err = os.MkdirTemp("", "procnode-"+opts.Name+"-"); err != nil {
			return nil, fmt.Errorf("procnode: %w", err)
		}
		n.tmpDir = true
	} else if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return nil, fmt.Errorf("procnode: Options.Dir: %w", err)
	}
	if n.dir, err = filepath.Abs(n.dir); err != nil {
		return nil, fmt.Errorf("procnode: Options.Dir: %w", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.api, n.cancelAPI = context.WithCancel(context.Background())
	fail := func(err error) (*Node, error) {
		n.cancel()
		n.cancelAPI()
		if n.srv != nil {
			n.srv.Close()
		}
		n.wg.Wait()
		if n.tmpDir {
			os.RemoveAll(n.dir)
		}
		return nil, err
	}
	if err := n.serve(); err != nil {
		return fail(err)
	}
	if err := n.register(ctx); err != nil {
		return fail(err)
	}
	n.startInformer()
	if !cache.WaitForCacheSync(ctx.Done(), n.informer.HasSynced) {
		_ = n.deleteNode(context.Background())
		return fail(fmt.Errorf("procnode: %s: pod watch did not sync: %w", opts.Name, context.Cause(ctx)))
	}
	n.wg.Go(n.renewLease)
	n.log.Info("procnode started", "port", n.port, "dir", n.dir)
	return n, nil
}

// Name is the Node's name.
func (n *Node) Name() string { return n.opts.Name }

// Dir is where the node keeps the pods' logs and work directories.
func (n *Node) Dir() string { return n.dir }

// labels are the Node's labels.
func (n *Node) labels() map[string]string {
	l := map[string]string{
		"kubernetes.io/hostname": n.opts.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     runtime.GOARCH,
	}
	if n.opts.GPUs > 0 {
		l["nvidia.com/gpu.present"] = "true"
		l["nvidia.com/gpu.count"] = strconv.Itoa(n.opts.GPUs)
	}
	if n.opts.Product != "" {
		l[ProductLabel] = n.opts.Product
	}
	for k, v := range n.opts.Labels {
		l[k] = v
	}
	return l
}

func (n *Node) status() corev1.NodeStatus {
	now := metav1.Now()
	res := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(n.opts.CPUs), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(int64(n.opts.MemoryGiB)<<30, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	if n.opts.GPUs > 0 {
		res[corev1.ResourceName(n.opts.GPUResource)] = *resource.NewQuantity(int64(n.opts.GPUs), resource.DecimalSI)
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg,
			LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "procnode does not track memory"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "procnode does not track disk"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "procnode does not track PIDs"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "procnode is posting ready status"),
		},
		// Only an InternalIP: the API server dials the first address of its
		// preferred types, and a Hostname (the default first choice) would
		// be the node's name, which does not resolve.
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(n.port)}},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: "linux", Architecture: runtime.GOARCH,
			KubeletVersion: "procnode", ContainerRuntimeVersion: "procnode://0",
			OSImage: "host processes", KernelVersion: "host",
		},
	}
}

// register creates the Node, or takes over a Node of that name that kwok
// does not manage, and sets its status.
func (n *Node) register(ctx context.Context) error {
	nodes := n.client.CoreV1().Nodes()
	obj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.opts.Name, Labels: n.labels()},
		Spec:       corev1.NodeSpec{Taints: n.opts.Taints},
	}
	_, err := nodes.Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			old, err := nodes.Get(ctx, n.opts.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if _, ok := old.Annotations["kwok.x-k8s.io/node"]; ok {
				return fmt.Errorf("node %s exists and is managed by kwok", n.opts.Name)
			}
			old.Labels = obj.Labels
			old.Spec.Taints = obj.Spec.Taints
			old.Spec.Unschedulable = false
			_, err = nodes.Update(ctx, old, metav1.UpdateOptions{})
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("procnode: register node %s: %w", n.opts.Name, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := nodes.Get(ctx, n.opts.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status = n.status()
		_, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		_ = n.deleteNode(context.Background())
		return fmt.Errorf("procnode: node %s status: %w", n.opts.Name, err)
	}
	return nil
}

func (n *Node) deleteNode(ctx context.Context) error {
	err := n.client.CoreV1().Nodes().Delete(ctx, n.opts.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("procnode: delete node %s: %w", n.opts.Name, err)
	}
	return nil
}

// renewLease keeps the node's heartbeat Lease fresh, for clusters whose
// node-lifecycle controller would otherwise mark the node NotReady and
// evict its pods (the test cluster runs none; then it is harmless).
func (n *Node) renewLease() {
	leases := n.client.CoordinationV1().Leases(leaseNamespace)
	warned := false
	for {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			now := metav1.NewMicroTime(time.Now())
			l, err := leases.Get(n.ctx, n.opts.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				_, err = leases.Create(n.ctx, &coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: n.opts.Name},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: &n.opts.Name,
						LeaseDurationSeconds: ptr(int32(leaseSeconds)), RenewTime: &now},
				}, metav1.CreateOptions{})
				return err
			}
			if err != nil {
				return err
			}
			l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &n.opts.Name, ptr(int32(leaseSeconds)), &now
			_, err = leases.Update(n.ctx, l, metav1.UpdateOptions{})
			return err
		})
		if err != nil && n.ctx.Err() == nil && !warned {
			n.log.Warn("node lease not renewed", "err", err)
			warned = true
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(leaseSeconds * time.Second / 4):
		}
	}
}

// startInformer watches the pods bound to the node, in every namespace.
func (n *Node) startInformer() {
	sel := fields.OneTermEqualSelector("spec.nodeName", n.opts.Name).String()
	pods := n.client.CoreV1().Pods(metav1.NamespaceAll)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) {
			o.FieldSelector = sel
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return pods.Watch(ctx, o)
		},
	}
	n.informer = cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	_, _ = n.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.onPod(obj) },
		UpdateFunc: func(_, obj any) { n.onPod(obj) },
		DeleteFunc: n.onPodGone,
	})
	n.wg.Go(func() { n.informer.RunWithContext(n.ctx) })
}

// Close shuts the node down gracefully: it stops taking pods, stops every
// running process (SIGTERM, then SIGKILL after the pod's grace period,
// at most 10s), reports those pods Failed with condition DisruptionTarget,
// deletes the Lease and the Node, and stops the log server. It returns the
// first error met; a second call returns the same.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	n.mu.Lock()
	n.shutdown = true
	running := make([]*proc, 0, len(n.pods))
	for _, p := range n.pods {
		running = append(running, p)
	}
	n.mu.Unlock()
	n.cancel() // the pod watch and the lease loop; runners go on
	for _, p := range running {
		p.mu.Lock()
		p.disrupted = !p.final
		p.mu.Unlock()
		p.stop(10 * time.Second)
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		n.log.Warn("procnode close: status updates still pending after 30s; abandoning them")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if err := n.client.CoordinationV1().Leases(leaseNamespace).Delete(ctx, n.opts.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("procnode: delete lease %s: %w", n.opts.Name, err))
	}
	errs = append(errs, n.deleteNode(ctx))
	n.cancelAPI()
	<-done
	if err := n.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, fmt.Errorf("procnode: log server: %w", err))
	}
	if n.tmpDir {
		errs = append(errs, os.RemoveAll(n.dir))
	}
	return errors.Join(errs...)
}

func ptr[T any](v T) *T { return &v }
