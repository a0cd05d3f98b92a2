package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"gpubroker/internal/backend"
	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

// Health is nil when the API server answers /readyz with "ok" and at least
// one node is Ready; otherwise an error wrapping backend.ErrUnavailable.
func (b *Backend) Health(ctx context.Context) error {
	body, err := b.client.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("kubernetes: /readyz: %v: %w", err, backend.ErrUnavailable)
	}
	if strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("kubernetes: /readyz: %q: %w", body, backend.ErrUnavailable)
	}
	nodes, err := b.nodes(ctx)
	if err != nil {
		return err
	}
	ready := 0
	for i := range nodes {
		if nodeReady(&nodes[i]) {
			ready++
		}
	}
	if ready == 0 {
		return fmt.Errorf("kubernetes: none of %d nodes Ready: %w", len(nodes), backend.ErrUnavailable)
	}
	return nil
}

// nodes returns the cluster's nodes in name order: from the node watch's
// cache once it has synced and while it works (Health runs every round; a
// List of every node each time would load the API server with work the
// engine alone does not have), from a List otherwise. The first call
// starts the watch; where the broker may list nodes but not watch them,
// every call lists.
func (b *Backend) nodes(ctx context.Context) ([]corev1.Node, error) {
	if w := b.nodeWatch(); w != nil && w.informer.HasSynced() && w.err() == nil {
		objs := w.informer.GetStore().List()
		out := make([]corev1.Node, 0, len(objs))
		for _, o := range objs {
			out = append(out, *o.(*corev1.Node))
		}
		sortNodes(out)
		return out, nil
	}
	list, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	sortNodes(list.Items)
	return list.Items, nil
}

func sortNodes(ns []corev1.Node) {
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
}

// nodeWatcher is the backend's watch of the cluster's nodes.
type nodeWatcher struct {
	informer cache.SharedIndexInformer
	running
	watchState
}

// nodeWatch returns the node watch, starting it on first use; nil once the
// backend is closed.
func (b *Backend) nodeWatch() *nodeWatcher {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	if b.nodeW != nil {
		return b.nodeW
	}
	w := &nodeWatcher{}
	nodes := b.client.CoreV1().Nodes()
	w.informer = b.informer(&w.watchState, metav1.ListOptions{}, &corev1.Node{}, nil,
		func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) { return nodes.List(ctx, o) },
		nodes.Watch)
	w.start(w.informer)
	b.nodeW = w
	return w
}

func nodeReady(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// gpus is the node's allocatable GPU count.
func (b *Backend) gpus(n *corev1.Node) int {
	q, ok := n.Status.Allocatable[corev1.ResourceName(b.opts.GPUResource)]
	if !ok {
		return 0
	}
	return int(q.Value())
}

// GPUs returns the allocatable GPUs of every node that has any, nodes in
// name order.
func (b *Backend) GPUs(ctx context.Context) ([]int, error) {
	nodes, err := b.nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []int
	for i := range nodes {
		if g := b.gpus(&nodes[i]); g > 0 {
			out = append(out, g)
		}
	}
	return out, nil
}

// DiscoverPools groups the Ready GPU nodes into pools: one pool per
// nvidia.com/gpu.product value and GPU count per node, named after the
// product (with "-xN" appended when one product comes in several sizes),
// the model parsed by catalog.ParseGPU, CPUs and memory from the smallest
// node's allocatable, price class on-demand. Nodes without the product
// label, or whose product the catalog does not know, are left out; the
// error lists the unknown products only when no pool is found at all.
func (b *Backend) DiscoverPools(ctx context.Context) ([]model.Pool, error) {
	nodes, err := b.nodes(ctx)
	if err != nil {
		return nil, err
	}
	type key struct {
		product string
		gpus    int
	}
	pools := map[key]*model.Pool{}
	sizes := map[string]int{}
	var unknown []string
	for i := range nodes {
		n := &nodes[i]
		g := b.gpus(n)
		product := n.Labels[ProductLabel]
		if g == 0 || product == "" || !nodeReady(n) {
			continue
		}
		gpu, err := catalog.ParseGPU(product)
		if err != nil {
			unknown = append(unknown, product)
			continue
		}
		k := key{product, g}
		cpus := quantity(n.Status.Allocatable[corev1.ResourceCPU])
		mem := quantity(n.Status.Allocatable[corev1.ResourceMemory]) / (1 << 30)
		p := pools[k]
		if p == nil {
			p = &model.Pool{Name: product, GPU: gpu, GPUsPerNode: g, PriceClass: model.OnDemand,
				CPUsPerNode: cpus, MemoryGiBPerNode: mem}
			pools[k] = p
			sizes[product]++
		}
		p.Nodes++
		p.CPUsPerNode = min(p.CPUsPerNode, cpus)
		p.MemoryGiBPerNode = min(p.MemoryGiBPerNode, mem)
	}
	out := make([]model.Pool, 0, len(pools))
	for k, p := range pools {
		if sizes[k.product] > 1 {
			p.Name = fmt.Sprintf("%s-x%d", k.product, k.gpus)
		}
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 && len(unknown) > 0 {
		return nil, fmt.Errorf("kubernetes: no known GPU model among node products %q", unknown)
	}
	return out, nil
}

func quantity(q resource.Quantity) float64 { return q.AsApproximateFloat64() }
