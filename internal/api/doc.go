// Package api is the one declaration of the /v1 wire format (docs/api.md):
// the request and response types the server writes and the CLI and the
// dashboard read, the error shape, and Client, the typed HTTP client.
//
// JSON names are snake_case; empty fields and zero times are left out
// (omitempty, omitzero), so a document shows what is set and nothing
// else. Field names only ever grow: a client built against an older
// server still reads a newer one's answers.
//
// The server converts its store and engine values into these types at the
// handler, and the CLI prints them; neither side's Go types are the wire
// format. See docs/adr/0005-wire-types.md.
//
// api must never import a project package other than model, nor anything
// outside the standard library: no store, engine, server or cli types leak
// onto the wire, and every consumer can import it without pulling in a
// layer above it. It holds no behaviour beyond encoding, decoding and
// classifying errors.
package api
