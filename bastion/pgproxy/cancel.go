package pgproxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// CancelRegistry maps the backend keys the proxy gives clients to the upstream backends
// they stand for. A client cancels a query by opening a new connection and sending its
// key; that connection may arrive on any forward, so one registry is shared by all of
// them. The 64-bit keys are random; an unknown or forged key is dropped silently, as
// PostgreSQL does. The zero value is ready to use.
type CancelRegistry struct {
	mu      sync.Mutex
	entries map[cancelKey]*cancelTarget
}

type cancelKey struct{ pid, secret uint32 }

// cancelTarget sends a CancelRequest for one upstream backend.
type cancelTarget struct {
	send func(ctx context.Context) error
}

// NewCancelRegistry returns an empty registry.
func NewCancelRegistry() *CancelRegistry { return &CancelRegistry{} }

// Len is the number of live registrations (one per connection in the query phase).
func (r *CancelRegistry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// register issues a fresh key for t; the returned func removes it.
func (r *CancelRegistry) register(t *cancelTarget) (cancelKey, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[cancelKey]*cancelTarget{}
	}
	var k cancelKey
	for {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		k = cancelKey{binary.BigEndian.Uint32(b[:4]) &^ (1 << 31), binary.BigEndian.Uint32(b[4:])}
		if _, taken := r.entries[k]; !taken && k.pid != 0 {
			break
		}
	}
	r.entries[k] = t
	return k, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.entries[k] == t {
			delete(r.entries, k)
		}
	}
}

func (r *CancelRegistry) lookup(k cancelKey) *cancelTarget {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entries[k]
}
