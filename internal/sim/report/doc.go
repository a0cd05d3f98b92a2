// Package report holds the outcome of a simulation run and renders it: a
// stable, indented JSON document and one self-contained HTML page with
// inline SVG charts.
//
// The simulator (internal/sim) fills a Report, one PolicyRun per policy
// replayed over the same trace and seed; this package only reads it.
//
// The package must never read a clock, draw random numbers, fetch anything
// from the network, or let map iteration order reach its output: the same
// Report renders to the same bytes, every time. The HTML page references no
// URL at all (no scripts, fonts, stylesheets or images from elsewhere), so it
// works offline and can be mailed as a single file.
package report
