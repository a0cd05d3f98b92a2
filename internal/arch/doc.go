// Package arch holds no production code: its tests read the module's import
// graph with `go list` and fail when an arrow of STYLE.md points the wrong
// way (model importing a project package, engine doing I/O, production code
// importing a *test package, ...). The layering is checked, not hoped for.
//
// Add a rule to rules_test.go when a new layer appears; never weaken one to
// make a build pass without recording why in docs/adr/.
package arch
