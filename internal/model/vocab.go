package model

import (
	"fmt"
	"strings"
)

// GPUModel is a canonical GPU model name such as "H100" or "A100-80GB".
// Package catalog maps user spellings and aliases onto these names; model
// only carries them.
type GPUModel string

// Provider names who sells the capacity: "aws", "azure", "gcp", "oci",
// "coreweave", "lambda", "nebius", "onprem", ... Always lower case.
type Provider string

// PriceClass is how capacity is paid for.
type PriceClass string

const (
	// Committed is take-or-pay capacity already paid for: zero marginal cost.
	Committed PriceClass = "committed"
	// Reserved is capacity billed at a reserved rate whether used or not.
	Reserved PriceClass = "reserved"
	// OnDemand is billed per hour used at list price.
	OnDemand PriceClass = "ondemand"
	// Spot is cheap capacity the provider can take back at any time.
	Spot PriceClass = "spot"
)

// PriceClasses lists every price class in the order a user reads them.
var PriceClasses = []PriceClass{Committed, Reserved, OnDemand, Spot}

// Valid reports whether c is one of PriceClasses.
func (c PriceClass) Valid() bool {
	for _, k := range PriceClasses {
		if c == k {
			return true
		}
	}
	return false
}

// BackendKind is the engine that runs work in a cluster.
type BackendKind string

const (
	BackendLocal      BackendKind = "local"
	BackendSlurm      BackendKind = "slurm"
	BackendKubernetes BackendKind = "kubernetes"
	// BackendCloud is a public cloud's API (instances launched on demand).
	BackendCloud BackendKind = "cloud"
)

// BackendKinds lists every backend kind.
var BackendKinds = []BackendKind{BackendLocal, BackendSlurm, BackendKubernetes, BackendCloud}

// Valid reports whether k is one of BackendKinds.
func (k BackendKind) Valid() bool {
	for _, b := range BackendKinds {
		if k == b {
			return true
		}
	}
	return false
}

// MaxGPUsPerNode bounds GPUs per node: the largest single-host GPU machines
// sold (HGX-2) have 16. Rack-scale systems such as GB200 NVL72 are modelled as
// their compute trays (4 GPUs each) joined by a fast interconnect.
const MaxGPUsPerNode = 16

// MaxPoolNodes bounds a pool's nodes and max_nodes: the engine and the
// server hold state per node, so an unbounded count sizes memory (a pool
// of 10^9 nodes took a server to 23 GB). 100,000 nodes is 800,000 GPUs at
// 8 per node, beyond any single cluster built.
const MaxPoolNodes = 100_000

// ValidName reports whether s follows the rule every name of the fleet
// follows (clusters, pools, teams, contracts, ...): 1 to 128 letters,
// digits, '-', '_' or '.'. Token teams follow it too, so that no team name
// can contain the separators of the keys built from it.
func ValidName(s string) bool { return validName(s) }

// NameRule says the name rule, for messages.
const NameRule = "use letters, digits, '-', '_' or '.' (at most 128)"

// names are lower-case identifiers: letters, digits, '-', '_', '.'.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		case r >= 'A' && r <= 'Z':
		default:
			return false
		}
	}
	return true
}

func checkName(errs *FieldErrors, path, s string) {
	if !validName(s) {
		errs.Add(path, "%q is not a valid name; "+NameRule, s)
	}
}

func checkFraction(errs *FieldErrors, path string, v float64) {
	if v < 0 || v > 1 || v != v {
		errs.Add(path, "%v is out of range; give a fraction between 0 and 1 (e.g. 0.6 for 60%%)", v)
	}
}

func checkNonNegative(errs *FieldErrors, path string, v float64) {
	if v < 0 || v != v {
		errs.Add(path, "%v is negative; give a value of 0 or more", v)
	}
}

func quote(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
