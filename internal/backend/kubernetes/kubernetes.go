package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"gpubroker/internal/backend"
)

// Labels and annotations the backend puts on what it creates.
const (
	LabelJobID   = "gpubroker.io/job-id"
	LabelAttempt = "gpubroker.io/attempt"
	LabelTeam    = "gpubroker.io/team"
	// AnnotationCancelled marks a Job that Cancel stopped.
	AnnotationCancelled = "gpubroker.io/cancelled"
	// ProductLabel is the node label (set by NVIDIA's GPU feature
	// discovery) that names a node's GPU model.
	ProductLabel = "nvidia.com/gpu.product"
	// completionIndex is the annotation the Job controller puts on each
	// pod of an Indexed Job: the pod's index, here its node rank.
	completionIndex = "batch.kubernetes.io/job-completion-index"
	// container is the name of the one container of every pod.
	container = "main"
)

// Options configure a Backend. The zero value talks to the cluster of
// $KUBECONFIG's current context, in namespace "gpubroker".
type Options struct {
	// Kubeconfig is the kubeconfig file; empty: $KUBECONFIG, then
	// ~/.kube/config, then the in-cluster service account.
	Kubeconfig string
	// Context is the kubeconfig context; empty: the current one.
	Context string
	// Namespace holds the Jobs; default "gpubroker". Submit creates it when
	// it is missing.
	Namespace string
	// Image runs the job's bash scripts; it must have bash on PATH.
	// Default "bash:5.2".
	Image string
	// GPUResource is the extended resource a GPU is; default
	// "nvidia.com/gpu".
	GPUResource string
	// PoolProducts maps a pool name to the nvidia.com/gpu.product value its
	// nodes carry. A pool not listed here is taken to be that value itself;
	// an empty pool selects no GPU model.
	PoolProducts map[string]string
	// NodeSelector is added to every pod's node selector (e.g. to keep the
	// broker's work on some nodes).
	NodeSelector map[string]string
	// PodAnnotations are added to every pod (e.g. for an admission webhook
	// or, in tests, kwok's simulated outcomes).
	PodAnnotations map[string]string
	// Tolerations are added to every pod's, after the one every pod has
	// (GPUResource:NoSchedule, the taint GPU nodes commonly carry): e.g. a
	// cluster's own taint on its GPU nodes, or a procnode's in tests.
	Tolerations []corev1.Toleration
	// QPS and Burst bound the client's request rate; defaults 200 and 400
	// (client-go's 5/10 makes 500 submissions take minutes).
	QPS   float32
	Burst int
	// Compression lets the API server gzip its responses, watch streams
	// included. Off by default: the server then compresses every watch
	// event on its own and the broker inflates it, CPU on both sides (a
	// fifth of the broker's watch decoding in a 500-job burst, and the API
	// server is the busiest process of a small cluster) spent to save bytes
	// on what is usually a datacenter link. Turn it on for a cluster reached
	// over a slow one.
	Compression bool
	// RESTConfig, when set, is used instead of loading a kubeconfig (tests
	// wrap its transport).
	RESTConfig *rest.Config
}

// Backend runs attempts as Indexed Jobs. It is safe for concurrent use.
type Backend struct {
	opts    Options
	client  k8s.Interface
	ns      string
	changes chan struct{} // Changes' channel, buffer 1

	mu     sync.Mutex
	jobs   *jobWatch    // started by the first Observe or Changes
	nodeW  *nodeWatcher // started by the first Health or discovery
	closed bool
	// classes are the PriorityClasses known to exist (Spec.Ordered).
	classes map[int32]bool
}

var _ interface {
	backend.Backend
	backend.Health
	backend.GPUDiscoverer
	backend.Watcher
	backend.LogTailer
	io.Closer
} = (*Backend)(nil)

