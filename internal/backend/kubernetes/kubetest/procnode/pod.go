package procnode

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// hostIP is every pod's (and the node's) address: processes share the
// host's network.
const hostIP = "127.0.0.1"

// defaultGrace is the grace period of a pod that states none.
const defaultGrace = 30 * time.Second

// proc is one pod bound to the node, from the first sight of its object
// until the object is gone.
type proc struct {
	n         *Node
	uid       types.UID
	ns, name  string
	container string // the one container's name
	logPath   string

	mu         sync.Mutex
	pgid       int  // the process group, once started
	started    bool // a log exists (the process started or failed to)
	stopping   bool // SIGTERM sent, or start refused
	disrupted  bool // stopped by Close: reported with DisruptionTarget
	kill       *time.Timer
	killAt     time.Time
	final      bool // the terminal status is written (or not ours to write)
	deleteWant bool // the object has a deletionTimestamp
	deleted    bool // the final delete was sent
	exited     chan struct{}
}

func (n *Node) podDir(pod *corev1.Pod) string {
	return filepath.Join(n.dir, "pods", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}

func terminal(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

// onPod handles a pod's add or update: a new pod starts (or, if it cannot
// be ours to run, gets a terminal status); a deletion stops it.
func (n *Node) onPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName != n.opts.Name {
		return
	}
	n.mu.Lock()
	p := n.pods[pod.UID]
	if p == nil {
		if n.shutdown {
			n.mu.Unlock()
			return
		}
		p = &proc{n: n, uid: pod.UID, ns: pod.Namespace, name: pod.Name, exited: make(chan struct{})}
		if len(pod.Spec.Containers) > 0 {
			p.container = pod.Spec.Containers[0].Name
			p.logPath = filepath.Join(n.podDir(pod), p.container+".log")
		}
		n.pods[pod.UID] = p
		n.byName[pod.Namespace+"/"+pod.Name] = p
		n.mu.Unlock()
		switch {
		case terminal(pod.Status.Phase):
			close(p.exited)
			p.mu.Lock()
			p.final = true
			p.mu.Unlock()
		case pod.Status.Phase == corev1.PodRunning:
			// Started by an earlier node of this name: the process is gone.
			close(p.exited)
			n.wg.Go(func() {
				p.finish(termination{code: 137, reason: "ContainerStatusUnknown",
					message: "procnode restarted: the container's process is gone"})
			})
		case pod.DeletionTimestamp != nil:
			close(p.exited)
			n.wg.Go(func() {
				p.finish(termination{code: 137, reason: "ContainerStatusUnknown",
					message: "the pod was deleted before its container started"})
			})
		default:
			n.wg.Go(func() { p.run(pod.DeepCopy()) })
		}
	} else {
		n.mu.Unlock()
	}
	if pod.DeletionTimestamp != nil {
		grace := defaultGrace
		if pod.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		}
		p.deleting(grace)
	}
}

// onPodGone handles the end of a pod's object: its process, if any, is
// killed at once.
func (n *Node) onPodGone(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	n.mu.Lock()
	p := n.pods[pod.UID]
	delete(n.pods, pod.UID)
	if key := pod.Namespace + "/" + pod.Name; n.byName[key] == p {
		delete(n.byName, key)
	}
	n.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		p.final, p.deleted = true, true
		p.mu.Unlock()
		p.stop(0)
	}
}

// termination is how a container ended.
type termination struct {
	code            int
	reason, message string
	started         time.Time
}

// run starts the pod's process, reports it Running, waits for it and
// reports how it ended.
func (p *proc) run(pod *corev1.Pod) {
	cmd, gpus, err := p.start(pod)
	if err != nil {
		close(p.exited)
		p.finish(termination{code: 128, reason: "StartError", message: err.Error()})
		return
	}
	started := time.Now()
	p.setRunning(pod, cmd.Process.Pid, started)
	werr := cmd.Wait()
	// Like a container's cgroup, the group dies with its main process.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	p.n.freeGPUs(gpus)
	p.mu.Lock()
	if p.kill != nil {
		p.kill.Stop()
	}
	p.mu.Unlock()
	close(p.exited)
	t := termination{code: cmd.ProcessState.ExitCode(), reason: "Completed", started: started}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.code = 128 + int(ws.Signal())
	} else if werr != nil && t.code < 0 {
		t.code, t.message = 128, werr.Error()
	}
	if t.code != 0 {
		t.reason = "Error"
	}
	p.finish(t)
}

