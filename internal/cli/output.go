package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Output shared by the API commands: -o table|wide|json|yaml. JSON and
// YAML print the API's own documents, with the API's field names; YAML is
// the same document as JSON, key order kept.

// addOutputFlag registers -o with the formats a command supports; the
// first is the default.
func addOutputFlag(cmd *cobra.Command, o *string, formats ...string) {
	*o = formats[0]
	cmd.Flags().StringVarP(o, "output", "o", formats[0], "output `FORMAT`: "+strings.Join(formats, ", "))
}

// checkOutput is a usage error when o is not among formats.
func checkOutput(cmd *cobra.Command, o string, formats ...string) error {
	for _, f := range formats {
		if o == f {
			return nil
		}
	}
	return usageError(cmd, "--output: unknown format %q; use %s", o, strings.Join(formats, ", "))
}

// writeDoc prints v as JSON or YAML; ok is false for table formats.
func writeDoc(w io.Writer, format string, v any) (ok bool, err error) {
	switch format {
	case "json":
		return true, writeJSON(w, v)
	case "yaml":
		return true, writeYAML(w, v)
	}
	return false, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeYAML prints v's JSON document as block-style YAML. JSON is YAML,
// so the document is parsed into a node tree (keeping key order) and
// printed again without the flow style.
func writeYAML(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, "\n") {
		n.Style = yaml.LiteralStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// age is a duration as squeue and kubectl show it: 45s, 12m, 3h, 5d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}

// splitList reads a comma-separated flag value, trimmed, without empties.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
