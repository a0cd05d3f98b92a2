package trace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Canonical file names inside a trace directory (as laid out under
// data/traces/).
const (
	phillyFile     = "philly_jobs.csv"
	openbFile      = "openb_pod_list_default.csv"
	itpRawDir      = "raw"
	itpDeadlineDir = "elasticflow-augmented"
	itpGlob        = "cluster*.csv"
)

// Detect tells a trace's kind from its first bytes (the header row), or,
// when head says nothing, from the file name in path. A header with ITP's
// columns and a deadline column is ITPDeadline.
func Detect(path string, head []byte) (Kind, error) {
	line, _, _ := strings.Cut(string(head), "\n")
	line = strings.TrimPrefix(strings.TrimSpace(line), "\ufeff")
	set := map[string]bool{}
	for _, h := range strings.Split(line, ",") {
		set[strings.ToLower(strings.Trim(strings.TrimSpace(h), `"`))] = true
	}
	hasAll := func(names ...string) bool {
		for _, n := range names {
			if !set[n] {
				return false
			}
		}
		return true
	}
	switch {
	case hasAll(phillyFormat.required...):
		return Philly, nil
	case hasAll(itpDeadlineFormat.required...):
		return ITPDeadline, nil
	case hasAll(itpFormat.required...):
		return ITP, nil
	case hasAll("name", "num_gpu", "gpu_milli"):
		return Openb, nil
	}
	base := filepath.Base(path)
	switch {
	case base == phillyFile:
		return Philly, nil
	case strings.HasPrefix(base, "openb_pod_list"):
		return Openb, nil
	}
	return "", fmt.Errorf("%w: %s: header %q matches no kind (%s)", ErrUnknownFormat, path, line, kindList())
}

// Open reads a trace named by spec: "KIND:PATH" or just "PATH" (the kind is
// then detected). PATH is a file or a directory; in a directory the
// canonical file is read:
//
//	philly        DIR/philly_jobs.csv
//	openb         DIR/openb_pod_list_default.csv
//	itp           DIR/raw/cluster*.csv, or DIR/cluster*.csv
//	itp-deadline  DIR/elasticflow-augmented/cluster*.csv, or DIR/cluster*.csv
//
// Several ITP files are merged into one Result, each file's t=0 mapped to
// Options.Start, each file's jobs in team "itp-<file name>" (e.g.
// itp-cluster04) unless Options.Team is set. Malformed.File names the file.
func Open(spec string, opt Options) (*Result, error) {
	kind, path, err := splitSpec(spec)
	if err != nil {
		return nil, err
	}
	files, kind, err := locate(kind, path)
	if err != nil {
		return nil, err
	}
	o, err := resolve(kind, opt)
	if err != nil {
		return nil, err
	}
	ps := make([]*parsed, 0, len(files))
	for _, f := range files {
		fo := o
		if opt.Team == "" && (kind == ITP || kind == ITPDeadline) {
			fo.Team = cleanName("itp-" + strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)))
		}
		p, err := parseFile(kind, f, fo)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return finish(kind, ps, o), nil
}

func parseFile(kind Kind, path string, o Options) (*parsed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	p, err := parse(kind, bufio.NewReaderSize(f, 1<<16), o)
	if err != nil {
		return nil, fmt.Errorf("trace: %s: %w", path, err)
	}
	p.file = path
	return p, nil
}

// splitSpec splits "KIND:PATH". A prefix before ':' is a kind only when the
// whole spec is not an existing path and the prefix has no path separator.
func splitSpec(spec string) (Kind, string, error) {
	i := strings.Index(spec, ":")
	if i <= 0 || strings.ContainsAny(spec[:i], `/\.`) {
		return "", spec, nil
	}
	if _, err := os.Stat(spec); err == nil {
		return "", spec, nil
	}
	k := Kind(strings.ToLower(spec[:i]))
	if !k.Valid() {
		return "", "", fmt.Errorf("%w %q in %q; use one of %s", ErrUnknownKind, spec[:i], spec, kindList())
	}
	return k, spec[i+1:], nil
}

// locate finds the files to read and the kind (detected when kind is "").
func locate(kind Kind, path string) ([]string, Kind, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("trace: %w", err)
	}
	if !st.IsDir() {
		if kind == "" {
			if kind, err = detectFile(path); err != nil {
				return nil, "", err
			}
		}
		return []string{path}, kind, nil
	}
	exists := func(p string) bool { fi, err := os.Stat(p); return err == nil && !fi.IsDir() }
	clusters := func(dir string) []string {
		m, _ := filepath.Glob(filepath.Join(dir, itpGlob))
		slices.Sort(m)
		return m
	}
	switch kind {
	case Philly:
		if p := filepath.Join(path, phillyFile); exists(p) {
			return []string{p}, kind, nil
		}
	case Openb:
		if p := filepath.Join(path, openbFile); exists(p) {
			return []string{p}, kind, nil
		}
	case ITP, ITPDeadline:
		sub := itpRawDir
		if kind == ITPDeadline {
			sub = itpDeadlineDir
		}
		if m := clusters(filepath.Join(path, sub)); len(m) > 0 {
			return m, kind, nil
		}
		if m := clusters(path); len(m) > 0 {
			return m, kind, nil
		}
	case "":
		if p := filepath.Join(path, phillyFile); exists(p) {
			return []string{p}, Philly, nil
		}
		if p := filepath.Join(path, openbFile); exists(p) {
			return []string{p}, Openb, nil
		}
		if m := clusters(filepath.Join(path, itpRawDir)); len(m) > 0 {
			return m, ITP, nil
		}
		if m := clusters(path); len(m) > 0 {
			k, err := detectFile(m[0])
			return m, k, err
		}
		return nil, "", fmt.Errorf("%w: directory %s holds none of %s, %s, %s/%s, %s", ErrUnknownFormat, path, phillyFile, openbFile, itpRawDir, itpGlob, itpGlob)
	}
	return nil, "", fmt.Errorf("%w: directory %s holds no %s trace file", ErrUnknownFormat, path, kind)
}

func detectFile(path string) (Kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("trace: %w", err)
	}
	return Detect(path, head[:n])
}
