package recorder

import (
	"crypto"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Mode is the failure policy for recordings.
type Mode int

const (
	// Strict (the default) fails a recording on the first write error: its
	// Failed channel closes and Err says why, so the server ends the session
	// rather than letting it run unrecorded.
	Strict Mode = iota
	// BestEffort keeps the session going when a write fails: the lost events
	// are dropped, a gap marker is written when writes recover, and the gap
	// is audited.
	BestEffort
)

// String returns the configuration name of m: "strict" or "best_effort".
func (m Mode) String() string {
	switch m {
	case Strict:
		return "strict"
	case BestEffort:
		return "best_effort"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "strict" or "best_effort" (also "best-effort"); "" is Strict.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "", "strict":
		return Strict, nil
	case "best_effort", "best-effort", "besteffort":
		return BestEffort, nil
	}
	return 0, fmt.Errorf("recorder: unknown recording mode %q (want strict or best_effort)", s)
}

// Config configures a Store. SealKey, and Path or Postgres, are required;
// every other zero field takes the default its comment names.
type Config struct {
	// noJournal, for benchmarks, commits audit batches straight to bbolt
	// as before the audit journal.
	noJournal bool

	// Path is the bbolt file; it is created with mode 0600 if missing.
	// Required unless Postgres is set.
	Path string
	// Postgres, when set, keeps the store in a PostgreSQL database that
	// several replicas share, instead of the bbolt file at Path.
	Postgres *PostgresConfig
	// Mode is the failure policy; the zero value is Strict.
	Mode Mode
	// FlushInterval is how often buffered events are committed, in one
	// transaction for all sessions. A crash loses at most this much. Default 200ms.
	FlushInterval time.Duration
	// SessionBuffer is how many bytes a session buffers before it asks for an
	// early flush. A session whose uncommitted bytes exceed twice this waits
	// for the flush. Default 1 MiB (bigger commits cost less per byte for a streaming session; MaxPending still bounds the total).
	SessionBuffer int
	// MaxPending bounds the uncommitted bytes across all sessions; beyond it
	// writers wait for the flush (backpressure). Default 32 MiB.
	MaxPending int
	// SessionByteBudget caps the event bytes stored per session; beyond it a
	// truncation marker is written and output is only counted. 0 = unlimited.
	SessionByteBudget int64
	// RecordInput records what the user types ('i' events). Off by default:
	// people type passwords.
	RecordInput bool
	// Retention is how long ended sessions are kept; Purge removes older
	// ones. 0 keeps them forever.
	Retention time.Duration
	// SealKey signs session seals and checkpoints: an ed25519.PrivateKey
	// (a file), or any crypto.Signer whose public key is Ed25519 or ECDSA
	// P-256 (a key in an HSM or a cloud KMS). Required.
	SealKey crypto.Signer
	// PreviousSealKeys are the public halves (ed25519.PublicKey or P-256
	// *ecdsa.PublicKey) of seal keys this store was sealed with before a key
	// change: what they signed still verifies. nil: only SealKey's own.
	PreviousSealKeys []crypto.PublicKey
	// OpenTimeout is how long Open waits for another process's lock on the
	// file. Default 5s.
	OpenTimeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives flush failures and recoveries; nil discards them.
	Logger *slog.Logger
	// OnFlush, when set, is called after each group commit with how long the
	// transaction took, the sessions it covered and whether it failed (for
	// metrics). It runs on the flusher goroutine and must not block.
	OnFlush func(d time.Duration, sessions int, err error)
}

// Defaults for zero Config fields.
const (
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultSessionBuffer = 1 << 20
	DefaultMaxPending    = 32 << 20
	DefaultOpenTimeout   = 5 * time.Second
)

// check validates c and fills in defaults.
func (c Config) check() (Config, error) {
	switch {
	case c.Postgres != nil && c.Path != "":
		return c, fmt.Errorf("recorder: config: %w: Path and Postgres are exclusive", ErrConfig)
	case c.Postgres != nil:
		pc, err := c.Postgres.check()
		if err != nil {
			return c, err
		}
		c.Postgres = &pc
	case c.Path == "":
		return c, fmt.Errorf("recorder: config: %w: Path is required", ErrConfig)
	}
	if _, err := newSealSigner(c.SealKey); err != nil {
		return c, fmt.Errorf("recorder: config: %w: SealKey: %v", ErrConfig, err)
	}
	for i, k := range c.PreviousSealKeys {
		if _, err := newSealPublic(k); err != nil {
			return c, fmt.Errorf("recorder: config: %w: PreviousSealKeys[%d]: %v", ErrConfig, i, err)
		}
	}
	if c.Mode != Strict && c.Mode != BestEffort {
		return c, fmt.Errorf("recorder: config: %w: unknown mode %d", ErrConfig, c.Mode)
	}
	if c.FlushInterval < 0 || c.SessionBuffer < 0 || c.MaxPending < 0 || c.SessionByteBudget < 0 || c.Retention < 0 || c.OpenTimeout < 0 {
		return c, fmt.Errorf("recorder: config: %w: negative durations or sizes", ErrConfig)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.SessionBuffer == 0 {
		c.SessionBuffer = DefaultSessionBuffer
	}
	if c.SessionBuffer < 4<<10 {
		c.SessionBuffer = 4 << 10
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPending < c.SessionBuffer {
		c.MaxPending = c.SessionBuffer
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
