package spec

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"gpubroker/internal/model"
)

// The slurm: and kubernetes: blocks of a cluster, which the vocabulary
// types (model.SlurmTarget, model.KubernetesTarget). Any other backend's
// block is kept untyped in model.Cluster.Target and checked by its driver
// (see FleetOptions.Backends).

var slurmKeys = []string{"conf", "partition", "gres_type", "dir", "account", "qos", "team_accounts", "team_qos"}

// slurmTarget reads a cluster's slurm block: how to reach its controller.
func (p *parser) slurmTarget(n *yaml.Node, path string) *model.SlurmTarget {
	t := &model.SlurmTarget{}
	p.see(path, n)
	for _, f := range p.fields(n, path, "a slurm mapping (conf, partition, gres_type, dir)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "conf":
			t.Conf = p.absPath(f.value, fp, "the slurm.conf the Slurm commands read, e.g. /etc/slurm/slurm.conf")
		case "partition":
			t.Partition, _ = p.str(f.value, fp)
			if strings.ContainsAny(t.Partition, " ,\t\n") {
				p.errorf(f.value, fp, "%q is not one partition name; give one partition, e.g. gpu", t.Partition)
			}
		case "gres_type":
			t.GRESType, _ = p.str(f.value, fp)
			if strings.ContainsAny(t.GRESType, " :,\t\n") {
				p.errorf(f.value, fp, "%q is not a GRES type; give the type of gpu GRES as in gres.conf, e.g. h100", t.GRESType)
			}
		case "dir":
			t.Dir = p.absPath(f.value, fp, "a directory the broker and every compute node see at the same path, e.g. /shared/gpubroker")
		case "account":
			t.Account = p.slurmWord(f.value, fp, "account", "research")
		case "qos":
			t.QOS = p.slurmWord(f.value, fp, "QOS", "normal")
		case "team_accounts", "team_qos":
			what, eg := "account", "research"
			if f.key == "team_qos" {
				what, eg = "QOS", "high"
			}
			by := map[string]string{}
			for _, tf := range p.fields(f.value, fp, "a mapping of team: Slurm "+what) {
				tp := join(fp, tf.key)
				p.see(tp, tf.keyN)
				by[tf.key] = p.slurmWord(tf.value, tp, what, eg)
			}
			if f.key == "team_accounts" {
				t.TeamAccounts = by
			} else {
				t.TeamQOS = by
			}
		default:
			p.unknown(f, path, slurmKeys)
		}
	}
	return t
}

// slurmWord reads an account or QOS name: one word, as sbatch takes it.
func (p *parser) slurmWord(n *yaml.Node, path, what, eg string) string {
	s, _ := p.str(n, path)
	if strings.ContainsAny(s, " ,\t\n=") {
		p.errorf(n, path, "%q is not one Slurm %s; give one name, e.g. %s", s, what, eg)
		return ""
	}
	return s
}

var kubernetesKeys = []string{"kubeconfig", "context", "namespace", "image", "products", "compression"}

// kubernetesTarget reads a cluster's kubernetes block: which API server,
// which namespace, and the GPU product label of each pool.
func (p *parser) kubernetesTarget(n *yaml.Node, path string) *model.KubernetesTarget {
	t := &model.KubernetesTarget{}
	p.see(path, n)
	for _, f := range p.fields(n, path, "a kubernetes mapping (kubeconfig, context, namespace, image, products, compression)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "kubeconfig":
			t.Kubeconfig = p.absPath(f.value, fp, "the kubeconfig file, e.g. /etc/gpubroker/azure.kubeconfig")
		case "context":
			t.Context, _ = p.str(f.value, fp)
		case "namespace":
			t.Namespace, _ = p.str(f.value, fp)
		case "image":
			t.Image, _ = p.str(f.value, fp)
		case "compression":
			t.Compression, _ = p.boolean(f.value, fp)
		case "products":
			t.Products = map[string]string{}
			for _, pr := range p.fields(f.value, fp, "a mapping of pool name: nvidia.com/gpu.product value") {
				pp := join(fp, pr.key)
				p.see(pp, pr.keyN)
				t.Products[pr.key], _ = p.str(pr.value, pp)
			}
		default:
			p.unknown(f, path, kubernetesKeys)
		}
	}
	return t
}

// absPath reads a path on the broker's machine; it must be absolute, as
// the server's working directory is nobody's business.
func (p *parser) absPath(n *yaml.Node, path, hint string) string {
	s, ok := p.str(n, path)
	if !ok {
		return ""
	}
	if s == "" || !strings.HasPrefix(s, "/") {
		p.errorf(n, path, "%q is not an absolute path; give %s", s, hint)
		return ""
	}
	return s
}
