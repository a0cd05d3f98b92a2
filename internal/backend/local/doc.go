// Package local is the backend that runs work on this machine: one bash
// process group per node of a gang, started detached from the broker so the
// work survives the broker being killed or restarted.
//
// # State directory
//
// Everything the backend knows lives in files under the state directory, one
// subdirectory per attempt (named backend.Name(job, attempt)):
//
//	spec.json        the spec, the host and the submit time (written atomically)
//	work/            the job's HOME, and where it starts without a Workdir
//	setup.sh run.sh  the node scripts
//	node-R.lock      held (flock) by node R's processes for as long as they live
//	node-R.pid       "PID STARTTICKS": the process group leader and its start time
//	                 from /proc/PID/stat, so a reused pid is never signalled
//	node-R.log       the node's stdout and stderr, at most its share of
//	                 Spec.MaxLogBytes and then one truncation note
//	                 (backend.CapFilter, run in the node's own session)
//	node-R.exit      "CODE SECONDS.MICROS": the exit code and when setup/run
//	                 ended, written (temp file + rename) by the node's own
//	                 shell then, before it releases the lock
//	cancelled        present once Cancel was called
//
// Creating the attempt directory with mkdir is what makes Submit idempotent:
// whoever creates it starts the processes; everyone else returns nil.
//
// # After a broker restart
//
// A new Backend on the same directory reads the state from the files alone.
// Processes still running are found again (their lock is still held): they
// are reported Running and later Succeeded or Failed from their exit files,
// exactly as if the broker had never stopped; nothing is started twice.
// Nodes whose processes vanished without writing an exit file (the machine
// rebooted, the broker's cgroup was killed with it, someone ran kill -9 on
// the process group) are declared Lost, and the rest of their gang is
// stopped: the control plane retries a Lost attempt as a new attempt. A node
// that exited with a code, including one killed by a signal while its shell
// survived (the shell records 128+signal), is Failed, not Lost. An attempt
// whose submission was interrupted before every node was started is Lost too.
// A node its spec keeps from starting (an environment the kernel refuses:
// too long, or holding a NUL byte; a missing program) is no loss: Submit
// stops the nodes it started and returns a backend.StartError.
//
// Liveness is the node's flock, not the pid: the lock is taken by the broker
// before the fork and handed to the node's shell, so there is no window in
// which a node runs without holding it, and it is released by the kernel when
// the last process holding it ends, whatever killed it. The pid file exists
// for signalling (Cancel, stopping a gang) and is checked against the
// process's start time before any signal is sent.
//
// # Phases
//
// Running while any node lives; Succeeded when every node exited 0; Failed
// when a node exited non-zero or the attempt was cancelled, once the whole
// gang has stopped (the others are sent SIGTERM, then SIGKILL after the grace
// period; until they are gone the attempt stays Running, with a message, so
// its GPUs are not handed out while still in use); Lost as above. Cancel
// returns once the signals are sent; Observe reports the outcome.
//
// # Forget and logs
//
// Forget removes the attempt's record (killing anything of it still alive)
// and keeps its logs under DIR/.logs/NAME/, where Logs still finds them; the
// backend never deletes those logs. Names are not reused after Forget:
// backend.Name is unique per attempt.
//
// # Processes and environment
//
// Each node is `bash -c` (a small wrapper that runs setup.sh, then run.sh if
// setup succeeded) in a session of its own (setsid: its own process group,
// pgid = pid, and no controlling terminal), stdin /dev/null, stdout and
// stderr appended to its log. The job starts in the spec's Workdir, or in
// the attempt's work/ directory when it is empty. The broker reaps the
// processes it started while it lives; after a restart the orphans are the
// init process's to reap.
//
// The node's environment is built from scratch, never the broker's: PATH (a
// fixed system one), HOME (the attempt's work/), then the spec's Envs,
// then these, which win: CUDA_VISIBLE_DEVICES (the node's GPU slots,
// comma-separated), GPUBROKER_JOB_ID, GPUBROKER_ATTEMPT, GPUBROKER_NAME,
// GPUBROKER_NODE_RANK, GPUBROKER_NUM_NODES, GPUBROKER_NODE_IPS (one address
// a line, all 127.0.0.1 here), GPUBROKER_GPUS_PER_NODE,
// GPUBROKER_CHECKPOINT_DIR, and SkyPilot's SKYPILOT_NODE_RANK,
// SKYPILOT_NUM_NODES, SKYPILOT_NODE_IPS, SKYPILOT_NUM_GPUS_PER_NODE and
// SKYPILOT_TASK_ID (the attempt name).
//
// # Isolation
//
// With Options.Isolation (Driver sets it when the broker runs as root) the
// wrapper stays the broker's user, and setup and run run as a uid and gid
// of the team's own (Isolation.teamID), through setpriv, with no other
// groups and no_new_privs; the wrapper, as root, keeps writing the files
// above, so nothing the backend trusts is the job's to write. The attempt
// directory is then 0711 (reachable, not listable), its files 0600, the
// scripts 0640 to the team's group, work/ the team's, 0700: a team's job
// cannot read another team's work, logs, scripts or record, and the
// kernel refuses it other uids' /proc/PID/environ. The backend's own
// directory is 0711, the kept logs 0700.
//
// Without Isolation a job runs as the broker's user and can read whatever
// that user can, this directory included: the scrubbed environment is all
// it is spared. See docs/local.md and docs/adr/0009-local-job-isolation.md.
//
// One broker owns a state directory at a time. When that broker dies for
// good (a leader of a shared store killed), another broker on the same
// machine takes its attempts over with Adopt: a Backend over that
// directory, which finds them again as after a restart. Nodes must not be
// started with a parent-death signal (Pdeathsig): they outlive the broker.
// This package must never import the engine, the server or another driver.
package local
