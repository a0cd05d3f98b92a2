package procnode

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// env is the process's environment, "K=V" in order (a later K wins): PATH
// and HOME of this process, HOSTNAME, the GPU slots, then the container's
// env, each value resolved and $(VAR)-expanded against those before it.
func (p *proc) env(pod *corev1.Pod, c *corev1.Container, gpus []int) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %s: envFrom is not supported by procnode", c.Name)
	}
	vars := map[string]string{}
	var out []string
	add := func(k, v string) {
		vars[k] = v
		out = append(out, k+"="+v)
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	add("PATH", path)
	if home := os.Getenv("HOME"); home != "" {
		add("HOME", home)
	}
	host := pod.Name
	if pod.Spec.Hostname != "" {
		host = pod.Spec.Hostname
	}
	add("HOSTNAME", host)
	if gpus != nil {
		slots := make([]string, len(gpus))
		for i, g := range gpus {
			slots[i] = strconv.Itoa(g)
		}
		add("CUDA_VISIBLE_DEVICES", strings.Join(slots, ","))
		add("NVIDIA_VISIBLE_DEVICES", strings.Join(slots, ","))
	}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			add(e.Name, expand(e.Value, lookup))
			continue
		}
		v, err := p.valueFrom(pod, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("container %s: env %s: %w", c.Name, e.Name, err)
		}
		add(e.Name, v)
	}
	return out, nil
}

// valueFrom resolves an env source as the kubelet does.
func (p *proc) valueFrom(pod *corev1.Pod, src *corev1.EnvVarSource) (string, error) {
	switch {
	case src.FieldRef != nil:
		return fieldRef(pod, src.FieldRef.FieldPath)
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		cm, err := p.n.client.CoreV1().ConfigMaps(pod.Namespace).Get(p.n.api, r.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && r.Optional != nil && *r.Optional {
				return "", nil
			}
			return "", err
		}
		v, ok := cm.Data[r.Key]
		if !ok && (r.Optional == nil || !*r.Optional) {
			return "", fmt.Errorf("configmap %s has no key %q", r.Name, r.Key)
		}
		return v, nil
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		s, err := p.n.client.CoreV1().Secrets(pod.Namespace).Get(p.n.api, r.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && r.Optional != nil && *r.Optional {
				return "", nil
			}
			return "", err
		}
		v, ok := s.Data[r.Key]
		if !ok && (r.Optional == nil || !*r.Optional) {
			return "", fmt.Errorf("secret %s has no key %q", r.Name, r.Key)
		}
		return string(v), nil
	}
	return "", fmt.Errorf("only fieldRef, configMapKeyRef and secretKeyRef are supported by procnode")
}

// fieldRef is the downward API's value of a pod field.
func fieldRef(pod *corev1.Pod, path string) (string, error) {
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs":
		return hostIP, nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported", path)
}

// subscript parses PREFIX['KEY'].
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// formatMap is the downward API's rendering of labels or annotations:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%s", k, strconv.Quote(m[k]))
	}
	return b.String()
}

// expand replaces $(VAR) with VAR's value when lookup knows VAR, and $$
// with $, leaving everything else as written: the expansion Kubernetes
// applies to a container's command, args and env values.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 { // incomplete: "$(" as written, the rest scanned on
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
