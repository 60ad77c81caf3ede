package recorder

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// A chunk is a group of events committed together, one stored value. Two
// formats exist, told apart by their magic; stores hold both, and every
// reader takes both:
//
//	format 1 "BRC1": magic | seq u64 | prev [32] | events u32 | payload len u32 | payload | hash [32]
//	format 2 "BRC2": magic | seq u64 | prev [32] | events u32 | codec u8 | raw len u32 | payload len u32 | payload | hash [32]
//
// hash is SHA-256 of everything before it, so it covers the payload as
// stored (compressed, in format 2); prev is the hash of the previous chunk of
// the session, or for chunk 0 a hash of the session ID, so chunks form a
// per-session chain that signed checkpoints and the seal close. Integers are
// big-endian. In format 2 the payload is the events compressed with codec
// (codecZstd, or codecNone when compression does not pay), raw len their
// size before compression (at most maxChunkRaw).
//
// The events, once decompressed, are a sequence of
//
//	type byte | time µs since start (uvarint) | data length (uvarint) | data
//
// Format 1 holds asciicast event types only ('o', 'i', 'r', 'm'), whose
// data is UTF-8. Format 2 adds the types of a TCP session's payload
// ([EventFromClient], [EventFromServer], [EventConn]), whose data is bytes.
// Writers write format 2 only.
const (
	chunkMagicV1     = "BRC1"
	chunkMagicV2     = "BRC2"
	chunkHeaderLen   = 4 + 8 + 32 + 4 + 4 // format 1; writers reserve this much before a buffer's events
	chunkHeaderLenV2 = 4 + 8 + 32 + 4 + 1 + 4 + 4
	hashLen          = sha256.Size
	// maxEventData splits large writes so every exported line stays well
	// inside asciicast.DefaultMaxLineBytes, even with JSON escaping.
	maxEventData = 32 << 10
	// maxEventOverhead is the most an event adds to its data: type and two uvarints.
	maxEventOverhead = 1 + 2*binary.MaxVarintLen64
	// maxChunkRaw bounds a chunk's events before compression, so a crafted
	// chunk cannot make a reader allocate more.
	maxChunkRaw = 64 << 20
)

// Codecs of a format 2 chunk's payload.
const (
	codecNone byte = 0
	codecZstd byte = 1
)

// Event types a format 2 chunk holds beyond asciicast's. A TCP session is
// recorded as the bytes each side sent, one event per read, and the
// connection's events; their data is bytes, not text.
const (
	// EventFromClient: bytes the client sent toward the target.
	EventFromClient asciicast.EventType = 'c'
	// EventFromServer: bytes the target sent back toward the client.
	EventFromServer asciicast.EventType = 's'
	// EventConn: a connection event, as text: "open CLIENT_ADDR TARGET_ADDR",
	// "client fin", "server fin", "client rst", "server rst", "cut" (the
	// bastion ended the connection, neither side did); "unstored
	// CLIENT SERVER", bytes each side sent that the recording does not
	// hold (the byte budget was spent), and "unstored CLIENT SERVER lost",
	// bytes lost with a recording gap (best_effort).
	EventConn asciicast.EventType = 'x'
)

// binaryEvent reports the event types whose data is bytes.
func binaryEvent(t asciicast.EventType) bool { return t == EventFromClient || t == EventFromServer }

// genesis is the prev hash of a session's first chunk.
func genesis(id string) [hashLen]byte {
	return sha256.Sum256([]byte("bastion recorder chain v1\x00" + id))
}

