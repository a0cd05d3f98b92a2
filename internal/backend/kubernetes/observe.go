package kubernetes

import (
	"context"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"gpubroker/internal/backend"
)

// Observe reports the backend's Jobs (every Job carrying LabelJobID in the
// namespace) from the cache of a watch, reading each attempt's phase from
// its Job's conditions alone; it makes no request of its own once the watch
// has synced. The first call starts the watch and waits for its first List
// (at most syncWait). Until that List is in, and whenever the watch's last
// List or Watch failed (the API server does not answer), Observe returns an
// error wrapping backend.ErrUnavailable rather than what may be stale.
// Jobs being deleted are not reported; a Job this Backend just created or
// forgot is reported as such even before the watch delivers it.
func (b *Backend) Observe(ctx context.Context) ([]backend.Status, error) {
	w, err := b.watch()
	if err != nil {
		return nil, err
	}
	if err := w.ready(ctx); err != nil {
		return nil, err
	}
	jobs := w.jobs()
	out := make([]backend.Status, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, podPhase(status(j), j, w.podsOf(j.Name)))
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Name < out[k].Name })
	return out, nil
}

// podPhase refines a Job's status with its pods' phases, which reach the
// watch before the Job controller writes them into the Job (it batches pod
// updates per Job, up to a second): Pending becomes Running as soon as a
// pod runs, and a Job that is not final yet has Succeeded when a pod of
// every completion index has (backoffLimit is 0, so no index ever
// succeeds after a failure: the Job controller cannot conclude
// otherwise). Failures still come from the Job alone, which names the
// cause (exit code, disruption, cancel).
func podPhase(st backend.Status, j *batchv1.Job, pods []*corev1.Pod) backend.Status {
	if st.Phase != backend.PhasePending && st.Phase != backend.PhaseRunning {
		return st
	}
	want := 1
	if j.Spec.Completions != nil {
		want = int(*j.Spec.Completions)
	}
	done := map[string]bool{}
	var ended time.Time
	for _, p := range pods {
		if p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodRunning:
			if st.Phase == backend.PhasePending {
				st.Phase = backend.PhaseRunning
				if p.Status.StartTime != nil {
					st.Started = p.Status.StartTime.Time
				}
			}
		case corev1.PodSucceeded:
			done[p.Annotations[completionIndex]] = true
			for _, c := range p.Status.ContainerStatuses {
				if t := c.State.Terminated; t != nil && t.FinishedAt.After(ended) {
					ended = t.FinishedAt.Time
				}
			}
			if st.Started.IsZero() && p.Status.StartTime != nil {
				st.Started = p.Status.StartTime.Time
			}
		}
	}
	if len(done) >= want && !done[""] {
		st.Phase = backend.PhaseSucceeded
		st.ExitCode = ptr(0)
		st.Ended = ended
		if st.Ended.Before(st.Started) {
			st.Ended = st.Started
		}
	}
	return st
}

// exitCodeRE finds the exit code in the message the Job controller writes
// when a pod failure policy rule on exit codes fails the Job: "Container
// main for pod NS/POD failed with exit code 3 matching FailJob rule at
// index 1".
var exitCodeRE = regexp.MustCompile(`failed with exit code (\d+) matching`)

// status maps a Job to an attempt's status:
//   - condition Complete: Succeeded, exit code 0;
//   - condition Failed: Lost when a pod was disrupted (evicted, preempted,
//     node lost: the pod failure policy's DisruptionTarget rule); Failed
//     otherwise, with the exit code from the message when a container's
//     exit failed it, and "cancelled" when Cancel stopped it;
//   - active or finished pods but no final condition: Running;
//   - otherwise Pending.
func status(j *batchv1.Job) backend.Status {
	st := backend.Status{Name: j.Name, Phase: backend.PhasePending}
	if j.Status.StartTime != nil && (j.Status.Ready != nil && *j.Status.Ready > 0 || j.Status.Succeeded > 0 || j.Status.Failed > 0) {
		st.Started = j.Status.StartTime.Time
	}
	if j.Status.Active > 0 && j.Status.Ready != nil && *j.Status.Ready > 0 || j.Status.Succeeded > 0 || j.Status.Failed > 0 {
		st.Phase = backend.PhaseRunning
	}
	cancelled := j.Annotations[AnnotationCancelled] == "true"
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			st.Phase = backend.PhaseSucceeded
			st.ExitCode = ptr(0)
			st.Ended = c.LastTransitionTime.Time
			if j.Status.CompletionTime != nil {
				st.Ended = j.Status.CompletionTime.Time
			}
		case batchv1.JobFailed:
			st.Phase = backend.PhaseFailed
			st.Ended = c.LastTransitionTime.Time
			st.Message = c.Reason
			if c.Message != "" {
				st.Message += ": " + c.Message
			}
			switch {
			case cancelled:
				st.Message = "cancelled"
			case c.Reason == batchv1.JobReasonPodFailurePolicy && strings.Contains(c.Message, string(corev1.DisruptionTarget)):
				st.Phase = backend.PhaseLost
			default:
				if m := exitCodeRE.FindStringSubmatch(c.Message); m != nil {
					if code, err := strconv.Atoi(m[1]); err == nil {
						st.ExitCode = &code
					}
				}
			}
		}
	}
	if st.Started.IsZero() && !st.Ended.IsZero() && j.Status.StartTime != nil {
		st.Started = j.Status.StartTime.Time
	}
	if !st.Started.IsZero() && st.Ended.Before(st.Started) && !st.Ended.IsZero() {
		st.Started = st.Ended
	}
	return st
}
