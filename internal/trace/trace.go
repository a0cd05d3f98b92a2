package trace

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"gpubroker/internal/model"
)

// Kind names a trace format.
type Kind string

const (
	// Philly is the Pollux-processed Microsoft Philly job table
	// (timestamp,duration,num_gpus,gpu_time,cluster).
	Philly Kind = "philly"
	// ITP is the raw Microsoft ITP (ElasticFlow) per-cluster job list
	// (job_id,submission_time,duration,num_gpu).
	ITP Kind = "itp"
	// ITPDeadline is the ElasticFlow-augmented ITP list, which adds a
	// (synthetic) deadline column; the same jobs as ITP.
	ITPDeadline Kind = "itp-deadline"
	// Openb is the Alibaba GPU cluster trace 2023 (FGD) pod list.
	Openb Kind = "openb"
)

// Kinds lists every supported format.
var Kinds = []Kind{Philly, ITP, ITPDeadline, Openb}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool { return slices.Contains(Kinds, k) }

// Error kinds. Every error this package returns wraps one of them, so a
// caller tests with errors.Is.
var (
	// ErrUnknownKind: the named kind is not one of Kinds.
	ErrUnknownKind = errors.New("unknown trace kind")
	// ErrUnknownFormat: Detect could not tell the format from the header or
	// the file name, or a directory holds no file of the named kind.
	ErrUnknownFormat = errors.New("unknown trace format")
	// ErrHeader: the input has no header row or misses a column the kind
	// needs. Individual bad rows are never errors; they go to
	// Result.Malformed.
	ErrHeader = errors.New("bad trace header")
	// ErrOptions: an Options field is out of range.
	ErrOptions = errors.New("bad trace options")
)

// DefaultGPUsPerNode is used when Options.GPUsPerNode is zero: the 8-GPU
// server is the common shape in all three traces' clusters.
const DefaultGPUsPerNode = 8

// Options says how trace rows become workloads.
type Options struct {
	// DefaultGPU is the GPU model asked for when the trace gives none
	// (Philly, ITP, openb tasks without gpu_spec) or names a type with no
	// public name (openb G1/G2/G3). Empty means the kind's default (see
	// DefaultGPUFor).
	DefaultGPU model.GPUModel
	// GPUsPerNode is the node size (1..model.MaxGPUsPerNode; 0 means
	// DefaultGPUsPerNode). A job asking for n <= GPUsPerNode GPUs becomes one
	// node of n GPUs; a larger job becomes ceil(n/GPUsPerNode) nodes of
	// GPUsPerNode GPUs, so a workload never asks for fewer GPUs than the
	// trace (12 GPUs with 8 per node -> 2 x 8 = 16). The padding is counted
	// in Result.Notes.
	GPUsPerNode int
	// Start is the instant the trace's t=0 maps to. For Philly, t=0 is the
	// earliest timestamp in the file. Zero means the trace's own clock: the
	// Philly timestamps read as UTC, and 1970-01-01T00:00:00Z for the traces
	// that give offsets (ITP, openb).
	Start time.Time
	// Limit keeps only the first Limit workloads in (Submitted, ID) order;
	// 0 keeps all. Every row is still read and checked, because the files
	// are not sorted by time.
	Limit int
	// Team names the submitting team for traces with no group column (ITP,
	// openb). Empty means "itp-<file name>" through Open, else the kind
	// name ("itp", "openb"). Philly always uses its virtual cluster.
	Team string
}

// DefaultGPUFor is the GPU model a kind's jobs ask for when neither the
// trace nor Options.DefaultGPU names one:
//
//   - philly: P100. Philly's servers were the 2017 Pascal generation (2-GPU
//     12 GB and 8-GPU 24 GB machines, i.e. P100/P40, per Jeon et al.
//     ATC'19); P100 is the catalogued one.
//   - itp, itp-deadline: V100. The 2021 ITP clusters are not documented by
//     type; V100 is the generation Microsoft's first-party training ran on
//     then. A guess, stated as one.
//   - openb: T4, the most common GPU with a public name in openb's node list
//     (404 of 1,213 GPU nodes).
func DefaultGPUFor(k Kind) model.GPUModel {
	switch k {
	case Philly:
		return "P100"
	case Openb:
		return "T4"
	default:
		return "V100"
	}
}

// Malformed is one rejected row. Every row a reader does not turn into a
// workload is recorded here, so produced + malformed = data rows.
type Malformed struct {
	// File is the file the row came from (set by Open; empty from Read).
	File string
	// Line is the 1-based line number in the file (the header is line 1).
	Line int
	// Reason is one of the Reason* constants, for counting.
	Reason string
	// Detail says what exactly was wrong with the row.
	Detail string
}

