package testenv

import "github.com/bastionhq/bastion/internal/testenv/syncbuf"

// SyncBuffer is a bytes.Buffer safe for a writer goroutine (a logger, a
// transcript) and the test reading it: Write and String. The zero value
// is an empty buffer. Tests of packages that must not link testenv's
// dependencies (recorder) use syncbuf.Buffer, the same type.
type SyncBuffer = syncbuf.Buffer
