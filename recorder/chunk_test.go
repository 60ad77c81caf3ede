package recorder

import (
	"errors"
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
	{name: "bad type", v: rechunk([]byte{'x', 0, 0}, 1), want: errChunkEvents},
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
	if _, err := cc.check(chunkKey("s", 0), validChunk(), func(e rawEvent) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatalf("valid chunk: %v", err)
	}
	if len(evs) != 3 || string(evs[0].data) != "h\u00e9llo" || evs[1].event().Data != "80x24" {
		t.Errorf("got %+v", evs)
	}
	for _, tc := range badChunks {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newChainChecker("s").check(chunkKey("s", 0), tc.v, nil)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := newChainChecker("s").check(chunkKey("s", 1), validChunk(), nil); !errors.Is(err, errChunkMissing) {
		t.Errorf("key 1 first: got %v, want %v", err, errChunkMissing)
	}
	if _, err := newChainChecker("s").check(chunkKey("t", 0), validChunk(), nil); !errors.Is(err, errChunkSeq) {
		t.Errorf("foreign key: got %v, want %v", err, errChunkSeq)
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
		newChainChecker("s").check(chunkKey("s", 0), v, nil)
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
		_, err := newChainChecker("s").check(chunkKey("s", 0), rechunk(v, 1), func(rawEvent) error { n++; return nil })
		if err == nil && n != 1 {
			t.Fatalf("accepted with %d events, header says 1", n)
		}
	})
}
