package slurm

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gpubroker/internal/backend"
)

// jobScript is the batch script: it finds the nodes' addresses once, then
// starts node.sh on every node, one task each; a node that fails stops the
// others. Its exit code (srun's: the largest of the tasks') is the job's,
// and it writes it to exitFile with the job id and its start and end times
// (see Backend.Observe) before it exits; a script killed (scancel, a node
// lost) writes none. As it starts it writes startFile (job id, start).
// Both are one short line written by one echo, no temporary file and mv:
// under load every process the script starts delays the job, and the
// reader (Backend.scriptFile) takes a line only once it is whole. The
// @WORD@ placeholders are filled by writeScripts.
const jobScript = `#!/bin/bash
# gpubroker attempt @NAME@; generated, do not edit.
d=@DIR@
t0=${EPOCHREALTIME:-$(date +%s.%N)}
echo "$SLURM_JOB_ID $t0" > "$d/@START@"
declare -A addr
while read -r line; do
  n=${line#NodeName=}; n=${n%% *}
  a=${line#* NodeAddr=}; [ "$a" = "$line" ] && a=$n; a=${a%% *}
  addr[$n]=$a
done < <(scontrol show node -o "$SLURM_JOB_NODELIST" 2>/dev/null)
ips=
while read -r h; do ips+=${addr[$h]:-$h}$'\n'; done < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
export GPUBROKER_NODE_IPS=${ips%$'\n'}
export SKYPILOT_NODE_IPS=$GPUBROKER_NODE_IPS
srun --quiet --kill-on-bad-exit=1 --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" \
  --ntasks-per-node=1 --output="$d/node-%t.log" /bin/bash "$d/node.sh"
rc=$?
echo "$SLURM_JOB_ID $rc $t0 ${EPOCHREALTIME:-$(date +%s.%N)}" > "$d/@EXIT@"
exit $rc
`

// nodeScript runs on each node: the attempt's environment, the node's rank,
// then setup (when the task has one) and run in the workdir, all in the
// task's process group so that Slurm's process tracking signals every
// process they start. With a log cap (@CAP@ above 0) their output goes
// through the cap filter (backend.CapFilter); the shell and the subshell
// that runs them trap TERM, so the code recorded is run's own, as when
// run is exec'd.
const nodeScript = `#!/bin/bash
d=@DIR@
. "$d/env.sh"
export GPUBROKER_NODE_RANK=${SLURM_NODEID:-$SLURM_PROCID} SKYPILOT_NODE_RANK=${SLURM_NODEID:-$SLURM_PROCID}
cd -- @WORKDIR@ || exit 1
if [ @CAP@ -gt 0 ]; then
  trap : TERM INT HUP
  { trap : TERM INT HUP
    @SETUP@/bin/bash "$d/run.sh"; } 2>&1 | @FILTER@
  exit "${PIPESTATUS[0]}"
fi
@SETUP@exec /bin/bash "$d/run.sh"
`

// setupLine runs setup.sh before run.sh; a task without setup starts no
// process for it.
const setupLine = `/bin/bash "$d/setup.sh" || exit $?
`

// writeScripts writes the attempt's scripts and environment into adir.
func (b *Backend) writeScripts(adir string, spec backend.Spec) error {
	setup := ""
	if strings.TrimSpace(spec.Setup) != "" {
		setup = setupLine
	}
	logCap := backend.NodeLogCap(spec)
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"setup.sh", spec.Setup, 0o644},
		{"run.sh", spec.Run, 0o644},
		{"env.sh", envFile(spec), 0o644},
		{"node.sh", strings.NewReplacer("@DIR@", shellQuote(adir), "@WORKDIR@", shellQuote(workdir(adir, spec)), "@SETUP@", setup,
			"@CAP@", strconv.FormatInt(logCap, 10), "@FILTER@", backend.CapFilter(logCap)).Replace(nodeScript), 0o755},
		{"job.sh", strings.NewReplacer("@NAME@", spec.Name, "@DIR@", shellQuote(adir), "@EXIT@", exitFile, "@START@", startFile).Replace(jobScript), 0o755},
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(adir, f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// envFile exports the spec's Envs, then the variables the backend sets,
// which win. Rank and node addresses are set on the node.
func envFile(spec backend.Spec) string {
	var sb strings.Builder
	keys := make([]string, 0, len(spec.Envs))
	for k := range spec.Envs {
		if validEnvKey(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	put := func(k, v string) {
		sb.WriteString("export " + k + "=" + shellQuote(v) + "\n")
	}
	for _, k := range keys {
		put(k, spec.Envs[k])
	}
	n := strconv.Itoa(len(spec.Nodes))
	per := strconv.Itoa(len(spec.Nodes[0].GPUs))
	put("GPUBROKER_JOB_ID", strconv.FormatInt(spec.JobID, 10))
	put("GPUBROKER_ATTEMPT", strconv.Itoa(spec.Attempt))
	put("GPUBROKER_NAME", spec.Name)
	put("GPUBROKER_NUM_NODES", n)
	put("GPUBROKER_GPUS_PER_NODE", per)
	put("GPUBROKER_CHECKPOINT_DIR", spec.CheckpointDir)
	put("SKYPILOT_NUM_NODES", n)
	put("SKYPILOT_NUM_GPUS_PER_NODE", per)
	put("SKYPILOT_TASK_ID", spec.Name)
	return sb.String()
}

// validEnvKey: a shell variable name. Others cannot be exported by bash and
// are dropped.
func validEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
