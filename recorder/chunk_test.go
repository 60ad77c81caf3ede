package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

func validChunk() []byte {
	p := appendEvent(nil, asciicast.Output, 5, []byte("h\u00e9llo"))
	p = appendEvent(p, asciicast.Resize, 6, []byte("80x24"))
	p = appendEvent(p, asciicast.Marker, 6, []byte("m"))
	v, _ := newChunk(p, 0, genesis("s"), 3)
	return v
}

// rechunk rebuilds a valid chunk around a payload, so that the payload
// checks (not the hash) are what fails.
func rechunk(payload []byte, events int) []byte {
	v, _ := newChunk(payload, 0, genesis("s"), events)
	return v
}

// recodec builds a format 2 chunk of a compressible payload, then sets its
// codec and raw length (raw -1 keeps it; -2 also replaces the payload by
// bytes that are not zstd), and rehashes it.
func recodec(codec byte, raw int) []byte {
	p := appendEvent(nil, asciicast.Output, 1, bytes.Repeat([]byte("compress me "), 50))
	buf := append(make([]byte, chunkHeaderLen), p...)
	v, _ := encodeChunk(nil, buf, 0, genesis("s"), 1, newZstdEncoder())
	v = v[:len(v)-hashLen]
	if v[48] != codecZstd {
		panic("not compressed")
	}
	if raw == -2 {
		v = append(v[:chunkHeaderLenV2], "not zstd at all"...)
		binary.BigEndian.PutUint32(v[53:], uint32(len(v)-chunkHeaderLenV2))
		raw = -1
	}
	v[48] = codec
	if raw >= 0 {
		binary.BigEndian.PutUint32(v[49:], uint32(raw))
	}
	sum := sha256.Sum256(v)
	return append(v, sum[:]...)
}