// New returns a Backend for the cluster opts name. It does not contact the
// cluster: a cluster that is down shows in Health and in every call's
// backend.ErrUnavailable, not here.
func New(opts Options) (*Backend, error) {
	if opts.Namespace == "" {
		opts.Namespace = "gpubroker"
	}
	if opts.Image == "" {
		opts.Image = "bash:5.2"
	}
	if opts.GPUResource == "" {
		opts.GPUResource = "nvidia.com/gpu"
	}
	if opts.QPS <= 0 {
		opts.QPS = 200
	}
	if opts.Burst <= 0 {
		opts.Burst = 400
	}
	cfg := opts.RESTConfig
	if cfg == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if opts.Kubeconfig != "" {
			rules.ExplicitPath = opts.Kubeconfig
		}
		var err error
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: opts.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: kubeconfig: %w", err)
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	cfg.DisableCompression = !opts.Compression
	if cfg.UserAgent == "" {
		cfg.UserAgent = "gpubroker"
	}
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	return &Backend{opts: opts, client: client, ns: opts.Namespace, changes: make(chan struct{}, 1)}, nil
}

// Namespace is where the backend's Jobs live.
func (b *Backend) Namespace() string { return b.ns }

// Submit creates the attempt's Job (and, for a gang, its Service). An
// existing Job of that name means the attempt was submitted already:
// Submit returns nil and creates nothing new.
func (b *Backend) Submit(ctx context.Context, spec backend.Spec) error {
	if len(spec.Nodes) == 0 {
		return fmt.Errorf("kubernetes: submit %s: no nodes", spec.Name)
	}
	job := b.job(spec)
	if spec.Ordered {
		class, err := b.priorityClass(ctx, spec.Priority)
		if err != nil {
			return err
		}
		job.Spec.Template.Spec.PriorityClassName = class
	}
	created, err := b.client.BatchV1().Jobs(b.ns).Create(ctx, job, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		// The namespace is missing (the only thing a create can miss).
		if err := b.ensureNamespace(ctx); err != nil {
			return err
		}
		created, err = b.client.BatchV1().Jobs(b.ns).Create(ctx, job, metav1.CreateOptions{})
	}
	if apierrors.IsAlreadyExists(err) {
		if len(spec.Nodes) == 1 {
			return nil
		}
		// A broker may have died between the Job and its Service.
		created, err = b.client.BatchV1().Jobs(b.ns).Get(ctx, spec.Name, metav1.GetOptions{})
	}
	if err != nil {
		return startError(wrap("submit "+spec.Name, err))
	}
	if w := b.startedWatch(); w != nil && created.UID != "" {
		w.noteCreated(created)
	}
	if len(spec.Nodes) > 1 {
		_, err := b.client.CoreV1().Services(b.ns).Create(ctx, service(created), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return wrap("submit "+spec.Name+": service", err)
		}
	}
	return nil
}

// priorityClass returns the PriorityClass of Ordered work of the broker's
// priority p, creating it on first use: kube-scheduler then takes pending
// pods from its queue by the broker's priority (then by age) when capacity
// frees. It never preempts on its own (preemptionPolicy Never): the broker
// decides preemption. Values are clamped to what a user may define
// (-1e9 to 1e9).
func (b *Backend) priorityClass(ctx context.Context, p int) (string, error) {
	v := int32(min(max(p, -1e9), 1e9))
	name := "gpubroker-priority-" + strconv.Itoa(int(v))
	if v < 0 {
		name = "gpubroker-priority-minus-" + strconv.Itoa(-int(v))
	}
	b.mu.Lock()
	known := b.classes[v]
	b.mu.Unlock()
	if known {
		return name, nil
	}
	never := corev1.PreemptNever
	pc := &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "gpubroker"}},
		Value:      v, PreemptionPolicy: &never,
		Description: "gpubroker priority " + strconv.Itoa(int(v)) + ": orders work queued ahead (queue_ahead); never preempts",
	}
	_, err := b.client.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		if apierrors.IsForbidden(err) {
			return "", fmt.Errorf("kubernetes: queue_ahead orders queued pods by PriorityClass, and creating %s was refused: %v; "+
				"let the broker create priorityclasses.scheduling.k8s.io, or remove queue_ahead from the cluster", name, err)
		}
		return "", wrap("create priorityclass "+name, err)
	}
	b.mu.Lock()
	if b.classes == nil {
		b.classes = map[int32]bool{}
	}
	b.classes[v] = true
	b.mu.Unlock()
	return name, nil
}

