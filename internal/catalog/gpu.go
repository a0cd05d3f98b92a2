package catalog

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gpubroker/internal/model"
)

// Canonical GPU models. These strings are what every other package compares
// against; users may spell them in any case or by an alias (see ParseGPU).
const (
	GB200      model.GPUModel = "GB200"
	GH200      model.GPUModel = "GH200"
	B300       model.GPUModel = "B300"
	B200       model.GPUModel = "B200"
	H200       model.GPUModel = "H200"
	H100       model.GPUModel = "H100"
	H100NVL    model.GPUModel = "H100-NVL"
	A100_80GB  model.GPUModel = "A100-80GB"
	A100       model.GPUModel = "A100"
	L40S       model.GPUModel = "L40S"
	L40        model.GPUModel = "L40"
	L4         model.GPUModel = "L4"
	A10G       model.GPUModel = "A10G"
	A10        model.GPUModel = "A10"
	A40        model.GPUModel = "A40"
	RTXPro6000 model.GPUModel = "RTX-PRO-6000"
	A6000      model.GPUModel = "A6000"
	RTX6000    model.GPUModel = "RTX6000"
	V100_32GB  model.GPUModel = "V100-32GB"
	V100       model.GPUModel = "V100"
	T4         model.GPUModel = "T4"
	P100       model.GPUModel = "P100"
	P4         model.GPUModel = "P4"
	M60        model.GPUModel = "M60"
	K80        model.GPUModel = "K80"
	MI355X     model.GPUModel = "MI355X"
	MI325X     model.GPUModel = "MI325X"
	MI300X     model.GPUModel = "MI300X"
	MI250X     model.GPUModel = "MI250X"
)

// gpuSpec is one row of the GPU table.
type gpuSpec struct {
	Model     model.GPUModel
	MemoryGiB int
	// Aliases are extra spellings, compared after normalisation (lower
	// case, spaces and underscores turned into '-').
	Aliases []string
}

// gpuTable lists every GPU model gpubroker can place. Memory is per GPU as
// the vendor sells it (what a job can allocate is slightly less).
func gpuTable() []gpuSpec {
	return []gpuSpec{
		{GB200, 186, []string{"gb200-nvl72", "gb200-nvl4", "gb200-186gb", "gb200-192gb"}},
		{GH200, 96, []string{"gh200-96gb", "gh200-480gb", "gh200-144gb", "gh200-sxm-96gb"}},
		{B300, 288, []string{"b300-288gb", "hgx-b300"}},
		{B200, 180, []string{"b200-180gb", "b200-192gb", "hgx-b200"}},
		{H200, 141, []string{"h200-141gb", "h200-nvl"}},
		{H100, 80, []string{"h100-80gb", "h100-mega", "h100-mega-80gb", "h100-80gb-mega", "h100-sxm5-80gb", "h100-80gb-pcie", "h100-pcie-80gb", "hgx-h100"}},
		{H100NVL, 94, []string{"h100nvl", "h100-94gb", "h100-nvl-94gb"}},
		{A100_80GB, 80, []string{"a100-80g", "a10080gb", "a100-80gb-pcie", "a100-pcie-80gb", "a100e"}},
		{A100, 40, []string{"a100-40gb", "a100-40g", "a10040gb", "a100-pcie-40gb", "a100-40gb-pcie"}},
		{L40S, 48, []string{"l40s-48gb"}},
		{L40, 48, []string{"l40-48gb"}},
		{L4, 24, []string{"l4-24gb"}},
		{A10G, 24, []string{"a10g-24gb"}},
		{A10, 24, []string{"a10-24gb"}},
		{A40, 48, []string{"a40-48gb"}},
		{RTXPro6000, 96, []string{"rtxpro6000", "rtx-pro6000", "rtxpro-6000", "rtx-pro-6000-blackwell", "rtx-6000-pro", "rtx6000-pro", "rtx-pro-6000-se"}},
		{A6000, 48, []string{"rtx-a6000", "rtxa6000", "a6000-48gb"}},
		{RTX6000, 24, []string{"quadro-rtx-6000", "rtx-6000", "quadro-rtx6000"}},
		{V100_32GB, 32, []string{"v100-32g", "v10032gb", "v100s", "v100s-32gb"}},
		{V100, 16, []string{"v100-16gb", "v100-16g"}},
		{T4, 16, []string{"t4-16gb"}},
		{P100, 16, []string{"p100-16gb"}},
		{P4, 8, []string{"p4-8gb"}},
		{M60, 8, []string{"m60-8gb"}},
		{K80, 12, []string{"k80-12gb"}},
		{MI355X, 288, []string{"instinct-mi355x", "mi355x-288gb"}},
		{MI325X, 256, []string{"instinct-mi325x", "mi325x-256gb"}},
		{MI300X, 192, []string{"mi300", "instinct-mi300x", "mi300x-192gb", "mi300x-oam"}},
		{MI250X, 128, []string{"instinct-mi250x"}},
	}
}

