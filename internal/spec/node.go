package spec

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

// parser collects errors and warnings for one file and remembers the line
// of every field path it visits, so errors found later by model validation
// can still point at a line.
type parser struct {
	file  string
	errs  Errors
	warns []Warning
	lines map[string]int
	// budget bounds the work alias expansion can cause (a "billion laughs"
	// file must not hang the parser).
	budget int
	// blocked holds paths whose model validation errors would only echo a
	// parse error already reported there.
	blocked map[string]bool
	// cat is the catalog instance types are looked up in; tasks load the
	// built-in one on first use.
	cat *catalog.Catalog
	// allowSpot is x-gpubroker.allow_spot of the task being read.
	allowSpot bool
}

func newParser(file string) *parser {
	return &parser{file: file, lines: map[string]int{}, blocked: map[string]bool{}, budget: 1 << 20}
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(n *yaml.Node, path, format string, args ...any) {
	p.warns = append(p.warns, Warning{File: p.file, Line: line(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// see records where path is written.
func (p *parser) see(path string, n *yaml.Node) {
	if _, ok := p.lines[path]; !ok && n != nil {
		p.lines[path] = n.Line
	}
}

// block suppresses model validation errors at or under path.
func (p *parser) block(path string) { p.blocked[path] = true }

// lineOf finds the line of path, or of its nearest recorded parent.
func (p *parser) lineOf(path string) int {
	for path != "" {
		if l, ok := p.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return p.lines[""]
}

// mergeModel turns model validation errors into located errors, skipping
// any path already reported by the parser (one problem, one message).
func (p *parser) mergeModel(prefix string, err error) {
	if err == nil {
		return
	}
	var list model.FieldErrors
	if !errors.As(err, &list) {
		var one *model.FieldError
		if errors.As(err, &one) {
			list = model.FieldErrors{one}
		} else {
			list = model.FieldErrors{{Msg: err.Error()}}
		}
	}
	// A field the parser already rejected, or anything under a path the
	// parser blocked, is not reported again: model errors there are echoes
	// of the first (a pool whose instance type is unknown has no GPU).
	reported := map[string]bool{}
	for _, e := range p.errs {
		reported[e.Path] = true
	}
	echoes := func(path string) bool {
		if reported[path] {
			return true
		}
		for b := range p.blocked {
			if path == b || strings.HasPrefix(path, b+".") || strings.HasPrefix(path, b+"[") {
				return true
			}
		}
		return false
	}
	for _, fe := range list {
		path := fe.Path
		if prefix != "" && path != "" {
			path = prefix + "." + path
		} else if prefix != "" {
			path = prefix
		}
		if echoes(path) {
			continue
		}
		p.errs = append(p.errs, &Error{File: p.file, Line: p.lineOf(path), Path: path, Msg: fe.Msg})
	}
}

// documents splits a (possibly multi-document) YAML stream into its
// documents' root nodes. A syntax error is returned located.
func (p *parser) documents(data []byte) []*yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return docs
		}
		if err != nil {
			p.syntaxError(err)
			return docs
		}
		if len(doc.Content) == 0 {
			continue
		}
		docs = append(docs, doc.Content[0])
	}
}

// syntaxError reports a YAML error, lifting "yaml: line N: msg" into the
// Error's Line.
func (p *parser) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	ln := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if v, err := strconv.Atoi(rest[:i]); err == nil {
				ln = v
				msg = strings.TrimSpace(rest[i+1:])
				// yaml.v3 reports parser errors at the 0-based line of the
				// block being parsed; name that block's 1-based line.
				if parserError(msg) {
					ln++
					msg += " (in the block starting on this line)"
				}
			}
		}
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: ln, Msg: "not valid YAML: " + msg})
}

func parserError(msg string) bool {
	if !strings.HasPrefix(msg, "did not find expected") {
		return false
	}
	for _, scanner := range []string{"alphabetic", "hexdecimal", "comment or line break", "whitespace"} {
		if strings.Contains(msg, scanner) {
			return false
		}
	}
	return true
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

type field struct {
	key   string
	keyN  *yaml.Node
	value *yaml.Node
}

// fields returns the key/value pairs of a mapping in file order, with merge
// keys (<<) expanded. A non-mapping is an error at path.
func (p *parser) fields(n *yaml.Node, path, what string) []field {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "expected %s, got %s", what, describe(n))
		return nil
	}
	var out []field
	seen := map[string]bool{}
	p.collect(n, path, &out, seen, 0)
	return out
}

