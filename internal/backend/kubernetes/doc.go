// Package kubernetes is the backend that runs attempts on a Kubernetes
// cluster through the API server (client-go typed clients).
//
// # One attempt, one Indexed Job
//
// An attempt becomes one batch/v1 Job named backend.Name(job, attempt), with
// completionMode Indexed and completions = parallelism = the gang's node
// count: pod i is node rank i (its completion index, passed to the job
// through the downward API). An Indexed Job is chosen over a JobSet because
// it is built into every cluster (JobSet is a CRD plus a controller that the
// cluster would have to run), and one replicated pod template is all a gang
// of identical nodes needs. A gang of more than one node also gets a
// headless Service of the same name, owned by the Job, so that rank i is
// reachable as NAME-i.NAME; those names are GPUBROKER_NODE_IPS.
//
// The Job never retries inside Kubernetes (backoffLimit 0): a failed
// attempt is the control plane's to retry, as a new attempt. Its pod failure
// policy fails the Job at once when a pod is disrupted (evicted, preempted,
// its node lost: reported PhaseLost) or when the container exits non-zero,
// and the Job's Failed condition then carries the exit code, so Observe
// reads every failure from the Job alone. Starts and successes it reads
// from the pods as well: the Job controller folds pod updates into the Job
// up to a second late (it batches them per Job), and a broker that frees
// capacity a second late loses a second on every wave of a deep queue.
// Every completion index with a Succeeded pod is a success the Job
// controller cannot overturn (backoffLimit 0: no index succeeds after a
// failure), so the attempt is reported Succeeded then.
//
// Pods request nvidia.com/gpu (Options.GPUResource) per node as
// Node.GPUs says, and select the GPU model through the
// nvidia.com/gpu.product node label: Options.PoolProducts maps a pool name
// to that label's value; a pool name that is not in the map is taken to be
// the value itself, as DiscoverPools names the pools it finds.
//
// # Observe: a watch, not a List per call
//
// Observe serves from the cache of a shared informer (client-go's
// tools/cache) over the backend's Jobs and their pods (label LabelJobID,
// the backend's namespace; the broker's role needs list and watch on
// both), started by the first Observe or Changes: once synced, an
// Observe makes no request at all, however many attempts and however
// often it is called. Until the first List is in, and whenever the
// informer's last List or Watch failed (the API server is down or cut
// off), Observe returns an error wrapping backend.ErrUnavailable instead
// of a cache that may be stale; a new Backend (a restarted broker) so
// never reports an empty cluster it has not listed. What this Backend
// itself just created or forgot is reported so at once, even before the
// watch delivers it. Changes (backend.Watcher) receives a coalesced signal
// on every add, update or delete of those Jobs and when the watch starts
// or stops working, so the control plane reconciles at once; Close stops
// the informers (the server closes backends that are io.Closers).
//
// Health asks /readyz and counts the Ready nodes; the nodes come from a
// third informer (cluster-wide; the role needs list and watch on nodes),
// started by the first Health or discovery call, so that a health check
// every round does not make the API server serialise every node each
// time (a List of 116 nodes per round was most of a round's time under
// load). Until that watch has synced, or while it fails (e.g. a role
// that may list nodes but not watch them), each call lists the nodes.
//
// # Submit, Cancel, Forget
//
// Submit creates the Job and treats AlreadyExists as success, so a broker
// that died between "submit" and "record" never starts an attempt twice.
// Cancel does not delete the Job: the contract wants a cancelled attempt
// to stay observable (ended) until Forget. It marks the Job cancelled and
// sets its activeDeadlineSeconds to 1, so that the Job controller fails the
// Job (reported as Failed, "cancelled"), and deletes the Job's pods, so
// that their kubelets stop them at once rather than when a busy Job
// controller gets to it. Forget deletes the Job with foreground
// propagation, which takes its pods and Service with it.
//
// # What it never does
//
// It never creates pods itself, never binds pods to nodes, never polls one
// Job at a time, and keeps no state outside the cluster but a cache of it:
// a new Backend finds every attempt of an earlier broker by its labels.
//
// # Tests
//
// The tests run against a real API server, controller-manager and
// scheduler (scripts/engines/k8s-up.sh). Its kwok nodes run nothing; the
// conformance suite (backendtest) runs on two procnode nodes instead
// (package kubetest/procnode: pods as local processes, logs through
// pods/log),
// which a taint and a product label of their own keep apart from the kwok
// nodes (Options.Tolerations, Options.NodeSelector).
package kubernetes