// gpuIndex is the GPU table in the shapes lookups need. It is built once
// when the package is loaded and only read afterwards, so concurrent use is
// safe and ParseGPU costs a map lookup rather than a table rebuild.
var gpuIndex = buildGPUIndex()

type gpuIndexes struct {
	// byName maps every normalised spelling to its model.
	byName map[string]model.GPUModel
	// names is byName's keys, sorted, for deterministic suggestions.
	names  []string
	memory map[model.GPUModel]int
	sorted []model.GPUModel
}

func buildGPUIndex() gpuIndexes {
	x := gpuIndexes{byName: map[string]model.GPUModel{}, memory: map[model.GPUModel]int{}}
	for _, s := range gpuTable() {
		n := normalize(string(s.Model))
		x.byName[n] = s.Model
		x.byName[strings.ReplaceAll(n, "-", "")] = s.Model
		for _, a := range s.Aliases {
			x.byName[normalize(a)] = s.Model
		}
		x.memory[s.Model] = s.MemoryGiB
		x.sorted = append(x.sorted, s.Model)
	}
	for k := range x.byName {
		x.names = append(x.names, k)
	}
	sort.Strings(x.names)
	sort.Slice(x.sorted, func(i, j int) bool { return x.sorted[i] < x.sorted[j] })
	return x
}

// GPUs returns every canonical GPU model, sorted by name. The caller owns
// the slice.
func GPUs() []model.GPUModel {
	return append([]model.GPUModel(nil), gpuIndex.sorted...)
}

// GPUMemoryGiB returns the memory of one GPU of model g, or 0 when g is not
// a canonical model.
func GPUMemoryGiB(g model.GPUModel) int {
	return gpuIndex.memory[g]
}

// UnknownGPUError says a GPU name matches no model gpubroker knows.
// Suggestion, when not empty, is the closest canonical name.
type UnknownGPUError struct {
	Name       string
	Suggestion model.GPUModel
}

func (e *UnknownGPUError) Error() string {
	if e.Suggestion != "" {
		return fmt.Sprintf("unknown GPU %q; did you mean %q?", e.Name, e.Suggestion)
	}
	names := make([]string, 0, 32)
	for _, g := range GPUs() {
		names = append(names, string(g))
	}
	return fmt.Sprintf("unknown GPU %q; use one of %s", e.Name, strings.Join(names, ", "))
}

// UnsupportedError says an accelerator exists but gpubroker cannot place
// work on it (TPUs, AWS Inferentia/Trainium, Intel Gaudi, ...).
type UnsupportedError struct {
	Name string
	// Family is the accelerator family in words, e.g. "Google TPU".
	Family string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("accelerator %q cannot be placed yet: gpubroker places NVIDIA/AMD GPUs only; %s is not supported (ask for a GPU such as H100 or A100-80GB instead)", e.Name, e.Family)
}

