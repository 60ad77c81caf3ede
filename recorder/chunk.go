package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// A chunk is a group of events committed together, one bbolt value:
//
//	magic "BRC1" | seq u64 | prev [32] | events u32 | payload len u32 | payload | hash [32]
//
// hash is SHA-256 of everything before it; prev is the hash of the previous
// chunk of the session, or for chunk 0 a hash of the session ID, so chunks
// form a per-session chain that the seal's head closes. Integers are big-endian.
//
// The payload is a sequence of events:
//
//	type byte | time µs since start (uvarint) | data length (uvarint) | data
const (
	chunkMagic     = "BRC1"
	chunkHeaderLen = 4 + 8 + 32 + 4 + 4
	hashLen        = sha256.Size
	// maxEventData splits large writes so every exported line stays well
	// inside asciicast.DefaultMaxLineBytes, even with JSON escaping.
	maxEventData = 32 << 10
	// maxEventOverhead is the most an event adds to its data: type and two uvarints.
	maxEventOverhead = 1 + 2*binary.MaxVarintLen64
)

// genesis is the prev hash of a session's first chunk.
func genesis(id string) [hashLen]byte {
	return sha256.Sum256([]byte("bastion recorder chain v1\x00" + id))
}

// chunkKey is the events-bucket key of chunk seq of session id: the ID, a 0
// byte (IDs never contain one) and the big-endian sequence.
func chunkKey(id string, seq uint64) []byte {
	k := make([]byte, 0, len(id)+1+8)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// chunkPrefix is the key prefix of every chunk of session id.
func chunkPrefix(id string) []byte { return append([]byte(id), 0) }

// appendEvent appends one encoded event to b.
func appendEvent(b []byte, typ asciicast.EventType, us int64, data []byte) []byte {
	b = append(b, byte(typ))
	b = binary.AppendUvarint(b, uint64(us))
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// sealChunk fills in the header of buf, whose first chunkHeaderLen bytes were
// reserved, and appends the hash. It returns the finished value and its hash.
func sealChunk(buf []byte, seq uint64, prev [hashLen]byte, events int) ([]byte, [hashLen]byte) {
	h := buf[:chunkHeaderLen]
	copy(h, chunkMagic)
	binary.BigEndian.PutUint64(h[4:], seq)
	copy(h[12:], prev[:])
	binary.BigEndian.PutUint32(h[44:], uint32(events))
	binary.BigEndian.PutUint32(h[48:], uint32(len(buf)-chunkHeaderLen))
	sum := sha256.Sum256(buf)
	return append(buf, sum[:]...), sum
}

// newChunk builds a whole chunk from a payload (used for small marker chunks).
func newChunk(payload []byte, seq uint64, prev [hashLen]byte, events int) ([]byte, [hashLen]byte) {
	buf := make([]byte, chunkHeaderLen, chunkHeaderLen+len(payload)+hashLen)
	return sealChunk(append(buf, payload...), seq, prev, events)
}

// chunk is a decoded chunk; payload aliases the value it was parsed from.
type chunk struct {
	seq     uint64
	prev    [hashLen]byte
	events  int
	payload []byte
	hash    [hashLen]byte
}

var (
	errChunkShort   = errors.New("chunk is truncated")
	errChunkMagic   = errors.New("chunk has no valid header")
	errChunkLength  = errors.New("chunk payload length does not match")
	errChunkHash    = errors.New("chunk content does not match its hash")
	errChunkSeq     = errors.New("chunk sequence does not match its key")
	errChunkEvents  = errors.New("chunk events are malformed")
	errChunkCount   = errors.New("chunk event count does not match")
	errChunkTime    = errors.New("chunk event times go backwards")
	errChunkLink    = errors.New("chunk does not link to the previous chunk")
	errChunkMissing = errors.New("chunk is missing")
)

// parseChunk checks a stored value's framing and hash.
func parseChunk(v []byte, wantSeq uint64) (chunk, error) {
	var c chunk
	if len(v) < chunkHeaderLen+hashLen {
		return c, errChunkShort
	}
	if string(v[:4]) != chunkMagic {
		return c, errChunkMagic
	}
	body := v[:len(v)-hashLen]
	copy(c.hash[:], v[len(v)-hashLen:])
	if sha256.Sum256(body) != c.hash {
		return c, errChunkHash
	}
	c.seq = binary.BigEndian.Uint64(v[4:])
	copy(c.prev[:], v[12:44])
	c.events = int(binary.BigEndian.Uint32(v[44:]))
	n := binary.BigEndian.Uint32(v[48:])
	if uint64(n) != uint64(len(body)-chunkHeaderLen) {
		return c, errChunkLength
	}
	if c.seq != wantSeq {
		return c, errChunkSeq
	}
	c.payload = body[chunkHeaderLen:]
	return c, nil
}

// rawEvent is an event as stored; data aliases the payload.
type rawEvent struct {
	typ  asciicast.EventType
	us   int64
	data []byte
}

// event converts e for asciicast (copying the data).
func (e rawEvent) event() asciicast.Event {
	return asciicast.Event{Time: time.Duration(e.us) * time.Microsecond, Type: e.typ, Data: string(e.data)}
}

// walkEvents decodes a chunk's payload, checking each event and that times
// never go below *last (updated as it goes).
func walkEvents(c chunk, last *int64, fn func(rawEvent) error) error {
	p := c.payload
	n := 0
	for len(p) > 0 {
		typ := asciicast.EventType(p[0])
		if !typ.Valid() {
			return fmt.Errorf("%w: event %d has type %#x", errChunkEvents, n, p[0])
		}
		us, k := binary.Uvarint(p[1:])
		if k <= 0 || us > uint64(asciicast.DefaultMaxTime/time.Microsecond) {
			return fmt.Errorf("%w: event %d has a bad time", errChunkEvents, n)
		}
		p = p[1+k:]
		size, k := binary.Uvarint(p)
		if k <= 0 || size > uint64(len(p)-k) {
			return fmt.Errorf("%w: event %d has a bad length", errChunkEvents, n)
		}
		data := p[k : k+int(size)]
		p = p[k+int(size):]
		if !utf8.Valid(data) {
			return fmt.Errorf("%w: event %d is not UTF-8", errChunkEvents, n)
		}
		if typ == asciicast.Resize {
			if _, _, err := asciicast.ParseResize(string(data), asciicast.DefaultMaxWidth, asciicast.DefaultMaxHeight); err != nil {
				return fmt.Errorf("%w: event %d: %v", errChunkEvents, n, err)
			}
		}
		if int64(us) < *last {
			return fmt.Errorf("%w: event %d", errChunkTime, n)
		}
		*last = int64(us)
		n++
		if fn != nil {
			if err := fn(rawEvent{typ: typ, us: int64(us), data: data}); err != nil {
				return err
			}
		}
	}
	if n != c.events {
		return fmt.Errorf("%w: %d, header says %d", errChunkCount, n, c.events)
	}
	return nil
}

// chainChecker follows a session's chain chunk by chunk.
type chainChecker struct {
	id     string
	next   uint64        // the sequence expected next
	head   [hashLen]byte // hash of the last good chunk (genesis at first)
	events int64
	last   int64 // time of the last event, µs
}

func newChainChecker(id string) *chainChecker {
	return &chainChecker{id: id, head: genesis(id)}
}

// check verifies the chunk stored under key and returns it; the error names
// what broke. fn, if not nil, sees each event.
func (cc *chainChecker) check(key, v []byte, fn func(rawEvent) error) (chunk, error) {
	prefix := chunkPrefix(cc.id)
	if len(key) != len(prefix)+8 || !bytes.HasPrefix(key, prefix) {
		return chunk{}, errChunkSeq
	}
	if seq := binary.BigEndian.Uint64(key[len(prefix):]); seq != cc.next {
		return chunk{}, errChunkMissing
	}
	c, err := parseChunk(v, cc.next)
	if err != nil {
		return c, err
	}
	if c.prev != cc.head {
		return c, errChunkLink
	}
	if err := walkEvents(c, &cc.last, fn); err != nil {
		return c, err
	}
	cc.head = c.hash
	cc.events += int64(c.events)
	cc.next++
	return c, nil
}
