// Package web is the dashboard that gpubroker server serves at /: HTML
// pages rendered on the server with html/template, charts drawn as inline
// SVG in Go, and a small embedded script that refreshes a page's content
// and a job's log tail without a reload. Nothing is fetched from the
// network: templates, CSS and script are embedded in the binary.
//
// The dashboard is a client of the server's own /v1 API, called in
// process with the token the user logged in with (kept in an HttpOnly,
// SameSite=Strict cookie). It therefore sees exactly what that token may
// see through the API, with the API's authentication and team scoping;
// it must never read the store itself or widen what a token sees.
package web
