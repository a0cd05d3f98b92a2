package catalog

import (
	"bytes"
	"embed"
	"fmt"
	"io"

	"gpubroker/internal/model"
)

// builtinFS holds the built-in price list; builtin/offers.csv says where
// each provider's prices come from and when they were read.
//
//go:embed builtin/offers.csv
var builtinFS embed.FS

// Builtin returns the catalog compiled into the binary: AWS, Azure, GCP,
// OCI, Lambda, CoreWeave and Nebius list prices as published around
// 2025-2026. Each call parses the embedded data afresh, so callers own the
// result and may change it. The data is checked by the package's tests; a
// malformed embedded file is a build defect and panics.
func Builtin() *Catalog {
	c, err := loadBuiltin()
	if err != nil {
		panic("catalog: built-in price list is malformed: " + err.Error())
	}
	return c
}

func loadBuiltin() (*Catalog, error) {
	data, err := builtinFS.ReadFile("builtin/offers.csv")
	if err != nil {
		return nil, err
	}
	c, err := loadOffersCSV(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if len(c.Skipped) > 0 {
		s := c.Skipped[0]
		return nil, &ParseError{Line: s.Line, Msg: fmt.Sprintf("row for %s %s skipped: %s", s.Provider, s.InstanceType, s.Reason)}
	}
	return c, nil
}

// loadOffersCSV reads gpubroker's own catalog format, the one of
// builtin/offers.csv: provider, instance_type, gpu, gpu_count, vcpus,
// memory_gib, interconnect, region, zone, ondemand, spot.
func loadOffersCSV(r io.Reader) (*Catalog, error) {
	fn := func(t *table) (Offer, string, error) {
		p, err := t.requireText("provider")
		if err != nil {
			return Offer{}, "", err
		}
		it, err := t.requireText("instance_type")
		if err != nil {
			return Offer{}, "", err
		}
		g, n, skip, err := t.accelerator("gpu", "gpu_count")
		if err != nil || skip != "" {
			return Offer{}, skip, err
		}
		region, err := t.requireText("region")
		if err != nil {
			return Offer{}, "", err
		}
		o := Offer{Provider: model.Provider(p), InstanceType: it, GPU: g, GPUCount: n, GPUMemoryGiB: GPUMemoryGiB(g),
			Interconnect: t.get("interconnect"), Region: region, Zone: t.get("zone")}
		var ok bool
		if o.OnDemand, ok, err = t.number("ondemand"); err != nil {
			return Offer{}, "", err
		} else if !ok {
			return Offer{}, "", t.errorf("ondemand", "missing")
		}
		if o.Spot, _, err = t.number("spot"); err != nil {
			return Offer{}, "", err
		}
		if o.VCPUs, _, err = t.number("vcpus"); err != nil {
			return Offer{}, "", err
		}
		if o.MemoryGiB, _, err = t.number("memory_gib"); err != nil {
			return Offer{}, "", err
		}
		return o, "", nil
	}
	return loadTable(r, "", fn, "instance_type", "gpu",
		"provider", "instance_type", "gpu", "gpu_count", "region", "ondemand")
}
