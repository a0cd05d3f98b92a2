package catalog

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"

	"gpubroker/internal/model"
)

// table reads a CSV file by header name, so that column order does not
// matter. Lines starting with '#' are comments.
type table struct {
	r    *csv.Reader
	cols map[string]int
	rec  []string
	line int
}

func newTable(r io.Reader, required ...string) (*table, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &ParseError{Line: 1, Msg: "empty input; expected a CSV header row"}
	}
	if err != nil {
		return nil, csvError(err)
	}
	t := &table{r: cr, cols: map[string]int{}}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := t.cols[h]; !dup {
			t.cols[h] = i
		}
	}
	line, _ := cr.FieldPos(0)
	var missing []string
	for _, c := range required {
		if _, ok := t.cols[strings.ToLower(c)]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, &ParseError{Line: line, Msg: fmt.Sprintf("header lacks column(s) %s", strings.Join(missing, ", "))}
	}
	return t, nil
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{Line: pe.Line, Msg: pe.Err.Error()}
	}
	return err
}

// next reads the next row; it returns false at the end of input.
func (t *table) next() (bool, error) {
	rec, err := t.r.Read()
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, csvError(err)
	}
	t.rec = rec
	t.line, _ = t.r.FieldPos(0)
	return true, nil
}

// get returns the trimmed field of col, "" when the column or field is
// absent.
func (t *table) get(col string) string {
	i, ok := t.cols[strings.ToLower(col)]
	if !ok || i >= len(t.rec) {
		return ""
	}
	return strings.TrimSpace(t.rec[i])
}

