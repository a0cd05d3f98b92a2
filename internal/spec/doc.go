// Package spec turns user YAML into gpubroker's model types: SkyPilot task
// files into workloads, and fleet files into a model.Fleet. Every error and
// warning names the file, the line, the field path and, for errors, the fix:
//
//	task.yaml:7: resources.accelerators: unknown GPU "H1000"; did you mean "H100"?
//
// spec reads bytes handed to it; it never opens files, calls the network or
// keeps state between calls. GPU names go through package catalog, so
// aliases ("h100-80gb", "NVIDIA-H100-80GB-HBM3") come out canonical.
//
// # Errors and warnings
//
// A parse that fails returns Errors: every problem found, in file order, each
// an *Error with File, Line, Path and Msg. A wrong value is an error. A field
// gpubroker accepts but does not act on yet (image_id, disk_tier, autoscaling
// settings, ...) and an unknown key ("did you mean ...?") are Warnings, never
// silently dropped. Model validation (Workload.Validate, Fleet.Validate) runs
// last and its field paths are mapped back onto lines.
//
// # Task files (SkyPilot subset)
//
// ParseTask reads SkyPilot task YAML. One document is one workload; several
// documents are a pipeline, and a leading document holding only name (and a
// job group's execution / primary_tasks) names the pipeline. Understood:
//
//	name, num_nodes (default 1), setup, run, workdir (path, or {url, ref}),
//	envs (numbers and bools kept as written; null = set at launch, warned),
//	secrets (kept as envs, with a warning that they are not redacted),
//	file_mounts (remote path -> source; {source: ...} dicts keep the source;
//	  buckets without a source are warned and skipped),
//	job_recovery (FAILOVER | EAGER_NEXT_REGION | {strategy,
//	  max_restarts_on_errors, recover_on_exit_codes}; default failover),
//	  also inside resources,
//	service (readiness_probe path or {path}, replicas, replica_policy
//	  {min_replicas, max_replicas}, ports) -> Kind service with ServiceSpec,
//	resources:
//	  accelerators  "H100:8"; a list [H100:8, A100-80GB:8] = ordered (try in
//	                order); a set {H100:8, A100:8} = any of them (cheapest
//	                wins). TPUs, Inferentia, ... are errors, except inside a
//	                list or set that still has a GPU, where they are dropped
//	                with a warning. Fractional GPUs are errors.
//	  infra         aws, aws/us-east-1, aws/us-east-1/us-east-1a, */us-east-1,
//	                k8s, k8s/context
//	  cloud, region, zone (instead of infra; giving both is an error)
//	  use_spot, cpus and memory ("8", "8+" = at least, memory may carry
//	  GB/TB), instance_type (a cloud's GPU instance type with no
//	  accelerators is looked up in the built-in catalog), disk_size,
//	  max_hourly_cost, ports,
//	  any_of / ordered: lists of resource mappings whose unset fields default
//	  from the outer resources (candidates, the old name of any_of, too).
//	x-gpubroker: gpubroker's own fields: team, priority (int), deadline
//	  (2026-03-01 or RFC 3339), checkpoint_dir, checkpoint_interval and
//	  duration (Go durations plus d and w: 30m, 2h, 1d), data_region,
//	  data_gb, allow_spot (let the broker pick spot when it is cheaper).
//
// Every combination of option (any_of / ordered item, or the outer
// resources) and accelerator choice becomes one model.Resources. Order is
// model.Ordered for accelerator lists and ordered:, model.AnyOf otherwise.
//
// Cluster managers are not providers: cloud/infra kubernetes, k8s, slurm or
// ssh leave Resources.Provider empty (any cluster of the fleet may run the
// work) and say so in a warning; a k8s context is not used for placement yet.
//
// gpubroker places GPU work, so a task with no accelerators anywhere is an
// error: "resources.accelerators: no GPU requested; gpubroker places GPU
// work: add e.g. accelerators: H100:1".
//
// # Fleet files
//
// ParseFleet reads gpubroker's own fleet schema. Every section is optional
// except clusters; provider names are lower-cased; GPU names (pools,
// capacity contracts, quotas, price ceilings) go through catalog.ParseGPU.
//
// ParseFleetWith reads it against the backends a build drives
// (FleetOptions.Backends, from the drivers' backend.Driver): a backend:
// value none of them names (cloud among them) is an error at the field,
// and a cluster may hold a block named after its backend, kept as
// model.Cluster.Target and checked by that driver's Check, whose errors
// point at the block's lines. The slurm: and kubernetes: blocks below
// stay typed (model.SlurmTarget, model.KubernetesTarget).
//
//	providers:
//	  - {name: aws, egress_per_gb: 0.09, spot_preemptions_per_hour: 0.05}
//	contracts:
//	  # term: start plus years (may be fractional) or end; with neither,
//	  # yearly_minimums_usd gives one year per entry
//	  - {name: aws-2026, provider: aws, kind: spend, spend_usd: 38e9,
//	     start: 2026-01-01, years: 7, discount: 0.35, take_or_pay: true,
//	     yearly_minimums_usd: [3e9, 4e9, 5e9, 5.5e9, 6e9, 6.5e9, 7e9]}
//	  - {name: azure-h100, provider: azure, kind: capacity, gpu: H100,
//	     gpus: 4096, price_per_gpu_hour: 2.1, start: 2025-01-01,
//	     end: 2028-01-01, take_or_pay: true}
//	clusters:
//	  - name: aws-use1
//	    provider: aws
//	    region: us-east-1
//	    zone: us-east-1a            # optional
//	    backend: kubernetes         # local | slurm | kubernetes (k8s) | cloud; required
//	    endpoint: kubeconfig:aws-use1   # free text, shown only
//	    kubernetes:                 # backend kubernetes only; all optional
//	      kubeconfig: /etc/gpubroker/aws.kubeconfig   # default $KUBECONFIG
//	      context: aws-use1         # default: the current context
//	      namespace: gpubroker      # default gpubroker
//	      image: bash:5.2           # runs the job's scripts
//	      products: {h100: NVIDIA-H100-80GB-HBM3}     # pool -> nvidia.com/gpu.product
//	    # slurm:                    # backend slurm only; all optional
//	    #   conf: /etc/slurm/slurm.conf   # default: the server's SLURM_CONF
//	    #   partition: gpu          # default: the cluster's default partition
//	    #   gres_type: h100         # --gres=gpu:h100:N; default any GPU
//	    #   dir: /shared/gpubroker  # shared with the nodes; default STATE_DIR/slurm/NAME
//	    #   account: ml             # --account / --qos for every job; default the user's
//	    #   qos: normal
//	    #   team_accounts: {research: research}   # per team, over account
//	    #   team_qos: {research: high}            # per team, over qos
//	    pools:
//	      # price_class is required: committed | reserved | ondemand | spot
//	      - {name: h100, gpu: H100, gpus_per_node: 8, nodes: 512,
//	         price_class: committed, contract: aws-2026, price_per_gpu_hour: 3.9,
//	         cpus_per_node: 192, memory_gib_per_node: 2048}
//	      # gpu, gpus_per_node, cpus, memory and the price (on-demand, or
//	      # spot for spot pools, per GPU) come from the catalog entry of the
//	      # cluster's provider and region; explicit fields win, a GPU model
//	      # or count that contradicts the instance type is an error
//	      - {name: p5-spot, instance_type: p5.48xlarge, price_class: spot,
//	         nodes: 0, max_nodes: 64}
//	teams:
//	  - {name: research, weight: 2, cohort: lab, quota: {H100: 2048},
//	     monthly_budget_usd: 5e6, regions: [us-east-1]}   # weight defaults to 1
//	policy:                         # omitted: model.DefaultPolicy(); given fields override it
//	  max_provider_share: 0.6
//	  share_window: 30d             # Go durations plus d and w
//	  share_floor_gpu_hours: 0
//	  cap_fallback: true
//	  spot_allowed: true
//	  regions: [us-east-1, us-west-2]
//	  max_price_per_gpu_hour: {H100: 6.0, "*": 10}
//	  preemption: true
//	  fair_share: true
//	  max_priority: 100             # the highest priority members may submit with (teams may set their own)
//
// Dates are 2026-01-01 (midnight UTC) or RFC 3339.
package spec