// unsupportedFamilies maps a prefix of a normalised name to the family it
// belongs to. Checked in order.
var unsupportedFamilies = []struct{ prefix, family string }{
	{"tpu", "Google TPU"},
	{"google-tpu", "Google TPU"},
	{"cloud-tpu", "Google TPU"},
	{"aws-inferentia", "AWS Inferentia"},
	{"inferentia", "AWS Inferentia"},
	{"inf1", "AWS Inferentia"},
	{"inf2", "AWS Inferentia"},
	{"aws-trainium", "AWS Trainium"},
	{"trainium", "AWS Trainium"},
	{"trn1", "AWS Trainium"},
	{"trn2", "AWS Trainium"},
	{"trn3", "AWS Trainium"},
	{"intel-gaudi", "Intel Gaudi"},
	{"habana-gaudi", "Intel Gaudi"},
	{"gaudi", "Intel Gaudi"},
	{"hl-205", "Intel Gaudi"},
	{"qualcomm", "Qualcomm Cloud AI"},
	{"cloud-ai-100", "Qualcomm Cloud AI"},
	{"ai-100", "Qualcomm Cloud AI"},
	{"maia", "Microsoft Maia"},
	{"amd-radeon", "AMD Radeon graphics GPU"},
	{"radeon", "AMD Radeon graphics GPU"},
	{"arm-mali", "Arm Mali graphics GPU"},
	{"mali", "Arm Mali graphics GPU"},
	{"nvidia-grid", "NVIDIA GRID graphics GPU"},
	{"grid-k520", "NVIDIA GRID graphics GPU"},
	{"k520", "NVIDIA GRID graphics GPU"},
	{"cerebras", "Cerebras"},
	{"groq", "Groq"},
}

// noiseTokens are words in vendor spellings that do not tell GPU models
// apart: vendor and brand names, form factors, memory technology.
var noiseTokens = map[string]bool{
	"nvidia": true, "tesla": true, "amd": true, "geforce": true,
	"sxm": true, "sxm2": true, "sxm3": true, "sxm4": true, "sxm5": true, "sxm6": true,
	"pcie": true, "hbm2": true, "hbm2e": true, "hbm3": true, "hbm3e": true,
	"gddr5": true, "gddr6": true, "gddr7": true,
	"blackwell": true, "hopper": true, "ampere": true, "ada": true, "lovelace": true, "volta": true, "turing": true,
	"gpu": true, "server": true, "edition": true, "tensor": true, "core": true, "datacenter": true,
}

