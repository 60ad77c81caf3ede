package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The bbolt backend: one file, opened by one process. Its layout is the
// one stores have always had (see the package doc); nothing here changes a
// byte of what a store written before holds.

// Buckets of the bbolt file.
var (
	bucketMeta        = []byte("meta")                // "format" -> storeFormat; other Meta names
	bucketSessions    = []byte("sessions")            // session ID -> SessionInfo JSON
	bucketByStart     = []byte("sessions_by_start")   // start (8 bytes) + ID -> nothing
	bucketChunks      = []byte("chunks")              // session ID + 0 + seq (8 bytes) -> chunk
	bucketSeals       = []byte("seals")               // session ID -> signed Seal
	bucketAudit       = []byte("audit")               // seq (8 bytes) -> auditRecord JSON
	bucketCheckpoints = []byte("audit_checkpoints")   // seq (8 bytes) -> signed checkpoint
	bucketRevocations = []byte("revocations")         // serial (8 bytes) -> Revocation JSON
	bucketHostKeys    = []byte("host_keys")           // target -> pinned key
	bucketSessionCPs  = []byte("session_checkpoints") // session ID -> its latest signed Checkpoint (a note)
	bucketTokensByExp = []byte("used_tokens")         // expiry (8 bytes, unix ns) + one-time token key -> nothing
	// bucketUserRevocations (user -> Revocation JSON) came after the
	// others: a read-only open of an older store finds none.
	bucketUserRevocations = []byte("user_revocations")
	allBuckets            = [][]byte{bucketMeta, bucketSessions, bucketByStart, bucketChunks, bucketSeals,
		bucketAudit, bucketCheckpoints, bucketRevocations, bucketHostKeys, bucketSessionCPs,
		bucketTokensByExp}
)

const storeFormat = "bastion-recorder-1"

// boltBackend is a Backend over a bbolt file.
type boltBackend struct {
	db   *bolt.DB
	path string

	log *chunkLog // large chunk values (chunklog.go)
	// commitHook, for tests, runs last in every Update; an error fails
	// the transaction after the chunk log was written.
	commitHook func(*boltTx) error

	tokMu sync.Mutex
	used  map[string]int64 // one-time token key -> expiry (unix ns), as in the used_tokens bucket
}

var _ Backend = (*boltBackend)(nil)

// OpenBolt opens (creating if needed) the bbolt file at path, waiting at
// most timeout for another process's lock on it.
func OpenBolt(path string, timeout time.Duration) (Backend, error) {
	return openBolt(path, timeout, time.Now)
}

func openBolt(path string, timeout time.Duration, now func() time.Time) (*boltBackend, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("recorder: open %s: %w", path, err)
	}
	b := &boltBackend{db: db, path: path, used: make(map[string]int64), log: newChunkLog(path, false)}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range append(allBuckets, bucketUserRevocations) {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch f := meta.Get([]byte("format")); {
		case f == nil:
			if err := meta.Put([]byte("format"), []byte(storeFormat)); err != nil {
				return err
			}
		case string(f) != storeFormat && string(f) != storeFormat2:
			return fmt.Errorf("%w: unknown store format %q", ErrConfig, f)
		}
		if err := b.log.load(tx); err != nil {
			return err
		}
		// Load the unexpired one-time token keys: lookups read memory.
		n := now().UnixNano()
		return tx.Bucket(bucketTokensByExp).ForEach(func(k, _ []byte) error {
			if len(k) > 8 {
				if exp := int64(binary.BigEndian.Uint64(k)); exp > n {
					b.used[string(k[8:])] = exp
				}
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("recorder: init %s: %w", path, err)
	}
	return b, nil
}

func (b *boltBackend) Update(fn func(Tx) error) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		t := &boltTx{b: b, tx: tx}
		if err := fn(t); err != nil {
			return err
		}
		if err := t.commitLog(); err != nil {
			return err
		}
		if b.commitHook != nil {
			return b.commitHook(t)
		}
		return nil
	})
	b.log.removeDoomed()
	return err
}

func (b *boltBackend) View(fn func(Tx) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(&boltTx{b: b, tx: tx}) })
}

func (b *boltBackend) Close() error {
	err := b.db.Close()
	if lerr := b.log.close(); err == nil {
		err = lerr
	}
	return err
}