func (p *parser) collect(n *yaml.Node, path string, out *[]field, seen map[string]bool, depth int) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		p.budget--
		if p.budget < 0 {
			return
		}
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, path, "a key must be a plain name, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" || k.Value == "<<" && k.Style == 0 {
			merges = append(merges, v)
			continue
		}
		if seen[k.Value] {
			if depth == 0 {
				p.errorf(k, join(path, k.Value), "given twice; keep one")
			}
			continue
		}
		seen[k.Value] = true
		*out = append(*out, field{key: k.Value, keyN: k, value: v})
	}
	if depth > 8 {
		return
	}
	for _, m := range merges {
		m = resolve(m)
		var maps []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			maps = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, c := range m.Content {
				maps = append(maps, resolve(c))
			}
		}
		for _, mm := range maps {
			if mm != nil && mm.Kind == yaml.MappingNode {
				p.collect(mm, path, out, seen, depth+1)
			}
		}
	}
}

// items returns the elements of a sequence; a single non-null value is
// taken as a one-element list when single is true.
func (p *parser) items(n *yaml.Node, path, what string, single bool) []*yaml.Node {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind == yaml.SequenceNode {
		out := make([]*yaml.Node, 0, len(n.Content))
		for _, c := range n.Content {
			p.budget--
			if p.budget < 0 {
				break
			}
			out = append(out, resolve(c))
		}
		return out
	}
	if single && n.Kind == yaml.ScalarNode {
		return []*yaml.Node{n}
	}
	p.errorf(n, path, "expected %s, got %s", what, describe(n))
	return nil
}

func describe(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unexpected node"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// str reads a scalar as a string (numbers and bools as written).
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, path, "expected a single value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) integer(n *yaml.Node, path, hint string) (int, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, path, "expected a whole number, got %s; %s", describe(n), hint)
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil {
		// A whole number in float form (1e3, 8.0) is one; it gets the
		// same range check as any other.
		f, ferr := strconv.ParseFloat(n.Value, 64)
		if ferr != nil || f != math.Trunc(f) || math.IsInf(f, 0) {
			p.errorf(n, path, "expected a whole number, got %q; %s", n.Value, hint)
			return 0, false
		}
		if f > math.MaxInt32 || f < math.MinInt32 {
			p.errorf(n, path, "%s is too large; %s", n.Value, hint)
			return 0, false
		}
		v = int64(f)
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		p.errorf(n, path, "%d is too large; %s", v, hint)
		return 0, false
	}
	return int(v), true
}

func (p *parser) number(n *yaml.Node, path, hint string) (float64, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, path, "expected a number, got %s; %s", describe(n), hint)
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.errorf(n, path, "expected a number, got %q; %s", n.Value, hint)
		return 0, false
	}
	return v, true
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			return true, true
		case "false", "no", "off":
			return false, true
		}
	}
	p.errorf(n, path, "expected true or false, got %s", describe(n))
	return false, false
}

func (p *parser) stringList(n *yaml.Node, path string) []string {
	var out []string
	for i, c := range p.items(n, path, "a list of names", true) {
		if s, ok := p.str(c, index(path, i)); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// unknown reports a key that is not in the schema as a warning, with the
// closest known key as a suggestion.
func (p *parser) unknown(f field, path string, known []string) {
	msg := fmt.Sprintf("unknown field %q is ignored", f.key)
	if s := suggest(f.key, known); s != "" {
		msg = fmt.Sprintf("unknown field %q is ignored; did you mean %q?", f.key, s)
	}
	p.warnf(f.keyN, join(path, f.key), "%s", msg)
}

// suggest returns the known word closest to s, if close enough to be a
// likely typo.
func suggest(s string, known []string) string {
	best, bestD := "", 1<<30
	ls := strings.ToLower(s)
	for _, k := range known {
		d := editDistance(ls, strings.ToLower(k))
		if d < bestD {
			best, bestD = k, d
		}
	}
	if bestD <= 2 || (bestD <= 3 && len(s) >= 8) {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sortedWarnings returns the warnings in file order (stable within a line).
func (p *parser) sortedWarnings() []Warning {
	sort.SliceStable(p.warns, func(i, j int) bool { return p.warns[i].Line < p.warns[j].Line })
	return p.warns
}

// sortedErrors returns the errors in file order (stable within a line);
// errors with no line stay last.
func (p *parser) sortedErrors() Errors {
	key := func(e *Error) int {
		if e.Line == 0 {
			return 1 << 30
		}
		return e.Line
	}
	sort.SliceStable(p.errs, func(i, j int) bool { return key(p.errs[i]) < key(p.errs[j]) })
	return p.errs
}