func (m Malformed) String() string {
	s := fmt.Sprintf("line %d: %s", m.Line, m.Reason)
	if m.File != "" {
		s = m.File + ":" + s
	}
	if m.Detail != "" {
		s += ": " + m.Detail
	}
	return s
}

// Reasons a row is rejected.
const (
	ReasonCSV         = "unreadable CSV row"
	ReasonFieldCount  = "wrong number of fields"
	ReasonNoGPU       = "no GPU"
	ReasonGPUCount    = "bad GPU count"
	ReasonGPUMilli    = "bad gpu_milli"
	ReasonSubmitTime  = "bad submit time"
	ReasonDuration    = "bad duration"
	ReasonDeadline    = "bad deadline"
	ReasonMissingID   = "missing job id"
	ReasonMissingTeam = "missing cluster"
	ReasonInvalid     = "invalid workload"
)

// Result is what a reader produced.
type Result struct {
	// Workloads are sorted by (Submitted, ID); IDs are unique.
	Workloads []*model.Workload
	// Malformed lists every rejected row in file and line order.
	Malformed []Malformed
	// Rows is the number of data rows read (header and blank lines not
	// counted): len(Workloads) + len(Malformed) before Limit.
	Rows int
	Kind Kind
	// Notes say where the mapping had to guess or round (default GPU model,
	// GPUs rounded up to whole nodes, unknown GPU types, ...), with counts.
	Notes []string
}

// MalformedByReason counts Malformed by Reason.
func (r *Result) MalformedByReason() map[string]int {
	m := make(map[string]int)
	for _, x := range r.Malformed {
		m[x.Reason]++
	}
	return m
}

// Read reads one trace file of the given kind from r. Rows that cannot be
// used are returned in Result.Malformed, never dropped; an error is returned
// only for bad options, an unknown kind, a missing or incomplete header, or
// a failing reader.
func Read(kind Kind, r io.Reader, opt Options) (*Result, error) {
	o, err := resolve(kind, opt)
	if err != nil {
		return nil, err
	}
	p, err := parse(kind, r, o)
	if err != nil {
		return nil, err
	}
	return finish(kind, []*parsed{p}, o), nil
}

