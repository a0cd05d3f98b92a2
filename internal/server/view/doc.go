// Package view holds what the control side publishes and the HTTP API
// reads: the fleet in force (Fleet) and what the last reconcile round saw
// (Round), plus the two placement rules both sides apply (QueuedAhead,
// SlotBase). It is a leaf below internal/server/control and
// internal/server/httpapi, so that neither needs the other: it must never
// import either, nor hold state or start goroutines.
package view
