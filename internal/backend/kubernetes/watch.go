package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"gpubroker/internal/backend"
)

// syncWait bounds how long a call waits for the first List of the watch
// before it answers backend.ErrUnavailable.
const syncWait = 10 * time.Second

// overlayTTL is how long a Job the backend created is reported from its
// own copy while the watch has not delivered it. A healthy watch delivers
// in milliseconds; the bound only keeps a Job deleted before the watch ever
// saw it (events merged by a relist) from being reported forever.
const overlayTTL = time.Minute

// errClosed is what every call of a closed Backend returns.
var errClosed = errors.New("kubernetes: backend closed")

// jobWatch is the backend's view of its Jobs: a shared informer's cache of
// every Job carrying LabelJobID in the namespace, plus the backend's own
// writes that the watch has not delivered yet (a created Job, a forgotten
// one), so that Observe right after Submit or Forget reports what was done.
type jobWatch struct {
	informer cache.SharedIndexInformer
	// pods caches the pods of those Jobs, indexed by Job name: the Job
	// controller writes a pod's end into its Job's status up to a second
	// later (it batches pod updates per Job), the pod has it at once.
	pods cache.SharedIndexInformer
	running
	watchState

	created   map[string]createdJob
	forgotten map[string]types.UID
}

// running is a set of informers at work, until halt.
type running struct {
	stop context.CancelFunc
	done chan struct{} // closed when every informer has returned
}

// start runs the informers until halt and returns the context they run
// under.
func (r *running) start(infs ...cache.SharedIndexInformer) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	for _, inf := range infs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	go func() {
		wg.Wait()
		close(r.done)
	}()
	return ctx
}

// halt stops the informers and waits until they have returned.
func (r *running) halt() {
	r.stop()
	<-r.done
}

// watchState is how an informer's List and Watch calls fare: the last
// failure, nil after a success. Its mutex also guards the fields of the
// struct it is embedded in.
type watchState struct {
	mu      sync.Mutex
	lastErr error
}

// err is the last List or Watch failure, nil after a success.
func (s *watchState) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

type createdJob struct {
	job *batchv1.Job
	at  time.Time
}

// watch returns the Job watch, starting it on first use.
func (b *Backend) watch() (*jobWatch, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if b.jobs != nil {
		return b.jobs, nil
	}
	w := &jobWatch{created: map[string]createdJob{}, forgotten: map[string]types.UID{}}
	jobs, pods := b.client.BatchV1().Jobs(b.ns), b.client.CoreV1().Pods(b.ns)
	w.informer = b.informer(&w.watchState, metav1.ListOptions{LabelSelector: LabelJobID}, &batchv1.Job{}, nil,
		func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) { return jobs.List(ctx, o) },
		jobs.Watch)
	_, _ = w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { b.notify() },
		UpdateFunc: func(any, any) { b.notify() },
		DeleteFunc: func(any) { b.notify() },
	})
	// Only running and ended pods: podPhase reads nothing from a pending
	// one, and a pending pod's events (created, bound to a node) are two
	// of the five or so each pod has, each one encoded and sent by the API
	// server and decoded here.
	w.pods = b.informer(&w.watchState, metav1.ListOptions{LabelSelector: LabelJobID, FieldSelector: "status.phase!=" + string(corev1.PodPending)},
		&corev1.Pod{}, cache.Indexers{podsByJob: func(obj any) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok && p.Labels[batchv1.JobNameLabel] != "" {
				return []string{p.Labels[batchv1.JobNameLabel]}, nil
			}
			return nil, nil
		}},
		func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) { return pods.List(ctx, o) },
		pods.Watch)
	_, _ = w.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Only a pod's phase matters to Observe (see podPhase).
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Pod)
			c, ok2 := cur.(*corev1.Pod)
			if !ok1 || !ok2 || o.Status.Phase != c.Status.Phase {
				b.notify()
			}
		},
	})
	ctx := w.start(w.informer, w.pods)
	go func() {
		// One signal when the first Lists are in: everything may have changed.
		if cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced, w.pods.HasSynced) {
			b.notify()
		}
	}()
	b.jobs = w
	return w, nil
}

// informer is a shared informer over the objects of one kind that match
// sel's label and field selectors (in the backend's namespace or, for
// nodes, the cluster), whose every List and Watch outcome is recorded in
// st, so that its readers know when the cache cannot be trusted. Its cache
// keeps objects without their managed fields, which nothing here reads.
func (b *Backend) informer(st *watchState, sel metav1.ListOptions, obj kruntime.Object, indexers cache.Indexers,
	list func(context.Context, metav1.ListOptions) (kruntime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) {
			o.LabelSelector, o.FieldSelector = sel.LabelSelector, sel.FieldSelector
			l, err := list(ctx, o)
			b.record(st, ctx, err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector, o.FieldSelector = sel.LabelSelector, sel.FieldSelector
			wi, err := watchFn(ctx, o)
			b.record(st, ctx, err)
			return wi, err
		},
	}
	if indexers == nil {
		indexers = cache.Indexers{}
	}
	inf := cache.NewSharedIndexInformer(lw, obj, 0, indexers)
	_ = inf.SetTransform(func(o any) (any, error) {
		if m, ok := o.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return o, nil
	})
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, io.EOF) {
			return // a watch too old to resume: the informer lists again at once
		}
		b.record(st, ctx, err)
	})
	return inf
}