// boltTx is one bbolt transaction.
type boltTx struct {
	b     *boltBackend
	tx    *bolt.Tx
	spent map[string]int64 // tokens this transaction spends
	log   logTx            // its use of the chunk log
	enc   []byte           // scratch for encoding session records
	// tail is the audit chain's last record once this transaction has
	// read or appended it: a flush appends many records, and reading the
	// last one back from the B+tree for each cost a cursor walk and a
	// search for its hash. AppendAudit is the only writer of the bucket.
	tail struct {
		seq   uint64
		hash  [hashLen]byte
		known bool
	}
}

func (t *boltTx) OnCommit(fn func()) { t.tx.OnCommit(fn) }

func (t *boltTx) Meta(name string) ([]byte, error) {
	return bytes.Clone(t.tx.Bucket(bucketMeta).Get([]byte(name))), nil
}

func (t *boltTx) SetMeta(name string, v []byte) error {
	return t.tx.Bucket(bucketMeta).Put([]byte(name), v)
}

func (t *boltTx) Metas(fn func(name string, v []byte) error) error {
	return t.tx.Bucket(bucketMeta).ForEach(func(k, v []byte) error {
		if string(k) == "format" {
			return nil // the file's own
		}
		return fn(string(k), v)
	})
}

// Sessions.

func startKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano())^(1<<63)) // sorts signed times
	return append(k, id...)
}

func startOf(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])^(1<<63)))
}

func (t *boltTx) CreateSession(info SessionInfo) error {
	if t.tx.Bucket(bucketSessions).Get([]byte(info.ID)) != nil {
		return ErrExists
	}
	if err := t.putSession(info); err != nil {
		return err
	}
	return t.tx.Bucket(bucketByStart).Put(startKey(info.Start, info.ID), nil)
}

func (t *boltTx) PutSession(info SessionInfo) error { return t.putSession(info) }

func (t *boltTx) putSession(info SessionInfo) error {
	v, err := appendSessionJSON(t.enc[:0], &info)
	if err != nil {
		return err
	}
	t.enc = v
	v = bytes.Clone(v) // bbolt keeps the value until the commit
	return t.tx.Bucket(bucketSessions).Put([]byte(info.ID), v)
}

func (t *boltTx) Session(id string) (SessionInfo, error) {
	return decodeSession(id, t.tx.Bucket(bucketSessions).Get([]byte(id)))
}

// decodeSession reads a stored session record; nil means there is none.
func decodeSession(id string, v []byte) (SessionInfo, error) {
	var info SessionInfo
	if v == nil {
		return info, fmt.Errorf("recorder: session %s: %w", quoteID(id), ErrNotFound)
	}
	if err := json.Unmarshal(v, &info); err != nil {
		return info, fmt.Errorf("recorder: session %s: %w: unreadable record: %v", quoteID(id), ErrBroken, err)
	}
	return info, nil
}

func (t *boltTx) Sessions(f SessionFilter, fn func(SessionInfo) bool) error {
	sessions := t.tx.Bucket(bucketSessions)
	c := t.tx.Bucket(bucketByStart).Cursor()
	for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
		if len(k) <= 8 {
			continue
		}
		if !f.Since.IsZero() && startOf(k).Before(f.Since) {
			return nil
		}
		info, err := decodeSession(string(k[8:]), sessions.Get(k[8:]))
		if err != nil {
			continue // an unreadable record is Verify's to report
		}
		if !f.match(info) {
			continue
		}
		if !fn(info) {
			return nil
		}
	}
	return nil
}

func (t *boltTx) Orphans() ([]SessionInfo, error) {
	var live []SessionInfo
	err := t.tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		info, err := decodeSession(string(k), v)
		if err == nil && info.Status == StatusLive {
			live = append(live, info)
		}
		return nil
	})
	return live, err
}

func (t *boltTx) Ended(before time.Time, fn func(SessionInfo) bool) error {
	sessions := t.tx.Bucket(bucketSessions)
	c := t.tx.Bucket(bucketByStart).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) <= 8 {
			continue
		}
		if !startOf(k).Before(before) {
			return nil // started after the cutoff, so ended after it too
		}
		info, err := decodeSession(string(k[8:]), sessions.Get(k[8:]))
		if err != nil || info.Status == StatusLive || info.End.IsZero() || !info.End.Before(before) {
			continue
		}
		if !fn(info) {
			return nil
		}
	}
	return nil
}

