// Package procnode is a Kubernetes node whose pods run as processes on
// this host: a minimal kubelet, in the spirit of virtual-kubelet, for tests
// and local development against a control plane without kubelets (such as
// the one scripts/engines/k8s-up.sh starts, whose kwok nodes run nothing).
//
// Start registers a Node through the API server (capacity, allocatable,
// labels, taints, a Ready condition, InternalIP 127.0.0.1 and the port of
// its own HTTPS log server), keeps its Lease in kube-node-lease renewed,
// and watches the pods bound to it (spec.nodeName). For each new pod it
// runs the one container's command and args as a process group in the
// container's workingDir (created when missing; a directory of the pod's
// own under Options.Dir when empty), with the container's env resolved as
// the kubelet resolves it (values with $(VAR) expansion, fieldRef to the
// pod's metadata, annotations, labels, node name and IPs, configMapKeyRef,
// secretKeyRef), and reports the pod Running, then Succeeded or Failed with
// the container's exit code (128+signal when killed), as a kubelet does.
// A pod being deleted (deletionTimestamp set: the Job controller's
// activeDeadlineSeconds, a garbage collector's foreground delete) gets
// SIGTERM, SIGKILL after its grace period, a terminal status, then its
// final delete with grace 0. GPUs (Options.GPUResource) are handed out as
// slot numbers 0..GPUs-1, the way a device plugin would, in
// CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES.
//
// Output (stdout and stderr together) goes to a file per container under
// Options.Dir, served at /containerLogs/{namespace}/{pod}/{container}
// (with follow) by the node's HTTPS server on 127.0.0.1, so that `kubectl
// logs` and client-go's pods/log go through the API server as they do with
// a kubelet. kube-apiserver started without --kubelet-certificate-authority
// does not verify a kubelet's serving certificate (pkg/kubelet/client:
// no CA means an insecure transport), so the server's certificate is a
// self-signed one made at Start.
//
// Close is a graceful node shutdown: every running pod is stopped and
// reported Failed with condition DisruptionTarget (reason
// TerminationByKubelet), as the kubelet's graceful node shutdown reports
// it, and the Node and its Lease are deleted.
//
// # Use
//
//	node, err := procnode.Start(ctx, procnode.Options{
//		RESTConfig: cfg,           // or Kubeconfig: path
//		Name:       "dev-node-1",  // the Node's name
//		GPUs:       8,             // nvidia.com/gpu capacity
//		Product:    "DEV-H100",    // nvidia.com/gpu.product label
//		Taints: []corev1.Taint{{Key: procnode.TaintKey, Value: "true",
//			Effect: corev1.TaintEffectNoSchedule}}, // only pods that tolerate it
//		Dir: dir, // logs and default work dirs, kept after Close
//	})
//	if err != nil { ... }
//	defer node.Close()
//
// Pods that select DEV-H100 and tolerate the taint (the Kubernetes
// backend's Options.PoolProducts or NodeSelector, and Options.Tolerations)
// are scheduled onto the node by the cluster's scheduler and run here.
//
// # What it never does
//
// It pulls no image and starts no container: the image is ignored and the
// process runs as this process's user, with this host's filesystem and
// network, and with PATH and HOME of this process plus the pod's env. It
// runs only pods of exactly one container and no init containers, and
// fails any other pod at once with a message saying so. It restarts
// nothing (restartPolicy is taken as Never), runs no probes, and does not
// adopt processes of an earlier Node of the same name: a pod it finds
// Running at Start is reported Failed (its process is gone).
//
// It is test support (below kubetest), never production code: tests
// import it, and the layering test (internal/arch) fails any production
// package, the Kubernetes driver and cmd/ included, that does.
package procnode
