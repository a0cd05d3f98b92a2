// Package slurm is the backend that runs work on a Slurm cluster through the
// Slurm command-line tools: sbatch to submit, squeue and sacct to observe,
// scancel to cancel, scontrol and sinfo for health and discovery.
//
// # Why the CLI and not slurmrestd
//
// The CLI tools are installed wherever a Slurm client is (every login node
// has them), speak whatever version the cluster runs, and authenticate the
// way the site already does (munge, or none in CI). slurmrestd is an extra
// daemon a site must run and secure, needs JWT keys and tokens to be set
// up and rotated, and its JSON schema changes with every plugin version
// (v0.0.38, v0.0.39, ...). The cost of the CLI is a process per command,
// which is why Observe is batched: one squeue call for every attempt, plus
// one sacct call only for attempts slurmctld has already forgotten (older
// than its MinJobAge), at most every Options.ListEvery (5 s).
//
// squeue is not cheap for slurmctld: it packs every job it remembers, ended
// ones included (a busy controller keeping jobs for an hour took 0.8 s a
// call). So between listings Observe reports from the last one, and learns
// of endings from the attempt's directory: the batch script writes its
// exit status there as it ends (exit-status below), and its job id and
// start time as it starts (started), which a round reads with one open()
// per attempt. The broker then hands the freed GPUs to the next job at
// once instead of after the next squeue. What only Slurm knows (a
// failure, a cancellation, a lost node) waits for the next listing.
//
// A due listing, and a due health check (`scontrol ping` and sinfo, every
// Options.HealthEvery, 2 s), run in the background while Observe and
// Health return the last answer, so that a slow controller does not hold
// the broker's round; they wait only when the last call failed or the one
// in flight has run for four periods (a controller that died and leaves
// its callers hanging), and then within the broker's cluster timeout.
//
// # Names, idempotence and restarts
//
// Every attempt is a Slurm job named spec.Name (backend.Name: gpub-JOB-ATTEMPT),
// submitted with the broker's user. Submit looks the name up first (squeue,
// then sacct) and starts nothing when a job of that name exists, so a broker
// that died between sbatch and recording the submission finds the job again
// instead of launching twice. Concurrent Submits of one name are serialised
// by a flock on the attempt's directory.
//
// # The shared directory
//
// Options.Dir must be visible at the same path on the broker and on every
// compute node (a shared file system). Each attempt has DIR/NAME/ holding:
//
//	attempt.json   nodes and submit time; what a restarted Backend reloads
//	setup.sh run.sh env.sh node.sh job.sh
//	               the spec's scripts, its environment, the per-node wrapper
//	               and the batch script sbatch runs
//	node-R.log     node R's output (srun --output node-%t.log), at most its
//	               share of Spec.MaxLogBytes, then a truncation note
//	slurm-ID.out   the batch script's own output (srun's errors, cancellations)
//	exit-status    "JOBID CODE START END", written by the batch script as it
//	               ends (not when it is killed); taken only for its own job
//	               id, and only a zero CODE (a failure waits for Slurm's state)
//	started        "JOBID START", written by the batch script as it starts;
//	               taken only for its own job id, while Slurm's last word
//	               was that the job waits
//	cancelled      present once Cancel was called (a CANCELLED job without it
//	               was cancelled by Slurm or an administrator: Lost)
//	forgotten      present once Forget was called
//
// The attempts a Backend holds (what Observe reports) are the directories
// with an attempt.json and no forgotten marker, loaded once by New. One
// broker owns a directory at a time.
//
// # What a job sees
//
// The batch script runs `srun --ntasks-per-node=1 --kill-on-bad-exit=1`, so
// there is one task per node and a failing node stops the gang. Each task
// sources env.sh (the spec's Envs, then GPUBROKER_* and SKYPILOT_* as the
// local backend sets them), takes its rank from SLURM_NODEID, and runs setup
// then run in the spec's Workdir (DIR/NAME when empty). GPUBROKER_NODE_IPS
// lists the NodeAddr of each node of SLURM_JOB_NODELIST (scontrol show
// hostnames order), one a line. CUDA_VISIBLE_DEVICES is Slurm's, set by GRES:
// the GPU slots in spec.Nodes give the count per node (--gres=gpu[:TYPE]:N),
// not which devices, which Slurm chooses.
//
// Each job carries --comment="gpubroker team=TEAM" and, when configured,
// the team's --account and --qos (Options.TeamAccounts, TeamQOS, with
// Account and QOS as the defaults), so Slurm's own fair share, limits and
// sacct reports see the same teams as gpubroker.
//
// Cancel relies on Slurm's process tracking to stop every process of a job.
// proctrack/cgroup (production) and proctrack/pgid (CI) signal all of them
// at once; with proctrack/linuxproc they are signalled one at a time, and a
// job's background subshell can run its next command in between.
//
// # Phases
//
// PENDING, REQUEUED, CONFIGURING → Pending; RUNNING, COMPLETING, SUSPENDED,
// STOPPED → Running; COMPLETED → Succeeded; FAILED, TIMEOUT, OUT_OF_MEMORY,
// DEADLINE → Failed with the exit code (128+signal when killed by a signal);
// CANCELLED → Failed ("cancelled") when the broker cancelled it, Lost when
// it did not (Slurm cancels a job whose launch failed and that it cannot
// requeue; an administrator may scancel); NODE_FAIL, PREEMPTED, BOOT_FAIL
// → Lost.
// An attempt that neither squeue nor sacct knows (the broker died before
// sbatch) is Lost. Times are read in the broker's local time zone, which must
// be the controller's.
//
// This package must never import the engine, the server or another driver.
package slurm