func (t *boltTx) DeleteSession(info SessionInfo) (int, error) {
	chunks := t.tx.Bucket(bucketChunks)
	prefix := chunkPrefix(info.ID)
	var keys [][]byte
	c := chunks.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		t.dropped(v)
	}
	for _, k := range keys {
		if err := chunks.Delete(k); err != nil {
			return 0, err
		}
	}
	for _, del := range []struct{ bucket, key []byte }{
		{bucketSeals, []byte(info.ID)},
		{bucketSessionCPs, []byte(info.ID)},
		{bucketSessions, []byte(info.ID)},
		{bucketByStart, startKey(info.Start, info.ID)},
	} {
		if err := t.tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// Chunks.

// chunkKey is the chunks-bucket key of chunk seq of session id: the ID, a 0
// byte (IDs never contain one) and the big-endian sequence.
func chunkKey(id string, seq uint64) []byte {
	k := make([]byte, 0, len(id)+1+8)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// chunkPrefix is the key prefix of every chunk of session id.
func chunkPrefix(id string) []byte { return append([]byte(id), 0) }

func (t *boltTx) PutChunks(id string, first uint64, values [][]byte) error {
	b := t.tx.Bucket(bucketChunks)
	for i, v := range values {
		if len(v) >= logMinValue {
			ref, err := t.appendValue(v)
			if err != nil {
				return err
			}
			v = ref
		}
		if err := b.Put(chunkKey(id, first+uint64(i)), v); err != nil {
			return err
		}
	}
	return nil
}

func (t *boltTx) Chunks(id string, from uint64, limit int, fn func(uint64, []byte) error) error {
	prefix := chunkPrefix(id)
	c := t.tx.Bucket(bucketChunks).Cursor()
	n := 0
	var buf []byte // a value read from the chunk log
	for k, v := c.Seek(chunkKey(id, from)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if limit > 0 && n == limit {
			return nil
		}
		n++
		v = t.resolve(v, &buf)
		if len(k) != len(prefix)+8 {
			// Not a chunk key: a store someone edited. The chain
			// check reports the sequence it expected as missing.
			if err := fn(^uint64(0), v); err != nil {
				return err
			}
			continue
		}
		if err := fn(binary.BigEndian.Uint64(k[len(prefix):]), v); err != nil {
			return err
		}
	}
	return nil
}

func (t *boltTx) PutCheckpoint(id string, note []byte) error {
	return t.tx.Bucket(bucketSessionCPs).Put([]byte(id), note)
}

func (t *boltTx) Checkpoint(id string) ([]byte, error) {
	return bytes.Clone(t.tx.Bucket(bucketSessionCPs).Get([]byte(id))), nil
}

func (t *boltTx) PutSeal(id string, seal []byte) error {
	return t.tx.Bucket(bucketSeals).Put([]byte(id), seal)
}

func (t *boltTx) Seal(id string) ([]byte, error) {
	return bytes.Clone(t.tx.Bucket(bucketSeals).Get([]byte(id))), nil
}

// Audit.

func u64key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func (t *boltTx) AuditTail() (uint64, [hashLen]byte, error) {
	if !t.tail.known {
		t.tail.seq, t.tail.hash = auditTail(t.tx.Bucket(bucketAudit))
		t.tail.known = true
	}
	return t.tail.seq, t.tail.hash, nil
}

func (t *boltTx) AppendAudit(seq uint64, h [hashLen]byte, record []byte) error {
	next := t.tail.known && seq == t.tail.seq+1 // the record after the known tail becomes the tail
	t.tail.known = false
	if err := t.tx.Bucket(bucketAudit).Put(u64key(seq), record); err != nil {
		return err
	}
	t.tail.seq, t.tail.hash, t.tail.known = seq, h, next
	return nil
}

func (t *boltTx) Audit(from uint64, limit int, fn func(uint64, []byte) error) error {
	c := t.tx.Bucket(bucketAudit).Cursor()
	n := 0
	for k, v := c.Seek(u64key(from)); k != nil; k, v = c.Next() {
		if limit > 0 && n == limit {
			return nil
		}
		n++
		seq := ^uint64(0) // not a record key: reported as a missing record
		if len(k) == 8 {
			seq = binary.BigEndian.Uint64(k)
		}
		if err := fn(seq, v); err != nil {
			return err
		}
	}
	return nil
}

func (t *boltTx) PutAuditCheckpoint(seq uint64, signed []byte) error {
	return t.tx.Bucket(bucketCheckpoints).Put(u64key(seq), signed)
}

func (t *boltTx) AuditCheckpoints(from, to uint64, fn func(uint64, []byte) error) error {
	c := t.tx.Bucket(bucketCheckpoints).Cursor()
	for k, v := c.Seek(u64key(from)); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			if err := fn(0, v); err != nil { // a malformed key: VerifyAudit reports it
				return err
			}
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		if seq > to {
			return nil
		}
		if err := fn(seq, v); err != nil {
			return err
		}
	}
	return nil
}

// auditTail returns the sequence and hash of the last audit record. An
// unreadable last record is chained by the hash of its raw bytes, so the log
// stays appendable; VerifyAudit reports the damage.
func auditTail(b *bolt.Bucket) (uint64, [hashLen]byte) {
	k, v := b.Cursor().Last()
	if k == nil {
		return 0, [hashLen]byte{}
	}
	return binary.BigEndian.Uint64(k), recordHash(v)
}

// recordHash returns the hash an audit record stores (the chain's link to
// the next record); an unreadable record's is the hash of its raw bytes.
func recordHash(v []byte) [hashLen]byte {
	// Records are written by json.Marshal of auditRecord, whose "hash"
	// field precedes the event: read it without decoding the event.
	if i := bytes.Index(v, []byte(`"hash":"`)); i >= 0 && len(v) >= i+8+2*hashLen {
		if h, err := hex.DecodeString(string(v[i+8 : i+8+2*hashLen])); err == nil {
			return [hashLen]byte(h)
		}
	}
	var rec auditRecord
	if err := json.Unmarshal(v, &rec); err == nil {
		if h, err := hex.DecodeString(rec.Hash); err == nil && len(h) == hashLen {
			return [hashLen]byte(h)
		}
	}
	return sha256.Sum256(v)
}

// One-time tokens. Keys sort by expiry, so they are written near the end
// and forgotten from the start; lookups read b.used, the same keys in
// memory, so a check reads no page.

func (t *boltTx) SpendToken(key []byte, expires, now time.Time) (bool, error) {
	k := string(key)
	if _, ok := t.spent[k]; ok {
		return false, nil
	}
	t.b.tokMu.Lock()
	exp, ok := t.b.used[k]
	t.b.tokMu.Unlock()
	if ok && exp > now.UnixNano() {
		return false, nil
	}
	if !expires.After(now) {
		expires = now.Add(time.Minute) // an expired token is refused by its verifier; remember it briefly anyway
	}
	e := expires.UnixNano()
	if err := t.tx.Bucket(bucketTokensByExp).Put(append(u64key(uint64(e)), key...), nil); err != nil {
		return false, err
	}
	if t.spent == nil {
		t.spent = make(map[string]int64)
		spent := t.spent
		t.tx.OnCommit(func() {
			t.b.tokMu.Lock()
			for k, e := range spent {
				t.b.used[k] = e
			}
			t.b.tokMu.Unlock()
		})
	}
	t.spent[k] = e
	return true, nil
}

// reserveToken marks a one-time token spent in memory before its journal
// entry is written (the audit journal's path): false when it is already
// spent and unexpired. putSpentToken stores it when the entry is applied.
func (b *boltBackend) reserveToken(key []byte, expires int64, now time.Time) bool {
	k := string(key)
	b.tokMu.Lock()
	defer b.tokMu.Unlock()
	if exp, ok := b.used[k]; ok && exp > now.UnixNano() {
		return false
	}
	b.used[k] = expires
	return true
}

// unreserveToken forgets a reservation whose journal entry was not written.
func (b *boltBackend) unreserveToken(key []byte) {
	b.tokMu.Lock()
	delete(b.used, string(key))
	b.tokMu.Unlock()
}

// tokenExpiry is until when a token that expires at expires is remembered
// (an expired one, refused by its verifier anyway, briefly), as SpendToken.
func tokenExpiry(expires, now time.Time) int64 {
	if !expires.After(now) {
		expires = now.Add(time.Minute)
	}
	return expires.UnixNano()
}

// putSpentToken stores a token reserved by reserveToken.
func (t *boltTx) putSpentToken(key []byte, expires int64) error {
	if err := t.tx.Bucket(bucketTokensByExp).Put(append(u64key(uint64(expires)), key...), nil); err != nil {
		return err
	}
	k := string(key)
	t.tx.OnCommit(func() {
		t.b.tokMu.Lock()
		if e, ok := t.b.used[k]; !ok || e < expires {
			t.b.used[k] = expires
		}
		t.b.tokMu.Unlock()
	})
	return nil
}

func (t *boltTx) ForgetTokens(now time.Time, full *bool) error {
	byExp := t.tx.Bucket(bucketTokensByExp)
	c := byExp.Cursor()
	var dead [][]byte
	for k, _ := c.First(); k != nil && len(dead) < tokenSweepBatch; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) > now.UnixNano() {
			break
		}
		dead = append(dead, bytes.Clone(k))
	}
	for _, k := range dead {
		if err := byExp.Delete(k); err != nil {
			return err
		}
	}
	*full = len(dead) == tokenSweepBatch
	t.tx.OnCommit(func() {
		t.b.tokMu.Lock()
		for _, k := range dead {
			if exp, ok := t.b.used[string(k[8:])]; ok && exp <= now.UnixNano() {
				delete(t.b.used, string(k[8:]))
			}
		}
		t.b.tokMu.Unlock()
	})
	return nil
}

