package report

import (
	"slices"
	"sort"
)

// Fixed colours, so a provider looks the same in every chart and every report.
var providerColors = map[string]string{
	"aws":       "#e07b00",
	"azure":     "#0a6fc2",
	"gcp":       "#1e8e3e",
	"oci":       "#c0392b",
	"coreweave": "#7b3fe4",
	"lambda":    "#8c564b",
	"onprem":    "#4d5966",
}

// providerOrder is the display order of well-known providers; others follow
// alphabetically.
var providerOrder = []string{"aws", "azure", "gcp", "oci", "coreweave", "lambda", "onprem"}

// extraColors colour providers, price classes and policies not named above,
// handed out in sorted-name order so the choice is deterministic.
var extraColors = []string{"#17a2b8", "#b5a300", "#d63384", "#6c757d", "#20c997", "#6610f2", "#fd7e14", "#343a40"}

var priceClassColors = map[string]string{
	"committed": "#1f4e79",
	"reserved":  "#5b9bd5",
	"ondemand":  "#f0a030",
	"spot":      "#3bb273",
}

var priceClassOrder = []string{"committed", "reserved", "ondemand", "spot"}

// policyColors tell policies apart in the per-policy charts (Okabe-Ito,
// readable by colour-blind people); beyond them, dashes vary too.
var policyColors = []string{"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"}

// palette assigns a colour to each name: fixed ones first, then extras in
// the names' sorted order.
type palette struct {
	order  []string
	colors map[string]string
}

func newPalette(names map[string]bool, fixed map[string]string, fixedOrder []string) palette {
	p := palette{colors: map[string]string{}}
	for _, n := range fixedOrder {
		if names[n] {
			p.order = append(p.order, n)
			p.colors[n] = fixed[n]
		}
	}
	var rest []string
	for n := range names {
		if !slices.Contains(fixedOrder, n) {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for i, n := range rest {
		p.order = append(p.order, n)
		p.colors[n] = extraColors[i%len(extraColors)]
	}
	return p
}

func (p palette) color(name string) string {
	if c, ok := p.colors[name]; ok {
		return c
	}
	return "#999999"
}

// policyStyle returns the colour and dash pattern of the i-th policy.
func policyStyle(i int) (color, dash string) {
	color = policyColors[i%len(policyColors)]
	switch (i / len(policyColors)) % 3 {
	case 1:
		dash = "6 3"
	case 2:
		dash = "2 3"
	}
	return color, dash
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
