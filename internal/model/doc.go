// Package model is gpubroker's vocabulary as plain types: GPU models,
// providers, clusters, pools, contracts, teams, policy and workloads (see
// DESIGN.md). Every type that comes from user input has a Validate method
// whose errors carry the field path, so a caller can say exactly which line
// of which file is wrong.
//
// model imports only the standard library and does no I/O. It holds the
// vocabulary and nothing else: parsing lives in spec, prices in catalog,
// decisions in engine.
package model
