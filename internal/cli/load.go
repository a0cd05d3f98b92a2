package cli

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
)

// Input loading shared by the commands that read task, fleet and catalog
// files. Errors name the file (and for parse errors the line and field);
// warnings go to stderr as they are found.

// loadCatalog returns the built-in catalog with each extra SkyPilot catalog
// CSV merged over it. providers pairs up with files; when no provider is
// given at all, each file's provider is its directory's name, as in
// SkyPilot's catalog layout (.../aws/vms.csv).
func (env *Env) loadCatalog(files, providers []string) (*catalog.Catalog, error) {
	cat := catalog.Builtin()
	if len(providers) != 0 && len(providers) != len(files) {
		return nil, fmt.Errorf("--catalog-provider: give one per --catalog (%d catalog files, %d providers)", len(files), len(providers))
	}
	for i, file := range files {
		var p model.Provider
		if len(providers) != 0 {
			p = model.Provider(strings.ToLower(strings.TrimSpace(providers[i])))
		} else {
			p = model.Provider(strings.ToLower(filepath.Base(filepath.Dir(file))))
		}
		if p == "" || p == "." || p == "/" {
			return nil, fmt.Errorf("--catalog-provider: say which provider %s prices (e.g. --catalog-provider aws)", file)
		}
		data, err := env.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--catalog: %w", err)
		}
		extra, err := catalog.LoadSkyPilotCSV(bytes.NewReader(data), p)
		if err != nil {
			return nil, fmt.Errorf("--catalog %s: %w", file, err)
		}
		cat.Merge(extra)
	}
	return cat, nil
}

// loadFleet parses a fleet file against cat.
func (env *Env) loadFleet(file string, cat *catalog.Catalog) (*model.Fleet, error) {
	data, err := env.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--fleet: %w", err)
	}
	fleet, warnings, err := spec.ParseFleet(data, file, cat)
	env.warn(warnings)
	if err != nil {
		return nil, err
	}
	return fleet, nil
}

// loadTask parses a task file.
func (env *Env) loadTask(file string) (*spec.Task, error) {
	data, err := env.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("task file: %w", err)
	}
	task, err := spec.ParseTask(data, file)
	if task != nil {
		env.warn(task.Warnings) // printed before any error, as the parser found them
	}
	if err != nil {
		return nil, err
	}
	return task, nil
}

func (env *Env) warn(ws []spec.Warning) {
	for _, w := range ws {
		fmt.Fprintf(env.Stderr, "warning: %s\n", w.String())
	}
}