// startedWatch returns the Job watch if it runs, nil otherwise.
func (b *Backend) startedWatch() *jobWatch {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	return b.jobs
}

// record keeps the outcome of an informer's last List or Watch call; a
// change between failing and working is a change worth a signal.
func (b *Backend) record(st *watchState, ctx context.Context, err error) {
	if err != nil && ctx.Err() != nil {
		return // the watch is being stopped
	}
	st.mu.Lock()
	changed := (st.lastErr == nil) != (err == nil)
	st.lastErr = err
	st.mu.Unlock()
	if changed {
		b.notify()
	}
}

// notify sends the coalesced change signal.
func (b *Backend) notify() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}

// Changes implements backend.Watcher: a value arrives (at most one waits)
// whenever one of the backend's Jobs is added, changes or goes, and when
// the watch starts or stops working. It starts the watch if Observe has
// not.
func (b *Backend) Changes() <-chan struct{} {
	_, _ = b.watch()
	return b.changes
}

// ready waits for the watch's first List (at most syncWait, or until ctx is
// done or a List fails) and reports whether the cache can be trusted: an
// error wrapping backend.ErrUnavailable when not, or the API server's own
// error when it refuses (e.g. Forbidden).
func (w *jobWatch) ready(ctx context.Context) error {
	deadline := time.NewTimer(syncWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		synced := w.informer.HasSynced() && w.pods.HasSynced()
		err := w.err()
		switch {
		case err != nil && unavailable(err):
			return fmt.Errorf("kubernetes: watch of Jobs: %v: %w", err, backend.ErrUnavailable)
		case err != nil:
			return wrap("watch of Jobs", err)
		case synced:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubernetes: watch of Jobs not synced yet: %v: %w", context.Cause(ctx), backend.ErrUnavailable)
		case <-deadline.C:
			return fmt.Errorf("kubernetes: watch of Jobs not synced after %v: %w", syncWait, backend.ErrUnavailable)
		case <-w.done:
			return errClosed
		case <-tick.C:
		}
	}
}

// podsByJob is the pod cache's index: the name of the Job a pod belongs to.
const podsByJob = "job"

// podsOf returns the cached pods of the named Job.
func (w *jobWatch) podsOf(job string) []*corev1.Pod {
	objs, err := w.pods.GetIndexer().ByIndex(podsByJob, job)
	if err != nil {
		return nil
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*corev1.Pod))
	}
	return out
}

// noteCreated keeps a Job Submit created until the watch delivers it.
func (w *jobWatch) noteCreated(j *batchv1.Job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.created[j.Name] = createdJob{job: j, at: time.Now()}
}

// noteForgotten hides the Job Forget deleted until the watch delivers the
// deletion.
func (w *jobWatch) noteForgotten(namespace, name string) {
	var uid types.UID
	if obj, ok, _ := w.informer.GetStore().GetByKey(namespace + "/" + name); ok {
		uid = obj.(*batchv1.Job).UID
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.created[name]; ok {
		uid = c.job.UID
		delete(w.created, name)
	}
	if uid != "" {
		w.forgotten[name] = uid
	}
}

// jobs returns the backend's Jobs as the cache has them, with its own
// writes not delivered yet applied, and without Jobs being deleted.
func (w *jobWatch) jobs() []*batchv1.Job {
	objs := w.informer.GetStore().List()
	byName := make(map[string]*batchv1.Job, len(objs))
	for _, obj := range objs {
		j := obj.(*batchv1.Job)
		byName[j.Name] = j
	}
	out := make([]*batchv1.Job, 0, len(objs))
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, uid := range w.forgotten {
		if j, ok := byName[name]; !ok || j.UID != uid || j.DeletionTimestamp != nil {
			delete(w.forgotten, name) // the watch has caught up
		}
	}
	for _, j := range objs {
		j := j.(*batchv1.Job)
		if j.DeletionTimestamp != nil || w.forgotten[j.Name] == j.UID {
			continue // forgotten (or deleted by someone else): no longer held
		}
		out = append(out, j)
	}
	for name, c := range w.created {
		if _, ok := byName[name]; ok || time.Since(c.at) > overlayTTL {
			delete(w.created, name)
			continue
		}
		out = append(out, c.job)
	}
	return out
}

// cachedJob returns the named Job from the cache when the cache can be
// trusted, and asks the API server otherwise or when the cache lacks it.
func (b *Backend) cachedJob(ctx context.Context, name string) (*batchv1.Job, error) {
	if w, err := b.watch(); err == nil && w.informer.HasSynced() {
		healthy := w.err() == nil
		if obj, ok, _ := w.informer.GetStore().GetByKey(b.ns + "/" + name); ok && healthy {
			return obj.(*batchv1.Job), nil
		}
	}
	return b.client.BatchV1().Jobs(b.ns).Get(ctx, name, metav1.GetOptions{})
}

// Close stops the watches (io.Closer). Observe and Changes then return
// errClosed and a channel that stays quiet; the calls that do not use the
// watch still work. Close is idempotent and always returns nil.
func (b *Backend) Close() error {
	b.mu.Lock()
	w, nw := b.jobs, b.nodeW
	b.closed = true
	b.mu.Unlock()
	if w != nil {
		w.halt()
	}
	if nw != nil {
		nw.halt()
	}
	return nil
}