// Stored chunks are outside bytes too (anyone with the file can edit them).
var badChunks = []struct {
	name string
	v    []byte
	want error
}{
	{name: "empty", v: nil, want: errChunkShort},
	{name: "short", v: validChunk()[:40], want: errChunkShort},
	{name: "bad magic", v: append([]byte("XXXX"), validChunk()[4:]...), want: errChunkMagic},
	{name: "flipped byte", v: func() []byte { v := validChunk(); v[60] ^= 1; return v }(), want: errChunkHash},
	{name: "bad type", v: rechunk([]byte{'z', 0, 0}, 1), want: errChunkEvents},
	{name: "binary data in a text event", v: rechunk([]byte{'o', 0, 2, 0xff, 0xfe}, 1), want: errChunkEvents},
	{name: "unknown codec", v: recodec(7, -1), want: errChunkCodec},
	{name: "raw length over the limit", v: recodec(codecZstd, maxChunkRaw+1), want: errChunkCodec},
	{name: "raw length does not match", v: recodec(codecZstd, 3), want: errChunkCodec},
	{name: "uncompressed with a wrong raw length", v: recodec(codecNone, 3), want: errChunkLength},
	{name: "not zstd", v: recodec(codecZstd, -2), want: errChunkCodec},
	{name: "bad varint", v: rechunk([]byte{'o', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1), want: errChunkEvents},
	{name: "length beyond payload", v: rechunk([]byte{'o', 0, 50, 'a'}, 1), want: errChunkEvents},
	{name: "huge length", v: rechunk([]byte{'o', 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 1), want: errChunkEvents},
	{name: "invalid utf8", v: rechunk([]byte{'o', 0, 1, 0xff}, 1), want: errChunkEvents},
	{name: "bad resize", v: rechunk(appendEvent(nil, asciicast.Resize, 0, []byte("0x0")), 1), want: errChunkEvents},
	{name: "time goes back", v: rechunk(appendEvent(appendEvent(nil, asciicast.Output, 9, nil), asciicast.Output, 8, nil), 2), want: errChunkTime},
	{name: "count mismatch", v: rechunk(appendEvent(nil, asciicast.Output, 0, nil), 2), want: errChunkCount},
	{name: "wrong chain", v: func() []byte { v, _ := newChunk(nil, 0, genesis("other"), 0); return v }(), want: errChunkLink},
}

func TestChunkChecks(t *testing.T) {
	cc := newChainChecker("s")
	var evs []rawEvent
	if _, err := cc.check(0, validChunk(), func(e rawEvent) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatalf("valid chunk: %v", err)
	}
	if len(evs) != 3 || string(evs[0].data) != "h\u00e9llo" || evs[1].event().Data != "80x24" {
		t.Errorf("got %+v", evs)
	}
	for _, tc := range badChunks {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newChainChecker("s").check(0, tc.v, nil)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := newChainChecker("s").check(1, validChunk(), nil); !errors.Is(err, errChunkMissing) {
		t.Errorf("key 1 first: got %v, want %v", err, errChunkMissing)
	}
	if _, err := newChainChecker("s").check(^uint64(0), validChunk(), nil); !errors.Is(err, errChunkMissing) {
		t.Errorf("malformed key: got %v, want %v", err, errChunkMissing)
	}
}

// A compressed chunk reads back as the events written, and costs less.
func TestChunkCompression(t *testing.T) {
	var p []byte
	for i := range 500 {
		p = appendEvent(p, asciicast.Output, int64(i), []byte(strings.Repeat("2026-12-05 INFO request ok\n", 3)))
	}
	p = appendEvent(p, EventFromClient, 600, []byte{0, 0xff, 0xfe, 'G'})
	p = appendEvent(p, EventConn, 601, []byte("client fin"))
	buf := append(make([]byte, chunkHeaderLen), p...)
	v, h := encodeChunk(nil, buf, 0, genesis("s"), 502, newZstdEncoder())
	if v[48] != codecZstd || len(v) > len(p)/4 {
		t.Fatalf("codec %d, %d bytes stored for %d", v[48], len(v), len(p))
	}
	cc := newChainChecker("s")
	var evs []rawEvent
	c, err := cc.check(0, v, func(e rawEvent) error { evs = append(evs, rawEvent{e.typ, e.us, bytes.Clone(e.data)}); return nil })
	if err != nil || c.hash != h || c.format != 2 {
		t.Fatalf("check: %v, format %d", err, c.format)
	}
	if len(evs) != 502 || !bytes.Equal(evs[500].data, []byte{0, 0xff, 0xfe, 'G'}) || evs[501].typ != EventConn {
		t.Fatalf("got %d events, last %+v", len(evs), evs[len(evs)-1])
	}
	// Incompressible events are stored as they are.
	rnd := make([]byte, 4096)
	for i := range rnd {
		rnd[i] = byte(i*7919 + i>>3)
	}
	v, _ = encodeChunk(nil, append(make([]byte, chunkHeaderLen), appendEvent(nil, EventFromServer, 0, rnd)...), 0, genesis("s"), 1, newZstdEncoder())
	if _, err := newChainChecker("s").check(0, v, nil); err != nil {
		t.Fatalf("incompressible: %v", err)
	}

	// A large chunk whose sample does not compress is stored as it is
	// without compressing the rest; one whose sample does is compressed,
	// even when its head is dense.
	dense := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(dense)
	for _, tc := range []struct {
		name  string
		data  []byte
		codec byte
	}{
		{"random", dense, codecNone},
		{"text after a dense head", append(bytes.Clone(dense[:64<<10]), bytes.Repeat([]byte("GET /healthz 200\n"), 60000)...), codecZstd},
	} {
		var p []byte
		n := 0
		for d := tc.data; len(d) > 0; d = d[min(len(d), maxEventData):] {
			p = appendEvent(p, EventFromServer, 0, d[:min(len(d), maxEventData)])
			n++
		}
		scratch := make([]byte, 0, 16)
		v, _ := encodeChunk(scratch, append(make([]byte, chunkHeaderLen), p...), 0, genesis("s"), n, newZstdEncoder())
		if v[48] != tc.codec {
			t.Errorf("%s: codec %d, want %d", tc.name, v[48], tc.codec)
		}
		var got []byte
		if _, err := newChainChecker("s").check(0, v, func(e rawEvent) error { got = append(got, e.data...); return nil }); err != nil || !bytes.Equal(got, tc.data) {
			t.Errorf("%s: %v, %d bytes back of %d", tc.name, err, len(got), len(tc.data))
		}
	}
}

// BenchmarkEncodeChunk compresses a 1 MiB chunk of forwarded bytes: random
// (TLS, compressed files) and log text.
func BenchmarkEncodeChunk(b *testing.B) {
	dense := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(dense)
	text := bytes.Repeat([]byte("2026-12-05T10:00:00.123Z web1 nginx[3108]: GET /api/v1/items?page=7 status=200 bytes=18373\n"), (1<<20)/92)
	for _, tc := range []struct {
		name string
		data []byte
	}{{"random", dense}, {"text", text}} {
		b.Run(tc.name, func(b *testing.B) {
			buf := append(make([]byte, chunkHeaderLen), appendEvent(nil, EventFromServer, 0, tc.data)...)
			enc := newZstdEncoder()
			var dst []byte
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				dst, _ = encodeChunk(dst[:0], buf, 0, genesis("s"), 1, enc)
			}
		})
	}
}

func FuzzChunk(f *testing.F) {
	f.Add(validChunk())
	for _, tc := range badChunks {
		f.Add(tc.v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		// Random bytes almost never pass the hash; check the payload decoder
		// directly as well.
		newChainChecker("s").check(0, v, nil)
		var last int64
		walkEvents(chunk{payload: v, events: -1}, &last, func(e rawEvent) error {
			if !e.typ.Valid() || e.us < 0 {
				t.Fatalf("bad event accepted: %+v", e)
			}
			return nil
		})
		// A chunk rebuilt around the bytes either checks or fails cleanly,
		// and what checks is what the walk delivers.
		var n int
		_, err := newChainChecker("s").check(0, rechunk(v, 1), func(rawEvent) error { n++; return nil })
		if err == nil && n != 1 {
			t.Fatalf("accepted with %d events, header says 1", n)
		}
	})
}