// appendEvent appends one encoded event to b.
func appendEvent(b []byte, typ asciicast.EventType, us int64, data []byte) []byte {
	b = append(b, byte(typ))
	b = binary.AppendUvarint(b, uint64(us))
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// encodeChunk makes the stored value of a chunk from buf, whose first
// chunkHeaderLen bytes were reserved and whose rest is the events, appending
// it to dst: format 2, the events compressed with enc when that makes them
// smaller. It returns the value and its hash.
func encodeChunk(dst, buf []byte, seq uint64, prev [hashLen]byte, events int, enc *zstd.Encoder) ([]byte, [hashLen]byte) {
	raw := buf[chunkHeaderLen:]
	start := len(dst)
	dst = append(dst, make([]byte, chunkHeaderLenV2)...)
	codec := codecNone
	if enc != nil && len(raw) >= minCompress && !incompressible(raw, &dst, enc) {
		dst = enc.EncodeAll(raw, dst)
		codec = codecZstd
		if len(dst)-start-chunkHeaderLenV2 >= len(raw) {
			dst, codec = dst[:start+chunkHeaderLenV2], codecNone
		}
	}
	if codec == codecNone {
		dst = append(dst, raw...)
	}
	h := dst[start : start+chunkHeaderLenV2]
	copy(h, chunkMagicV2)
	binary.BigEndian.PutUint64(h[4:], seq)
	copy(h[12:], prev[:])
	binary.BigEndian.PutUint32(h[44:], uint32(events))
	h[48] = codec
	binary.BigEndian.PutUint32(h[49:], uint32(len(raw)))
	binary.BigEndian.PutUint32(h[53:], uint32(len(dst)-start-chunkHeaderLenV2))
	sum := sha256.Sum256(dst[start:])
	return append(dst, sum[:]...), sum
}

// minCompress is the smallest payload worth compressing.
const minCompress = 64

// probeSize is the sample a large chunk is tried on before it is compressed.
const probeSize = 32 << 10

// incompressible reports whether a large payload looks incompressible,
// from a sample from its middle: forwarded traffic is often TLS or already
// compressed, and compressing a whole chunk to learn that costs about as
// much as storing it. *dst is used as scratch past its length and left as
// it was.
func incompressible(raw []byte, dst *[]byte, enc *zstd.Encoder) bool {
	if len(raw) < 8*probeSize {
		return false
	}
	mid := len(raw)/2 - probeSize/2
	sample := raw[mid : mid+probeSize]
	n := len(*dst)
	out := enc.EncodeAll(sample, *dst)
	*dst = out[:n]
	return len(out)-n > probeSize*31/32
}

// newChunk builds a whole chunk from a payload of events (small marker
// chunks), uncompressed.
func newChunk(payload []byte, seq uint64, prev [hashLen]byte, events int) ([]byte, [hashLen]byte) {
	buf := make([]byte, chunkHeaderLen, chunkHeaderLen+len(payload))
	return encodeChunk(nil, append(buf, payload...), seq, prev, events, nil)
}

// chunk is a decoded chunk; payload holds its events (decompressed), and
// aliases either the value it was parsed from or the decoder's scratch
// buffer.
type chunk struct {
	format  int // 1 or 2
	seq     uint64
	prev    [hashLen]byte
	events  int
	payload []byte
	hash    [hashLen]byte
	stored  int // bytes the chunk takes as stored
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
	errChunkCodec   = errors.New("chunk payload cannot be decompressed")
)

// parseChunk checks a stored value's framing and hash and returns its
// events, decompressing them into *scratch (reused across calls) when they
// are compressed.
func parseChunk(v []byte, wantSeq uint64, scratch *[]byte) (chunk, error) {
	c := chunk{stored: len(v)}
	if len(v) < 4 {
		return c, errChunkShort
	}
	var hdr int
	switch string(v[:4]) {
	case chunkMagicV1:
		c.format, hdr = 1, chunkHeaderLen
	case chunkMagicV2:
		c.format, hdr = 2, chunkHeaderLenV2
	case refMagic:
		// A reference into the chunk log whose bytes the backend could
		// not read; it appended why.
		why := v[min(len(v), refLen):]
		return c, fmt.Errorf("%w: %s", errChunkUnread, strconv.Quote(string(why[:min(len(why), 200)])))
	default:
		return c, errChunkMagic
	}
	if len(v) < hdr+hashLen {
		return c, errChunkShort
	}
	body := v[:len(v)-hashLen]
	copy(c.hash[:], v[len(v)-hashLen:])
	if sha256.Sum256(body) != c.hash {
		return c, errChunkHash
	}
	c.seq = binary.BigEndian.Uint64(v[4:])
	copy(c.prev[:], v[12:44])
	c.events = int(binary.BigEndian.Uint32(v[44:]))
	n := binary.BigEndian.Uint32(v[hdr-4:])
	if uint64(n) != uint64(len(body)-hdr) {
		return c, errChunkLength
	}
	if c.seq != wantSeq {
		return c, errChunkSeq
	}
	c.payload = body[hdr:]
	if c.format == 1 {
		return c, nil
	}
	codec, raw := v[48], binary.BigEndian.Uint32(v[49:])
	switch {
	case raw > maxChunkRaw:
		return c, fmt.Errorf("%w: %d bytes is over the limit", errChunkCodec, raw)
	case codec == codecNone:
		if uint64(raw) != uint64(len(c.payload)) {
			return c, errChunkLength
		}
	case codec == codecZstd:
		if scratch == nil {
			scratch = new([]byte)
		}
		out, err := zstdDecoder.DecodeAll(c.payload, (*scratch)[:0])
		if err != nil {
			return c, fmt.Errorf("%w: %v", errChunkCodec, err)
		}
		if uint64(len(out)) != uint64(raw) {
			return c, fmt.Errorf("%w: %d bytes, header says %d", errChunkCodec, len(out), raw)
		}
		*scratch = out
		c.payload = out
	default:
		return c, fmt.Errorf("%w: unknown codec %d", errChunkCodec, codec)
	}
	return c, nil
}

// zstdDecoder decompresses chunk payloads; DecodeAll is safe for
// concurrent use. Its memory is bounded like a chunk's raw size.
var zstdDecoder = func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxChunkRaw), zstd.WithDecoderMaxWindow(8<<20))
	if err != nil {
		panic(err) // only for invalid options
	}
	return d
}()