// Revocations and pins.

func (t *boltTx) Revoke(r Revocation) (bool, error) {
	b := t.tx.Bucket(bucketRevocations)
	if b.Get(u64key(r.Serial)) != nil {
		return false, nil
	}
	v, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	return true, b.Put(u64key(r.Serial), v)
}

func (t *boltTx) Revocations(fn func(Revocation) error) error {
	return t.tx.Bucket(bucketRevocations).ForEach(func(k, v []byte) error {
		var rev Revocation
		if err := json.Unmarshal(v, &rev); err != nil {
			return fmt.Errorf("%w: revocation %x is unreadable", ErrBroken, k)
		}
		return fn(rev)
	})
}

func (t *boltTx) RevokeUser(r Revocation) error {
	b := t.tx.Bucket(bucketUserRevocations)
	if old := b.Get([]byte(r.User)); old != nil {
		var prev Revocation
		if json.Unmarshal(old, &prev) == nil && prev.Time.After(r.Time) {
			return nil
		}
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(r.User), v)
}

func (t *boltTx) UserRevocations(fn func(Revocation) error) error {
	b := t.tx.Bucket(bucketUserRevocations)
	if b == nil {
		return nil // a store written before user revocations, opened read-only
	}
	return b.ForEach(func(k, v []byte) error {
		var rev Revocation
		if err := json.Unmarshal(v, &rev); err != nil || rev.User != string(k) {
			return fmt.Errorf("%w: the revocation of user %q is unreadable", ErrBroken, k)
		}
		return fn(rev)
	})
}