func (b *Backend) ensureNamespace(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.ns}}
	_, err := b.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return wrap("create namespace "+b.ns, err)
	}
	return nil
}

// labels are the Job's and its pods' labels.
func labels(spec backend.Spec) map[string]string {
	l := map[string]string{
		LabelJobID:   strconv.FormatInt(spec.JobID, 10),
		LabelAttempt: strconv.Itoa(spec.Attempt),
	}
	if spec.Team != "" && len(spec.Team) <= 63 {
		l[LabelTeam] = spec.Team
	}
	return l
}

// wrapper runs setup ($1) then run ($2), each in its own bash, so that
// setup's exit code is the node's when it fails.
//
// The kubelet expands $(VAR) in a container's command, args and env values
// and turns $$ into $, so every script and value goes through literal:
// a script's "echo $$" or '$(HOME)' reaches bash as written.
const wrapper = `if [ -n "$1" ]; then bash -c "$1" || exit $?; fi
exec bash -c "$2"`

func (b *Backend) job(spec backend.Spec) *batchv1.Job {
	n := int32(len(spec.Nodes))
	gpus := len(spec.Nodes[0].GPUs)
	ls := labels(spec)
	podLabels := map[string]string{}
	for k, v := range ls {
		podLabels[k] = v
	}
	annotations := map[string]string{}
	for k, v := range b.opts.PodAnnotations {
		annotations[k] = v
	}
	selector := map[string]string{}
	for k, v := range b.opts.NodeSelector {
		selector[k] = v
	}
	if spec.Pool != "" {
		product := b.opts.PoolProducts[spec.Pool]
		if product == "" {
			product = spec.Pool
		}
		selector[ProductLabel] = product
	}
	res := corev1.ResourceRequirements{}
	if gpus > 0 {
		q := resource.MustParse(strconv.Itoa(gpus))
		res.Limits = corev1.ResourceList{corev1.ResourceName(b.opts.GPUResource): q}
	}
	pod := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		NodeSelector:  selector,
		Tolerations: append([]corev1.Toleration{{
			Key: b.opts.GPUResource, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
		}}, b.opts.Tolerations...),
		Containers: []corev1.Container{{
			Name:       container,
			Image:      b.opts.Image,
			Command:    []string{"bash", "-c", literal(wrapper), "gpubroker", literal(spec.Setup), literal(spec.Run)},
			WorkingDir: spec.Workdir,
			Env:        env(spec, gpus),
			Resources:  res,
		}},
	}
	if n > 1 {
		pod.Subdomain = spec.Name
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: ls},
		Spec: batchv1.JobSpec{
			Completions:    &n,
			Parallelism:    &n,
			CompletionMode: ptr(batchv1.IndexedCompletion),
			BackoffLimit:   ptr(int32(0)),
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
				{
					Action: batchv1.PodFailurePolicyActionFailJob,
					OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{
						Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
					}},
				},
				{
					Action: batchv1.PodFailurePolicyActionFailJob,
					OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
						ContainerName: ptr(container),
						Operator:      batchv1.PodFailurePolicyOnExitCodesOpNotIn,
						Values:        []int32{0},
					},
				},
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec:       pod,
			},
		},
	}
}

