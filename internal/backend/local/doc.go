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
// setup succeeded, in the spec's Workdir, or the attempt directory when it is
// empty) in a session of its own (setsid: its own process group, pgid = pid,
// and no controlling terminal), stdin /dev/null, stdout and stderr appended to
// its log. The broker reaps the processes it started while it lives; after a
// restart the orphans are the init process's to reap.
//
// The node's environment is the broker's, then the spec's Envs, then these,
// which win: CUDA_VISIBLE_DEVICES (the node's GPU slots, comma-separated),
// GPUBROKER_JOB_ID, GPUBROKER_ATTEMPT, GPUBROKER_NAME, GPUBROKER_NODE_RANK,
// GPUBROKER_NUM_NODES, GPUBROKER_NODE_IPS (one address a line, all 127.0.0.1
// here), GPUBROKER_GPUS_PER_NODE, GPUBROKER_CHECKPOINT_DIR, and SkyPilot's
// SKYPILOT_NODE_RANK, SKYPILOT_NUM_NODES, SKYPILOT_NODE_IPS,
// SKYPILOT_NUM_GPUS_PER_NODE and SKYPILOT_TASK_ID (the attempt name).
//
// One broker owns a state directory at a time. This package must never
// import the engine, the server or another driver.
package local