func (t *boltTx) HostKey(target string) ([]byte, error) {
	return bytes.Clone(t.tx.Bucket(bucketHostKeys).Get([]byte(target))), nil
}

func (t *boltTx) HostKeys(fn func(target string, key []byte) error) error {
	return t.tx.Bucket(bucketHostKeys).ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

func (t *boltTx) PinHostKey(target string, key []byte) ([]byte, error) {
	b := t.tx.Bucket(bucketHostKeys)
	if old := b.Get([]byte(target)); old != nil {
		return bytes.Clone(old), nil
	}
	return nil, b.Put([]byte(target), bytes.Clone(key))
}

// Compact copies the store at src into a new file at dst, leaving out the
// free pages bbolt never returns to the file system. Run it while no Store
// has src open (bastion stopped), then replace src with dst. It is what
// `bbolt compact -o dst src` does.
func Compact(dst, src string) error {
	in, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultOpenTimeout})
	if err != nil {
		return fmt.Errorf("recorder: compact: open %s: %w", src, err)
	}
	defer in.Close()
	out, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: DefaultOpenTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("recorder: compact: create %s: %w", dst, err)
	}
	if err := bolt.Compact(out, in, 64<<20); err != nil {
		out.Close()
		return fmt.Errorf("recorder: compact: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("recorder: compact: %w", err)
	}
	return nil
}