// env is every node's environment: the spec's Envs, then the variables
// the backend sets (the later wins in Kubernetes too). The node rank comes
// from the pod's completion index through the downward API.
func env(spec backend.Spec, gpus int) []corev1.EnvVar {
	keys := make([]string, 0, len(spec.Envs))
	for k := range spec.Envs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []corev1.EnvVar
	for _, k := range keys {
		out = append(out, corev1.EnvVar{Name: k, Value: literal(spec.Envs[k])})
	}
	n := len(spec.Nodes)
	ips := "127.0.0.1"
	if n > 1 {
		names := make([]string, n)
		for i := range names {
			// Indexed Job pods are named host NAME-i in subdomain NAME.
			names[i] = fmt.Sprintf("%s-%d.%s", spec.Name, i, spec.Name)
		}
		ips = strings.Join(names, "\n")
	}
	rank := &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
		FieldPath: "metadata.annotations['" + completionIndex + "']",
	}}
	plain := func(k, v string) corev1.EnvVar { return corev1.EnvVar{Name: k, Value: literal(v)} }
	return append(out,
		plain("GPUBROKER_JOB_ID", strconv.FormatInt(spec.JobID, 10)),
		plain("GPUBROKER_ATTEMPT", strconv.Itoa(spec.Attempt)),
		plain("GPUBROKER_NAME", spec.Name),
		corev1.EnvVar{Name: "GPUBROKER_NODE_RANK", ValueFrom: rank},
		plain("GPUBROKER_NUM_NODES", strconv.Itoa(n)),
		plain("GPUBROKER_NODE_IPS", ips),
		plain("GPUBROKER_GPUS_PER_NODE", strconv.Itoa(gpus)),
		plain("GPUBROKER_CHECKPOINT_DIR", spec.CheckpointDir),
		corev1.EnvVar{Name: "SKYPILOT_NODE_RANK", ValueFrom: rank},
		plain("SKYPILOT_NUM_NODES", strconv.Itoa(n)),
		plain("SKYPILOT_NODE_IPS", ips),
		plain("SKYPILOT_NUM_GPUS_PER_NODE", strconv.Itoa(gpus)),
		plain("SKYPILOT_TASK_ID", spec.Name),
	)
}

// service is a gang's headless Service, owned by its Job so that deleting
// the Job deletes it.
func service(job *batchv1.Job) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:   job.Name,
			Labels: job.Labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: ptr(true), BlockOwnerDeletion: ptr(true),
			}},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 map[string]string{batchv1.JobNameLabel: job.Name},
			PublishNotReadyAddresses: true,
		},
	}
}

// Cancel stops the attempt's pods and leaves the Job, marked cancelled,
// for Observe to report until Forget. It sets the Job's
// activeDeadlineSeconds to 1, so that the Job controller fails the Job
// (and would stop its pods), and deletes the pods itself, so that they stop
// at once even while a busy Job controller has not got to the Job yet.
// Cancelling an unknown or ended attempt returns nil.
func (b *Backend) Cancel(ctx context.Context, name string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}},"spec":{"activeDeadlineSeconds":1}}`, AnnotationCancelled)
	_, err := b.client.BatchV1().Jobs(b.ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case apierrors.IsInvalid(err):
		// A finished Job's deadline can no longer be changed; nothing runs.
		return nil
	case err != nil:
		return wrap("cancel "+name, err)
	}
	err = b.client.CoreV1().Pods(b.ns).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
	if err != nil && !apierrors.IsNotFound(err) {
		return wrap("cancel "+name+": delete pods", err)
	}
	return nil
}

// Forget deletes the attempt's Job, its pods and Service (foreground
// propagation: the Job goes last). ErrNotFound when there is none.
func (b *Backend) Forget(ctx context.Context, name string) error {
	err := b.client.BatchV1().Jobs(b.ns).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationForeground),
	})
	if err != nil {
		return wrap("forget "+name, err)
	}
	if w := b.startedWatch(); w != nil {
		w.noteForgotten(b.ns, name)
	}
	return nil
}

// wrap turns a client error into the contract's error kinds: NotFound ->
// backend.ErrNotFound; a connection failure, timeout, throttling or
// server error -> backend.ErrUnavailable; anything else as it is.
func wrap(what string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes: %s: %v: %w", what, err, backend.ErrNotFound)
	case unavailable(err):
		return fmt.Errorf("kubernetes: %s: %v: %w", what, err, backend.ErrUnavailable)
	}
	return fmt.Errorf("kubernetes: %s: %w", what, err)
}

// startError marks a create the API server refused for what the object
// holds (invalid, too large, malformed): it would
// be refused again, so the attempt did not start (backend.StartError).
// Forbidden is not one: a ResourceQuota exceeded for now says it too.
func startError(err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsBadRequest(err) {
		return &backend.StartError{Err: err}
	}
	return err
}

func unavailable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
			apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err)
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded)
}

func ptr[T any](v T) *T { return &v }

// literal escapes s from the kubelet's $(VAR) expansion.
func literal(s string) string { return strings.ReplaceAll(s, "$", "$$") }