// start checks the pod, resolves its environment, takes its GPUs and
// starts its process; what fails is also written to the container's log.
func (p *proc) start(pod *corev1.Pod) (cmd *exec.Cmd, gpus []int, err error) {
	n := p.n
	dir := n.podDir(pod)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("procnode: %w", err)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("procnode: log: %w", err)
	}
	defer logf.Close()
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	defer func() {
		if err != nil {
			fmt.Fprintf(logf, "procnode: %v\n", err)
			n.freeGPUs(gpus)
		}
	}()
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) != 0 || len(pod.Spec.EphemeralContainers) != 0 {
		return nil, nil, fmt.Errorf("pod has %d containers and %d init containers; procnode runs exactly one container and no init containers",
			len(pod.Spec.Containers), len(pod.Spec.InitContainers))
	}
	c := &pod.Spec.Containers[0]
	if len(c.Command) == 0 {
		return nil, nil, fmt.Errorf("container %s has no command: procnode runs no images, so the command is required", c.Name)
	}
	if gpus, err = n.allocGPUs(pod, c); err != nil {
		return nil, nil, err
	}
	env, err := p.env(pod, c, gpus)
	if err != nil {
		return nil, gpus, err
	}
	lookup := func(k string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if name, v, _ := strings.Cut(env[i], "="); name == k {
				return v, true
			}
		}
		return "", false
	}
	var argv []string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		argv = append(argv, expand(a, lookup))
	}
	work := c.WorkingDir
	if work == "" {
		work = filepath.Join(dir, "work")
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, gpus, fmt.Errorf("workingDir: %w", err)
	}
	cmd = exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = work, env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return nil, gpus, errors.New("the pod was deleted before its container started")
	}
	if err := cmd.Start(); err != nil {
		return nil, gpus, err
	}
	p.pgid = cmd.Process.Pid
	n.log.Info("pod started", "pod", p.ns+"/"+p.name, "pid", p.pgid, "gpus", gpus)
	return cmd, gpus, nil
}

// allocGPUs takes the lowest free GPU slots the container asks for.
func (n *Node) allocGPUs(pod *corev1.Pod, c *corev1.Container) ([]int, error) {
	rn := corev1.ResourceName(n.opts.GPUResource)
	q, ok := c.Resources.Limits[rn]
	if !ok {
		q = c.Resources.Requests[rn]
	}
	want := int(q.Value())
	if want <= 0 {
		return nil, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var got []int
	for i, used := range n.gpus {
		if !used && len(got) < want {
			got = append(got, i)
		}
	}
	if len(got) < want {
		return nil, fmt.Errorf("%s: requested %d, %d of %d free", rn, want, len(got), len(n.gpus))
	}
	for _, i := range got {
		n.gpus[i] = true
	}
	return got, nil
}

func (n *Node) freeGPUs(gpus []int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, i := range gpus {
		n.gpus[i] = false
	}
}

// deleting stops the process of a pod being deleted within grace; once the
// pod's status is terminal the object is deleted for good.
func (p *proc) deleting(grace time.Duration) {
	p.mu.Lock()
	p.deleteWant = true
	p.mu.Unlock()
	p.stop(grace)
	p.maybeDelete()
}

// stop sends SIGTERM to the process group and SIGKILL after grace (at
// once for 0). A process not started yet is never started.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopping = true
	if p.pgid == 0 {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	pgid := p.pgid
	if grace <= 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return
	}
	at := time.Now().Add(grace)
	if p.kill == nil {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	} else if at.Before(p.killAt) {
		p.kill.Stop()
	} else {
		return
	}
	p.killAt = at
	p.kill = time.AfterFunc(grace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
}

// maybeDelete deletes the pod's object (grace 0) once it is being deleted
// and its status is terminal, as a kubelet confirms a deletion.
func (p *proc) maybeDelete() {
	p.mu.Lock()
	do := p.deleteWant && p.final && !p.deleted
	p.deleted = p.deleted || do
	p.mu.Unlock()
	if !do {
		return
	}
	err := p.n.persist(func() error {
		err := p.n.client.CoreV1().Pods(p.ns).Delete(p.n.api, p.name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr(int64(0)),
			Preconditions:      &metav1.Preconditions{UID: &p.uid},
		})
		if apierrors.IsConflict(err) {
			return nil // another pod of that name: ours is gone
		}
		return err
	})
	if err != nil {
		p.n.log.Warn("pod delete failed", "pod", p.ns+"/"+p.name, "err", err)
	}
}