// newZstdEncoder returns the encoder the flusher compresses chunks with.
func newZstdEncoder() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(1<<20), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only for invalid options
	}
	return e
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
		if !typ.Valid() && !(c.format >= 2 && (binaryEvent(typ) || typ == EventConn)) {
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
		if !binaryEvent(typ) && !utf8.Valid(data) {
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
	id      string
	scratch []byte        // decompressed events of the last chunk
	next    uint64        // the sequence expected next
	head    [hashLen]byte // hash of the last good chunk (genesis at first)
	events  int64
	last    int64 // time of the last event, µs
	v2      bool  // a chunk of format 2 was seen
	// at, when set, asks to remember the head and event count once the
	// chain reaches that many chunks (a checkpoint's extent).
	at       int64
	atHead   [hashLen]byte
	atEvents int64
	atSeen   bool
}

func newChainChecker(id string) *chainChecker {
	return &chainChecker{id: id, head: genesis(id)}
}

// checkAt asks cc to remember the chain at n chunks (a checkpoint's
// extent); a checkpoint of no chunks is the genesis.
func (cc *chainChecker) checkAt(n int64) {
	cc.at = n
	if n == 0 {
		cc.atHead, cc.atEvents, cc.atSeen = cc.head, 0, true
	}
}

// check verifies the chunk stored as sequence seq and returns it; the
// error names what broke. fn, if not nil, sees each event.
func (cc *chainChecker) check(seq uint64, v []byte, fn func(rawEvent) error) (chunk, error) {
	if seq != cc.next {
		return chunk{}, errChunkMissing
	}
	c, err := parseChunk(v, cc.next, &cc.scratch)
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
	cc.v2 = cc.v2 || c.format == 2
	if cc.at > 0 && int64(cc.next) == cc.at {
		cc.atHead, cc.atEvents, cc.atSeen = cc.head, cc.events, true
	}
	return c, nil
}
