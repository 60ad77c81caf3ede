// Package syncbuf is the buffer tests hand to loggers and transcripts: a
// bytes.Buffer that one goroutine writes while the test reads it. It is
// the one implementation behind testenv.SyncBuffer, in a package of its
// own that imports only the standard library, so the tests of leaf
// packages (recorder) can use it without linking testenv's SSH and
// PostgreSQL dependencies.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent Write and String. The zero
// value is an empty buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