// normalize lower-cases s, turns spaces, underscores and slashes into '-'
// and collapses runs of '-'.
func normalize(s string) string {
	var b strings.Builder
	dash := true // suppress leading '-'
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		switch {
		case r == ' ' || r == '_' || r == '-' || r == '/' || r == '\t':
			if !dash {
				b.WriteByte('-')
				dash = true
			}
		default:
			b.WriteRune(r)
			dash = false
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// stripNoise drops noise tokens from a normalised name.
func stripNoise(n string) string {
	toks := strings.Split(n, "-")
	kept := toks[:0]
	for _, t := range toks {
		if !noiseTokens[t] {
			kept = append(kept, t)
		}
	}
	return strings.Join(kept, "-")
}

// ParseGPU maps any common spelling of a GPU model to its canonical name:
// case-insensitive, and covering SkyPilot accelerator names ("A100-80GB"),
// Kubernetes nvidia.com/gpu.product labels ("NVIDIA-H100-80GB-HBM3"), GKE
// accelerator labels ("nvidia-tesla-t4") and provider price lists ("NVIDIA
// A100", "A100-40GB"). Errors are *UnsupportedError for accelerators that
// exist but cannot be placed, and *UnknownGPUError otherwise.
func ParseGPU(name string) (model.GPUModel, error) {
	n := normalize(name)
	if n == "" {
		return "", &UnknownGPUError{Name: name}
	}
	s := stripNoise(n)
	for _, u := range unsupportedFamilies {
		if strings.HasPrefix(n, u.prefix) || strings.HasPrefix(s, u.prefix) {
			return "", &UnsupportedError{Name: name, Family: u.family}
		}
	}
	idx := gpuIndex.byName
	if g, ok := idx[n]; ok {
		return g, nil
	}
	if g, ok := idx[s]; ok {
		return g, nil
	}
	// "instinct-mi300x" and similar vendor prefixes left after noise.
	if g, ok := idx[strings.TrimPrefix(s, "instinct-")]; ok {
		return g, nil
	}
	return "", &UnknownGPUError{Name: name, Suggestion: suggest(n)}
}

// suggest returns the model whose spelling is closest to n, when it is close
// enough to be a likely typo. Closeness is first by shape (glyphs read alike
// taken as one: letter O and digit 0, letters l and I and digit 1, so "A1OO"
// is 0 from A100 but 1 from A10), then by spelling, then by name.
func suggest(n string) model.GPUModel {
	idx := gpuIndex.byName
	sn := shape(n)
	best, bestS, bestD := model.GPUModel(""), math.MaxInt, math.MaxInt
	for _, k := range gpuIndex.names {
		s, d := editDistance(sn, shape(k)), editDistance(n, k)
		if s < bestS || (s == bestS && (d < bestD || (d == bestD && idx[k] < best))) {
			best, bestS, bestD = idx[k], s, d
		}
	}
	limit := 2
	if len(n) <= 3 {
		limit = 1
	}
	if bestS > limit {
		return ""
	}
	return best
}

// shape is a normalized name with the glyphs typed for one another made
// one: o for 0, l and i for 1.
func shape(n string) string {
	return strings.NewReplacer("o", "0", "l", "1", "i", "1").Replace(n)
}

// editDistance is the Levenshtein distance between a and b, in bytes. Inputs
// are capped so that a hostile name cannot cost quadratic time.
func editDistance(a, b string) int {
	const maxLen = 64
	if len(a) > maxLen {
		a = a[:maxLen]
	}
	if len(b) > maxLen {
		b = b[:maxLen]
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// CountError says the count part of an accelerator request ("H100:8") is
// not a usable whole number of GPUs.
type CountError struct {
	// Accelerator is the request as written, e.g. "T4:0.5".
	Accelerator string
	Msg         string
}

func (e *CountError) Error() string {
	return fmt.Sprintf("accelerators %q: %s", e.Accelerator, e.Msg)
}

// ParseAccelerator parses SkyPilot's accelerator syntax "<gpu>[:<count>]",
// e.g. "H100:8" or "h100" (count 1). The count must be a whole number from 1
// to model.MaxGPUsPerNode ("8.0" is accepted as 8). GPU name errors are
// those of ParseGPU; count errors are *CountError.
func ParseAccelerator(s string) (model.GPUModel, int, error) {
	name, count, hasCount := strings.Cut(s, ":")
	g, err := ParseGPU(name)
	if err != nil {
		return "", 0, err
	}
	if !hasCount {
		return g, 1, nil
	}
	n, err := parseCount(strings.TrimSpace(count))
	if err != nil {
		msg := err.Error()
		if errors.Is(err, errFractional) {
			msg = fmt.Sprintf("fractional GPUs are not supported yet; ask for whole GPUs (%s:1)", g)
		}
		return "", 0, &CountError{Accelerator: s, Msg: msg}
	}
	return g, n, nil
}

// errFractional marks a count between 0 and 1; ParseAccelerator words the
// message since it knows the GPU.
var errFractional = errors.New("fractional GPUs are not supported yet; ask for whole GPUs")

// parseCount reads a GPU count: a whole number in [1, MaxGPUsPerNode],
// written as an integer or a float with no fractional part.
func parseCount(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("the GPU count is missing after ':'; write e.g. H100:8")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("GPU count %q is not a number; write e.g. H100:8", s)
	}
	if f <= 0 {
		return 0, fmt.Errorf("GPU count %s is out of range; ask for 1 to %d GPUs per node", s, model.MaxGPUsPerNode)
	}
	if f != math.Trunc(f) {
		if f < 1 {
			return 0, errFractional
		}
		return 0, fmt.Errorf("GPU count %s is not a whole number; ask for whole GPUs", s)
	}
	if f > model.MaxGPUsPerNode {
		return 0, fmt.Errorf("GPU count %s is out of range; a node has at most %d GPUs (use num_nodes for more)", s, model.MaxGPUsPerNode)
	}
	return int(f), nil
}