// resolve checks opt and fills its defaults.
func resolve(kind Kind, opt Options) (Options, error) {
	if !kind.Valid() {
		return opt, fmt.Errorf("%w %q; use one of %s", ErrUnknownKind, kind, kindList())
	}
	if opt.GPUsPerNode == 0 {
		opt.GPUsPerNode = DefaultGPUsPerNode
	}
	if opt.GPUsPerNode < 1 || opt.GPUsPerNode > model.MaxGPUsPerNode {
		return opt, fmt.Errorf("%w: GPUsPerNode %d is out of range; give 1 to %d", ErrOptions, opt.GPUsPerNode, model.MaxGPUsPerNode)
	}
	if opt.Limit < 0 {
		return opt, fmt.Errorf("%w: Limit %d is negative; give 0 (all) or more", ErrOptions, opt.Limit)
	}
	if opt.DefaultGPU == "" {
		opt.DefaultGPU = DefaultGPUFor(kind)
	}
	if opt.Team == "" {
		opt.Team = string(kind)
		if kind == ITPDeadline {
			opt.Team = string(ITP)
		}
	}
	opt.Team = cleanName(opt.Team)
	return opt, nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// row is one trace row in the trace's own terms, before mapping.
type row struct {
	id       string // trace job id; "" for Philly (the row number is used)
	team     string // "" means Options.Team
	at       time.Duration
	dur      time.Duration
	gpus     int
	gpuTypes []string // trace GPU labels; nil means "any"
	deadline time.Duration
	hasDL    bool
	priority int
}

// rowError is why a row was rejected.
type rowError struct{ reason, detail string }

func reject(reason, format string, args ...any) *rowError {
	return &rowError{reason, fmt.Sprintf(format, args...)}
}

// format is one kind's columns and row parser.
type format struct {
	required []string
	// absolute: row.at is time since the Unix epoch and t=0 is the earliest
	// row; otherwise row.at is already an offset from t=0.
	absolute bool
	parse    func(c *cols, rec []string, t *tally) (row, *rowError)
}

func formatOf(k Kind) format {
	switch k {
	case Philly:
		return phillyFormat
	case ITP:
		return itpFormat
	case ITPDeadline:
		return itpDeadlineFormat
	default:
		return openbFormat
	}
}

// cols maps header names to field indexes.
type cols struct{ idx map[string]int }

func (c *cols) has(name string) bool { _, ok := c.idx[name]; return ok }

// get returns the trimmed field, or "" when the column is absent.
func (c *cols) get(rec []string, name string) string {
	i, ok := c.idx[name]
	if !ok || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

// tally counts what Notes report.
type tally struct {
	defaultGPU   int // workloads given DefaultGPU because the trace names none
	padded       int // jobs rounded up to whole nodes
	paddedGPUs   int // GPUs added by that rounding
	shared       int // openb fractional-GPU tasks rounded up to one GPU
	unknownGPU   map[string]int
	unknownQoS   map[string]int
	noTimes      bool // openb file without time columns
	duplicateIDs int
}

type item struct {
	w    *model.Workload
	line int
}

// parsed is one file's rows, mapped but not yet deduplicated or sorted.
type parsed struct {
	file      string
	items     []item
	malformed []Malformed
	rows      int
	t         tally
}

// parse reads one file.
func parse(kind Kind, r io.Reader, o Options) (*parsed, error) {
	f := formatOf(kind)
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: empty input, no header row", ErrHeader)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHeader, err)
	}
	c := &cols{idx: make(map[string]int, len(head))}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := c.idx[h]; !dup {
			c.idx[h] = i
		}
	}
	var missing []string
	for _, name := range f.required {
		if !c.has(name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s needs column(s) %s; the header has %q", ErrHeader, kind, strings.Join(missing, ", "), strings.Join(head, ","))
	}
	nfields := len(head)

	p := &parsed{t: tally{unknownGPU: map[string]int{}, unknownQoS: map[string]int{}}}
	type good struct {
		row
		line, n int
	}
	var rows []good
	lastErrLine := -1
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("trace: reading %s: %w", kind, err)
			}
			if pe.Line == lastErrLine {
				return nil, fmt.Errorf("trace: reading %s: %w", kind, err)
			}
			lastErrLine = pe.Line
			p.rows++
			p.malformed = append(p.malformed, Malformed{Line: pe.StartLine, Reason: ReasonCSV, Detail: pe.Err.Error()})
			continue
		}
		p.rows++
		line, _ := cr.FieldPos(0)
		if len(rec) != nfields {
			p.malformed = append(p.malformed, Malformed{Line: line, Reason: ReasonFieldCount, Detail: fmt.Sprintf("%d fields, the header has %d", len(rec), nfields)})
			continue
		}
		rw, rerr := f.parse(c, rec, &p.t)
		if rerr != nil {
			p.malformed = append(p.malformed, Malformed{Line: line, Reason: rerr.reason, Detail: rerr.detail})
			continue
		}
		rows = append(rows, good{rw, line, p.rows})
	}

	var t0 time.Duration
	if f.absolute && len(rows) > 0 {
		t0 = rows[0].at
		for _, g := range rows[1:] {
			t0 = min(t0, g.at)
		}
	}
	start := o.Start
	if start.IsZero() {
		start = time.Unix(0, 0).UTC().Add(t0)
	}
	p.items = make([]item, 0, len(rows))
	block := make([]model.Workload, len(rows)) // one allocation, not one per row
	for i, g := range rows {
		w := &block[i]
		build(w, kind, g.row, g.n, start.Add(g.at-t0), start, o, &p.t)
		if err := w.Validate(); err != nil {
			p.malformed = append(p.malformed, Malformed{Line: g.line, Reason: ReasonInvalid, Detail: strings.ReplaceAll(err.Error(), "\n", "; ")})
			continue
		}
		p.items = append(p.items, item{w, g.line})
	}
	slices.SortStableFunc(p.malformed, func(a, b Malformed) int { return cmp.Compare(a.Line, b.Line) })
	return p, nil
}

// build maps one row onto w.
func build(w *model.Workload, kind Kind, r row, n int, submitted, start time.Time, o Options, t *tally) {
	id := r.id
	if id == "" {
		id = strconv.Itoa(n)
	}
	team := r.team
	if team == "" {
		team = o.Team
	}
	nodes, per := shape(r.gpus, o.GPUsPerNode)
	if extra := nodes*per - r.gpus; extra > 0 {
		t.padded++
		t.paddedGPUs += extra
	}
	var gpus []model.GPUModel
	for _, label := range r.gpuTypes {
		g, ok := openbGPUs[strings.ToUpper(label)]
		if !ok {
			t.unknownGPU[label]++
			g = o.DefaultGPU
		}
		if !slices.Contains(gpus, g) {
			gpus = append(gpus, g)
		}
	}
	if len(gpus) == 0 {
		t.defaultGPU++
		gpus = []model.GPUModel{o.DefaultGPU}
	}
	opts := make([]model.Resources, len(gpus))
	for i, g := range gpus {
		opts[i] = model.Resources{GPU: g, GPUsPerNode: per}
	}
	*w = model.Workload{
		ID:        cleanName(string(kind) + "-" + id),
		Kind:      model.Job,
		Team:      team,
		Priority:  r.priority,
		NumNodes:  nodes,
		Options:   opts,
		Order:     model.AnyOf,
		Duration:  r.dur,
		Submitted: submitted,
	}
	if r.hasDL {
		w.Deadline = start.Add(r.deadline)
	}
}