// persist calls f until it succeeds, finds nothing (NotFound) or fails
// for good, as a kubelet's status manager does: a status or delete lost
// while the API server is away would leave a pod Running, or terminating,
// forever. It gives up when Close ends the API calls.
func (n *Node) persist(f func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !transient(err) {
			return err
		}
		select {
		case <-n.api.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// updateStatus applies f to the pod's current status and writes it,
// retrying until it is written (persist); a pod that is gone (or replaced
// by one of the same name) is left alone.
func (p *proc) updateStatus(f func(*corev1.Pod)) error {
	pods := p.n.client.CoreV1().Pods(p.ns)
	err := p.n.persist(func() error {
		return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			pod, err := pods.Get(p.n.api, p.name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if pod.UID != p.uid {
				return apierrors.NewNotFound(corev1.Resource("pods"), p.name)
			}
			f(pod)
			_, err = pods.UpdateStatus(p.n.api, pod, metav1.UpdateOptions{})
			return err
		})
	})
	if err != nil {
		p.n.log.Warn("pod status update failed", "pod", p.ns+"/"+p.name, "err", err)
	}
	return err
}

// transient reports whether err may go away on its own: no answer, a
// timeout, throttling or a server error.
func transient(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return true // the API server did not answer
	}
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err)
}

func setCondition(pod *corev1.Pod, t corev1.PodConditionType, s corev1.ConditionStatus, reason, msg string) {
	now := metav1.Now()
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type == t {
			if c.Status != s {
				c.LastTransitionTime = now
			}
			c.Status, c.Reason, c.Message = s, reason, msg
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions,
		corev1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg, LastTransitionTime: now})
}

func setIPs(pod *corev1.Pod) {
	pod.Status.HostIP, pod.Status.PodIP = hostIP, hostIP
	pod.Status.HostIPs = []corev1.HostIP{{IP: hostIP}}
	pod.Status.PodIPs = []corev1.PodIP{{IP: hostIP}}
}

func (p *proc) setRunning(spec *corev1.Pod, pid int, at time.Time) {
	started := metav1.NewTime(at)
	_ = p.updateStatus(func(pod *corev1.Pod) {
		if terminal(pod.Status.Phase) {
			return
		}
		pod.Status.Phase = corev1.PodRunning
		setIPs(pod)
		if pod.Status.StartTime == nil {
			pod.Status.StartTime = &started
		}
		for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized,
			corev1.ContainersReady, corev1.PodReady} {
			setCondition(pod, t, corev1.ConditionTrue, "", "")
		}
		c := spec.Spec.Containers[0]
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: "procnode://" + strconv.Itoa(pid),
			Ready: true, Started: ptr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}}
	})
}

// finish writes the pod's terminal status: Succeeded for exit code 0,
// Failed otherwise; DisruptionTarget when Close stopped it.
func (p *proc) finish(t termination) {
	p.mu.Lock()
	disrupted := p.disrupted
	p.mu.Unlock()
	now := metav1.Now()
	started := now
	if !t.started.IsZero() {
		started = metav1.NewTime(t.started)
	}
	_ = p.updateStatus(func(pod *corev1.Pod) {
		if terminal(pod.Status.Phase) {
			return
		}
		pod.Status.Phase = corev1.PodFailed
		if t.code == 0 && !disrupted {
			pod.Status.Phase = corev1.PodSucceeded
		}
		setIPs(pod)
		if pod.Status.StartTime == nil {
			pod.Status.StartTime = &started
		}
		for _, c := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.ContainersReady, corev1.PodReady} {
			setCondition(pod, c, corev1.ConditionFalse, "PodCompleted", "")
		}
		setCondition(pod, corev1.PodInitialized, corev1.ConditionTrue, "", "")
		if disrupted {
			setCondition(pod, corev1.DisruptionTarget, corev1.ConditionTrue, "TerminationByKubelet",
				"procnode: the node is shutting down")
			pod.Status.Reason, pod.Status.Message = "Terminated", "Pod was terminated in response to imminent node shutdown."
		} else if t.reason == "StartError" || t.reason == "ContainerStatusUnknown" {
			pod.Status.Message = "procnode: " + t.message
		}
		name, image := p.container, ""
		if len(pod.Spec.Containers) > 0 {
			name, image = pod.Spec.Containers[0].Name, pod.Spec.Containers[0].Image
		}
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: name, Image: image, ImageID: image, Started: ptr(false),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: int32(t.code), Reason: t.reason, Message: t.message, StartedAt: started, FinishedAt: now,
			}},
		}}
	})
	p.mu.Lock()
	p.final = true
	p.mu.Unlock()
	p.maybeDelete()
	p.n.log.Info("pod ended", "pod", p.ns+"/"+p.name, "exit", t.code, "reason", t.reason)
}