func (t *table) errorf(col, format string, args ...any) error {
	return &ParseError{Line: t.line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

// number reads a non-negative finite number; empty gives 0 and ok false.
// Fields missing from a short row read as empty.
func (t *table) number(col string) (v float64, ok bool, err error) {
	s := t.get(col)
	if s == "" {
		return 0, false, nil
	}
	v, perr := strconv.ParseFloat(s, 64)
	if perr != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, t.errorf(col, "%q is not a number", s)
	}
	if v < 0 {
		return 0, false, t.errorf(col, "%q is negative", s)
	}
	return v, true, nil
}

// leadingNumber reads the number at the start of text such as "768 GB".
func leadingNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	end := 0
	for end < len(s) && (s[end] == '.' || unicode.IsDigit(rune(s[end]))) {
		end++
	}
	v, err := strconv.ParseFloat(s[:end], 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// accelerator resolves a row's GPU name and count. A non-empty skip is why
// the row is left out; err is for rows that are malformed.
func (t *table) accelerator(nameCol, countCol string) (g model.GPUModel, n int, skip string, err error) {
	name := t.get(nameCol)
	if name == "" {
		return "", 0, "no accelerator (CPU-only row)", nil
	}
	g, perr := ParseGPU(name)
	if perr != nil {
		return "", 0, perr.Error(), nil
	}
	cs := t.get(countCol)
	if cs == "" {
		return "", 0, "", t.errorf(countCol, "missing GPU count")
	}
	f, err := strconv.ParseFloat(cs, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return "", 0, "", t.errorf(countCol, "%q is not a number", cs)
	}
	switch {
	case f <= 0:
		return "", 0, fmt.Sprintf("GPU count %s is not positive", cs), nil
	case f != math.Trunc(f):
		return "", 0, fmt.Sprintf("fractional GPU count %s (GPU slices are not supported yet)", cs), nil
	case f > 1e6:
		return "", 0, fmt.Sprintf("GPU count %s is implausibly large", cs), nil
	}
	return g, int(f), "", nil
}

// rowFn turns the current row into an offer, or says why it is skipped.
type rowFn func(t *table) (o Offer, skip string, err error)

func loadTable(r io.Reader, provider model.Provider, fn rowFn, typeCol, accelCol string, required ...string) (*Catalog, error) {
	t, err := newTable(r, required...)
	if err != nil {
		return nil, err
	}
	c := &Catalog{}
	for {
		more, err := t.next()
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		o, skip, err := fn(t)
		if err != nil {
			return nil, err
		}
		if skip != "" {
			c.Skipped = append(c.Skipped, SkippedRow{Provider: provider, Line: t.line, InstanceType: t.get(typeCol), Accelerator: t.get(accelCol), Reason: skip})
			continue
		}
		c.Offers = append(c.Offers, o)
	}
	c.Sort()
	return c, nil
}

// requireText returns a required text field or an error naming it.
func (t *table) requireText(col string) (string, error) {
	s := t.get(col)
	if s == "" {
		return "", t.errorf(col, "missing")
	}
	return s, nil
}

// LoadSkyPilotCSV reads a SkyPilot catalog file (schema v6/v7:
// InstanceType, AcceleratorName, AcceleratorCount, vCPUs, MemoryGiB,
// GpuInfo, Price, SpotPrice, Region and optionally AvailabilityZone, in any
// order) as provider's offers. Rows without a GPU, with an accelerator
// gpubroker cannot place (TPU, Inferentia, unknown names), a fractional
// count, no instance type (GPUs priced alone) or no on-demand price are
// recorded in Catalog.Skipped with the reason. Malformed rows stop the load with a *ParseError naming the line.
// GpuInfo is not read: upstream files disagree on what its memory means,
// and the canonical model's memory is used instead.
func LoadSkyPilotCSV(r io.Reader, provider model.Provider) (*Catalog, error) {
	if provider == "" || strings.ToLower(string(provider)) != string(provider) {
		return nil, fmt.Errorf("provider %q: give the lower-case provider the catalog is for (e.g. aws, lambda)", provider)
	}
	fn := func(t *table) (Offer, string, error) {
		g, n, skip, err := t.accelerator("AcceleratorName", "AcceleratorCount")
		if err != nil || skip != "" {
			return Offer{}, skip, err
		}
		it := t.get("InstanceType")
		if it == "" {
			// SkyPilot's GCP catalog prices attachable GPUs on their own.
			return Offer{}, "no instance type (GPU priced alone, to attach to a host VM)", nil
		}
		region, err := t.requireText("Region")
		if err != nil {
			return Offer{}, "", err
		}
		o := Offer{Provider: provider, InstanceType: it, GPU: g, GPUCount: n, GPUMemoryGiB: GPUMemoryGiB(g), Region: region, Zone: t.get("AvailabilityZone")}
		skip, err = t.pricesAndShape(&o, "Price", "SpotPrice")
		return o, skip, err
	}
	return loadTable(r, provider, fn, "InstanceType", "AcceleratorName",
		"InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "Region")
}

// pricesAndShape fills an offer's on-demand and spot prices and its vCPUs
// and memory from the named columns; a row with no on-demand price is
// skipped with that reason.
func (t *table) pricesAndShape(o *Offer, onDemand, spot string) (skip string, err error) {
	var ok bool
	if o.OnDemand, ok, err = t.number(onDemand); err != nil {
		return "", err
	} else if !ok {
		return "no on-demand price in this region", nil
	}
	if o.Spot, _, err = t.number(spot); err != nil {
		return "", err
	}
	if o.VCPUs, _, err = t.number("vCPUs"); err != nil {
		return "", err
	}
	if o.MemoryGiB, _, err = t.number("MemoryGiB"); err != nil {
		return "", err
	}
	return "", nil
}

// LoadAWSCSV reads the AWS EC2 GPU instance price dump described in
// shared/data/catalogs/README.md (columns InstanceType, GpuModel, GpuCount,
// GpuMemory, vCPUs, Memory, Network, Region, OnDemandUSDPerHour, ...) as
// provider "aws" offers without spot prices. "NVIDIA A100" and "NVIDIA V100"
// are split into their 40/80 GB and 16/32 GB models by the GpuMemory column.
// Skipped rows are recorded as for LoadSkyPilotCSV.
func LoadAWSCSV(r io.Reader) (*Catalog, error) {
	const provider = model.Provider("aws")
	fn := func(t *table) (Offer, string, error) {
		it, err := t.requireText("InstanceType")
		if err != nil {
			return Offer{}, "", err
		}
		g, n, skip, err := t.accelerator("GpuModel", "GpuCount")
		if err != nil || skip != "" {
			return Offer{}, skip, err
		}
		g = refineByMemory(g, n, t.get("GpuMemory"))
		region, err := t.requireText("Region")
		if err != nil {
			return Offer{}, "", err
		}
		o := Offer{Provider: provider, InstanceType: it, GPU: g, GPUCount: n, GPUMemoryGiB: GPUMemoryGiB(g), Region: region, Interconnect: t.get("Network")}
		var ok bool
		if o.OnDemand, ok, err = t.number("OnDemandUSDPerHour"); err != nil {
			return Offer{}, "", err
		} else if !ok {
			return Offer{}, "no on-demand price in this region", nil
		}
		if o.VCPUs, _, err = t.number("vCPUs"); err != nil {
			return Offer{}, "", err
		}
		if mem := t.get("Memory"); mem != "" {
			v, ok := leadingNumber(mem)
			if !ok {
				return Offer{}, "", t.errorf("Memory", "%q does not start with a number", mem)
			}
			o.MemoryGiB = v
		}
		return o, "", nil
	}
	return loadTable(r, provider, fn, "InstanceType", "GpuModel",
		"InstanceType", "GpuModel", "GpuCount", "Region", "OnDemandUSDPerHour")
}

// refineByMemory picks the larger-memory variant of a GPU when a price list
// names only the family. mem is either per GPU ("16 GB HBM2") or for the
// whole instance ("640 GB HBM2e"), depending on the row.
func refineByMemory(g model.GPUModel, count int, mem string) model.GPUModel {
	total, ok := leadingNumber(mem)
	if !ok || total <= 0 || count <= 0 {
		return g
	}
	per := total
	if count > 1 && total >= float64(count*GPUMemoryGiB(g))*0.9 {
		per = total / float64(count)
	}
	switch {
	case g == A100 && per >= 70:
		return A100_80GB
	case g == V100 && per >= 30:
		return V100_32GB
	}
	return g
}

// LoadGCPCSV reads the GCP GPU machine type price dump described in
// shared/data/catalogs/README.md (columns MachineType, GpuModel, GpuCount,
// vCPUs, MemoryGiB, Region, OnDemandUSDPerHour, SpotUSDPerHour, ...) as
// provider "gcp" offers. Skipped rows are recorded as for LoadSkyPilotCSV.
func LoadGCPCSV(r io.Reader) (*Catalog, error) {
	const provider = model.Provider("gcp")
	fn := func(t *table) (Offer, string, error) {
		it, err := t.requireText("MachineType")
		if err != nil {
			return Offer{}, "", err
		}
		g, n, skip, err := t.accelerator("GpuModel", "GpuCount")
		if err != nil || skip != "" {
			return Offer{}, skip, err
		}
		region, err := t.requireText("Region")
		if err != nil {
			return Offer{}, "", err
		}
		o := Offer{Provider: provider, InstanceType: it, GPU: g, GPUCount: n, GPUMemoryGiB: GPUMemoryGiB(g), Region: region}
		skip, err = t.pricesAndShape(&o, "OnDemandUSDPerHour", "SpotUSDPerHour")
		return o, skip, err
	}
	return loadTable(r, provider, fn, "MachineType", "GpuModel",
		"MachineType", "GpuModel", "GpuCount", "Region", "OnDemandUSDPerHour")
}