// shape turns a GPU count into nodes x GPUs per node, never fewer GPUs than
// asked: n <= perNode is one node of n; more is ceil(n/perNode) full nodes.
func shape(n, perNode int) (nodes, per int) {
	if n <= perNode {
		return 1, n
	}
	return (n + perNode - 1) / perNode, perNode
}

// finish deduplicates IDs across all files (in file then line order),
// sorts, applies Limit and writes Notes.
func finish(kind Kind, ps []*parsed, o Options) *Result {
	res := &Result{Kind: kind}
	var t tally
	t.unknownGPU = map[string]int{}
	t.unknownQoS = map[string]int{}
	seen := make(map[string]bool)
	for _, p := range ps {
		for _, m := range p.malformed {
			m.File = p.file
			res.Malformed = append(res.Malformed, m)
		}
		for _, it := range p.items {
			if seen[it.w.ID] {
				t.duplicateIDs++
				base := it.w.ID + "-" + strconv.Itoa(it.line)
				id := base
				for k := 2; seen[id]; k++ {
					id = base + "-" + strconv.Itoa(k)
				}
				it.w.ID = id
			}
			seen[it.w.ID] = true
			res.Workloads = append(res.Workloads, it.w)
		}
		res.Rows += p.rows
		t.defaultGPU += p.t.defaultGPU
		t.padded += p.t.padded
		t.paddedGPUs += p.t.paddedGPUs
		t.shared += p.t.shared
		t.noTimes = t.noTimes || p.t.noTimes
		for k, v := range p.t.unknownGPU {
			t.unknownGPU[k] += v
		}
		for k, v := range p.t.unknownQoS {
			t.unknownQoS[k] += v
		}
	}
	slices.SortFunc(res.Workloads, func(a, b *model.Workload) int {
		if c := a.Submitted.Compare(b.Submitted); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if o.Limit > 0 && len(res.Workloads) > o.Limit {
		res.Workloads = res.Workloads[:o.Limit:o.Limit]
	}
	res.Notes = t.notes(kind, o)
	return res
}

func (t *tally) notes(kind Kind, o Options) []string {
	var ns []string
	if t.defaultGPU > 0 {
		if kind == Openb {
			ns = append(ns, fmt.Sprintf("%d tasks have no gpu_spec (any GPU); they ask for %s (DefaultGPU)", t.defaultGPU, o.DefaultGPU))
		} else {
			ns = append(ns, fmt.Sprintf("the trace has no GPU type; all %d jobs ask for %s (DefaultGPU)", t.defaultGPU, o.DefaultGPU))
		}
	}
	if t.padded > 0 {
		ns = append(ns, fmt.Sprintf("%d jobs asked for more than %d GPUs and not a multiple of it; rounded up to whole nodes, %d GPUs added", t.padded, o.GPUsPerNode, t.paddedGPUs))
	}
	if t.shared > 0 {
		ns = append(ns, fmt.Sprintf("%d tasks share a GPU (gpu_milli < 1000); each asks for one whole GPU", t.shared))
	}
	for _, k := range sortedKeys(t.unknownGPU) {
		ns = append(ns, fmt.Sprintf("GPU type %q (no public name) in %d tasks' gpu_spec; asked as %s (DefaultGPU)", k, t.unknownGPU[k], o.DefaultGPU))
	}
	for _, k := range sortedKeys(t.unknownQoS) {
		ns = append(ns, fmt.Sprintf("unknown qos %q in %d tasks; priority 0", k, t.unknownQoS[k]))
	}
	if t.noTimes {
		ns = append(ns, "no creation_time/deletion_time columns: every task is submitted at t=0 with zero (unknown) duration")
	}
	if t.duplicateIDs > 0 {
		ns = append(ns, fmt.Sprintf("%d repeated job ids; the line number was appended to make them unique", t.duplicateIDs))
	}
	return ns
}
