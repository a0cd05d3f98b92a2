package kubernetes

import (
	"bufio"
	"context"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gpubroker/internal/backend"
)

// logPoll is how often a following reader looks again for a pod that has
// not started or a Job that has not ended.
const logPoll = 250 * time.Millisecond

// Logs streams the container output of the attempt's pods, each line
// prefixed "[rank R] " for a gang. Pods whose logs the cluster cannot give
// (not started yet, deleted, or on a node without a kubelet, as with kwok)
// contribute nothing: Logs returns what exists. With follow it streams each
// rank until its container ends (or the Job ends without it), then ends
// once the Job has ended as Observe sees it, or when ctx is done.
// ErrNotFound when there is no such Job.
func (b *Backend) Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error) {
	job, err := b.client.BatchV1().Jobs(b.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, wrap("logs "+name, err)
	}
	ranks := 1
	if job.Spec.Completions != nil {
		ranks = int(*job.Spec.Completions)
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	var mu sync.Mutex // whole lines only
	var wg sync.WaitGroup
	for r := range ranks {
		prefix := ""
		if ranks > 1 {
			prefix = "[rank " + strconv.Itoa(r) + "] "
		}
		wg.Go(func() {
			w := func(line string) error {
				mu.Lock()
				defer mu.Unlock()
				_, err := io.WriteString(pw, prefix+line)
				return err
			}
			if follow {
				b.followRank(ctx, name, r, w)
			} else {
				b.copyRank(ctx, name, r, false, w)
			}
		})
	}
	go func() {
		wg.Wait()
		if follow {
			// A container's stream ends a moment before its Job does; the
			// attempt has not ended until Observe can say so.
			b.waitFinished(ctx, name)
		}
		cancel()
		pw.Close()
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

// TailLogs implements backend.LogTailer: each rank's last lines, which
// the kubelet reads from the end of the container's log (tailLines); of
// what it sends no more than the last maxBytes are kept. Ranks whose logs
// the cluster cannot give contribute nothing, as with Logs.
func (b *Backend) TailLogs(ctx context.Context, name string, lines int, maxBytes int64) ([]byte, error) {
	job, err := b.client.BatchV1().Jobs(b.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, wrap("logs "+name, err)
	}
	ranks := 1
	if job.Spec.Completions != nil {
		ranks = int(*job.Spec.Completions)
	}
	var out []byte
	for r := range ranks {
		pod, err := b.rankPod(ctx, name, r)
		if err != nil || pod == nil || pod.Status.Phase == corev1.PodPending {
			continue
		}
		// One line more than asked: how the kubelet counts a last line
		// without a newline is its own; TailReader counts as TailLines.
		n := int64(lines) + 1
		rc, err := b.client.CoreV1().Pods(b.ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: container, TailLines: &n}).Stream(ctx)
		if err != nil {
			continue
		}
		tail, err := backend.TailReader(rc, lines, maxBytes)
		rc.Close()
		if err != nil {
			continue
		}
		prefix := ""
		if ranks > 1 {
			prefix = "[rank " + strconv.Itoa(r) + "] "
		}
		out = backend.AppendTail(out, tail, prefix)
	}
	return out, nil
}

type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *logReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}

// rankPod returns the newest pod of the Job with completion index rank.
func (b *Backend) rankPod(ctx context.Context, name string, rank int) (*corev1.Pod, error) {
	pods, err := b.client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{
		LabelSelector: batchv1.JobNameLabel + "=" + name + "," + batchv1.JobCompletionIndexAnnotation + "=" + strconv.Itoa(rank),
	})
	if err != nil || len(pods.Items) == 0 {
		return nil, err
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.After(pods.Items[j].CreationTimestamp.Time)
	})
	return &pods.Items[0], nil
}

// copyRank copies one rank's log to w; it reports whether a stream was
// opened (and so read to its end).
func (b *Backend) copyRank(ctx context.Context, name string, rank int, follow bool, w func(string) error) bool {
	pod, err := b.rankPod(ctx, name, rank)
	if err != nil || pod == nil || pod.Status.Phase == corev1.PodPending {
		return false
	}
	rc, err := b.client.CoreV1().Pods(b.ns).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: container, Follow: follow,
	}).Stream(ctx)
	if err != nil {
		return false
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if line[len(line)-1] != '\n' {
				line += "\n"
			}
			if w(line) != nil {
				return true
			}
		}
		if err != nil {
			return true
		}
	}
}

// followRank waits for the rank's pod to start, then streams its log to
// the end; it gives up when the Job has ended without a stream to follow.
func (b *Backend) followRank(ctx context.Context, name string, rank int, w func(string) error) {
	for ctx.Err() == nil {
		if b.copyRank(ctx, name, rank, true, w) {
			return
		}
		job, err := b.cachedJob(ctx, name)
		if err != nil || finished(job) {
			if err == nil {
				// The pod may have ended between the two looks.
				b.copyRank(ctx, name, rank, false, w)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(logPoll):
		}
	}
}

// waitFinished returns when the Job has finished (or is gone or being
// deleted) as Observe sees it, or when ctx is done.
func (b *Backend) waitFinished(ctx context.Context, name string) {
	for ctx.Err() == nil {
		job, err := b.cachedJob(ctx, name)
		if err != nil || finished(job) || job.DeletionTimestamp != nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(logPoll / 5):
		}
	}
}

func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
