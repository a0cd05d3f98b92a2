// Package trace reads public GPU-cluster traces into model workloads, so the
// simulator can replay real arrivals: Microsoft Philly (the Pollux-processed
// job table), Microsoft ITP (ElasticFlow, raw and with deadlines) and the
// Alibaba GPU cluster trace 2023 "openb" (FGD).
//
// Read parses one file of a named Kind; Detect tells the Kind from a
// file's header; Open takes "KIND:PATH" or "PATH", where PATH is a file or
// a trace directory as laid out under data/traces/.
//
// # Contract
//
// A bad row is never dropped silently and never fails the read: it is
// listed in Result.Malformed with its line and a Reason*, so produced +
// malformed = data rows. Only a missing header or column, bad Options or a
// failing reader is an error (wrapping ErrHeader, ErrOptions, ErrUnknownKind,
// ErrUnknownFormat). Every workload passes model.Workload.Validate, IDs are
// unique, and Result.Workloads is sorted by (Submitted, ID) whatever the
// file order. Where the mapping guesses or rounds, Result.Notes says so
// with counts.
//
// trace imports only model and the standard library. It never schedules,
// never reads a clock (t=0 is Options.Start) and never looks anything up
// in the catalog: GPU names are the canonical strings below.
//
// # Mapping
//
//	workload field  philly                    itp / itp-deadline            openb
//	--------------  ------------------------  ----------------------------  ------------------------------------
//	ID              philly-<row number>       itp-<job_id>,                 openb-<name>
//	                (no job id in the table)  itp-deadline-<job_id>
//	Team            philly-<cluster> (VC)     Open: itp-<file name>, e.g.   Options.Team, else "openb"
//	                                          itp-cluster04; Read: "itp";
//	                                          Options.Team overrides
//	Submitted       Start + (timestamp -      Start + submission_time s     Start + creation_time s
//	                earliest timestamp)
//	Duration        duration (float s)        duration s                    deletion_time - scheduled_time
//	                                                                        (- creation_time if never scheduled)
//	Deadline        -                         itp-deadline: Start+deadline  -
//	Priority        0                         0                             qos: BE 0, Burstable 1, LS 2,
//	                                                                        Guaranteed 3 (unknown: 0, noted)
//	GPU model       DefaultGPU (P100)         DefaultGPU (V100)             gpu_spec via the table below, one
//	                                                                        option per listed type; empty: DefaultGPU (T4)
//	GPU count       num_gpus                  num_gpu                       num_gpu; gpu_milli < 1000 (a shared
//	                                                                        GPU) asks for 1 whole GPU, noted
//	Kind, Order     job, any_of               job, any_of                   job, any_of
//
// The GPU count n becomes NumNodes x GPUsPerNode, never fewer GPUs than the
// trace: n <= GPUsPerNode is 1 node x n; larger is ceil(n/GPUsPerNode) nodes
// x GPUsPerNode (with 8 per node: 12 -> 2 x 8, 24 -> 3 x 8, 128 -> 16 x 8).
// A row with 0 GPUs (CPU-only) is Malformed with ReasonNoGPU. Team and ID
// have every character outside letters, digits, '-', '_', '.' replaced by
// '_'. A repeated ID gets "-<line>" appended.
//
// openb GPU types (node "model" column, pod gpu_spec):
//
//	openb label  GPU model
//	-----------  ---------
//	V100M16      V100
//	V100M32      V100-32GB
//	P100         P100
//	T4           T4
//	A10          A10
//	G1, G2, G3   DefaultGPU: undisclosed internal codes, counted in Notes
//	other        DefaultGPU, counted in Notes
//
// When Options.DefaultGPU is empty, DefaultGPUFor gives the kind's default
// and says why. The openb pod list without time columns
// (openb_pod_list_multigpu50.csv) reads with all pods at t=0 and zero
// duration; the Philly pollux-workloads files and the other traces in
// data/traces are not read by this package.
package trace
