package recorder

import (
	"errors"
	"testing"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// EventsSeek reads a recording from a chunk a first walk noted, with the
// same events as from the start, and checks that chunk's link: a Seek
// made up (without the previous chunk's hash) is refused.
func TestEventsSeek(t *testing.T) {
	cfg, id, _ := recordChunks(t, 4)
	s := openStore(t, cfg)
	var seeks []Seek
	var all []string
	must(t, s.EventsSeek(id, Seek{}, func(at Seek, ev asciicast.Event, data []byte) error {
		if len(seeks) == 0 || seeks[len(seeks)-1].Chunk != at.Chunk {
			seeks = append(seeks, at)
		}
		all = append(all, string(data))
		return nil
	}))
	if len(seeks) < 4 || len(all) < 4 {
		t.Fatalf("chunks %v, events %q", seeks, all)
	}
	var tail []string
	must(t, s.EventsSeek(id, seeks[2], func(at Seek, ev asciicast.Event, data []byte) error {
		if at.Chunk < 2 {
			t.Errorf("an event of chunk %d", at.Chunk)
		}
		tail = append(tail, string(data))
		return nil
	}))
	if got, want := len(tail), len(all)-2; got != want || tail[0] != all[2] {
		t.Errorf("from chunk 2: %q, want the last %d of %q", tail, want, all)
	}
	err := s.EventsSeek(id, Seek{Chunk: 2}, func(Seek, asciicast.Event, []byte) error { return nil })
	if !errors.Is(err, ErrBroken) {
		t.Errorf("a made-up Seek: got %v, want %v", err, ErrBroken)
	}
	if err := s.EventsSeek("nonesuch", Seek{}, func(Seek, asciicast.Event, []byte) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("no session: got %v", err)
	}
}
