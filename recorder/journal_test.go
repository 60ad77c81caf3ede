package recorder

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// What Audit and AuditOnce answered survives a crash before the applier
// wrote it to the audit log: Open applies the journal, the chain verifies
// and a spent token stays spent.
func TestAuditJournalSurvivesCrash(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	if _, err := s.Audit(AuditEvent{Type: "before"}); err != nil {
		t.Fatal(err)
	}
	must(t, s.syncAudit())
	s.jr.hold.Store(true) // the applier stops applying: what follows is in the journal only
	exp := clk.Now().Add(5 * time.Minute)
	var ids []string
	for i := range 30 {
		id, err := s.AuditOnce(AuditEvent{Type: "cert.issue", User: fmt.Sprint("u", i)}, fmt.Appendf(nil, "tok-%d", i), exp)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue"}, []byte("tok-3"), exp); !errors.Is(err, ErrReplay) {
		t.Fatalf("a token spent in the journal only: %v", err)
	}
	// Nothing of it is in bbolt yet.
	var head uint64
	must(t, s.b.View(func(tx Tx) error {
		var err error
		head, _, err = tx.AuditTail()
		return err
	}))
	if head != 1 {
		t.Fatalf("the applier applied while held: audit head %d", head)
	}
	s.crashed.Store(true)
	s.Close()

	// Offline readers are told what the journal holds beyond the log.
	ro, err := OpenReadOnly(cfg.Path, 0)
	must(t, err)
	if n, err := ro.UnappliedAudit(); err != nil || n != len(ids) {
		t.Fatalf("UnappliedAudit: %d %v, want %d", n, err, len(ids))
	}
	must(t, ro.Close())

	s = openStore(t, cfg)
	var got []string
	must(t, s.AuditEvents(time.Time{}, func(ev AuditEvent) error {
		if ev.Type == "cert.issue" {
			got = append(got, ev.ID)
		}
		return nil
	}))
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("after the crash: records\n got %v\nwant %v", got, ids)
	}
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
		t.Fatalf("chain after recovery: %+v %v", rep, err)
	}
	if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue"}, []byte("tok-7"), exp); !errors.Is(err, ErrReplay) {
		t.Fatalf("a token spent before the crash: %v", err)
	}
	// Opening again applies nothing twice.
	must(t, s.Close())
	s = openStore(t, cfg)
	n := 0
	must(t, s.AuditEvents(time.Time{}, func(ev AuditEvent) error {
		if ev.Type == "cert.issue" {
			n++
		}
		return nil
	}))
	if n != len(ids) {
		t.Fatalf("after a second open: %d records, want %d", n, len(ids))
	}
	must(t, s.Close())
	ro, err = OpenReadOnly(cfg.Path, 0)
	must(t, err)
	if n, err := ro.UnappliedAudit(); err != nil || n != 0 {
		t.Fatalf("UnappliedAudit after applying: %d %v", n, err)
	}
	must(t, ro.Close())
}

// The journal starts over once everything in it is applied, many times
// over; records keep their order and the chain verifies, across reopening.
func TestAuditJournalRewinds(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	big := string(bytes.Repeat([]byte("r"), 60<<10))
	const n = 80 // about 5 MiB: the file starts over at least once
	for i := range n {
		if _, err := s.Audit(AuditEvent{Type: "t", Reason: big, User: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	must(t, s.Close())
	s = openStore(t, cfg)
	i := 0
	must(t, s.AuditEvents(time.Time{}, func(ev AuditEvent) error {
		if ev.User != fmt.Sprint(i) {
			return fmt.Errorf("record %d is user %q", i, ev.User)
		}
		i++
		return nil
	}))
	if i != n {
		t.Fatalf("%d records, want %d", i, n)
	}
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
		t.Fatalf("chain: %+v %v", rep, err)
	}
	if st, err := os.Stat(journalPath(cfg.Path)); err != nil || st.Size() != journalSize {
		t.Fatalf("journal file: %v %v", st, err)
	}
}

func journalFrameOf(n uint64, body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint64(b, n)
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], journalCRC))
	return b
}

const journalBody = `{"ev":{"id":"01J","type":"cert.issue","time":"2026-12-05T00:00:00Z"}}`

// parseJournal stops at the first frame that is not the next entry, and
// never fails or reads past its input.
func TestParseJournal(t *testing.T) {
	good := append(journalFrameOf(7, journalBody), journalFrameOf(8, journalBody)...)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-3] ^= 1
	cases := []struct {
		name string
		data []byte
		want int
	}{
		{"empty", nil, 0},
		{"zeros", make([]byte, 4096), 0},
		{"two entries", good, 2},
		{"then zeros", append(bytes.Clone(good), make([]byte, 100)...), 2},
		{"torn second", good[:len(good)-5], 1},
		{"short frame", good[:10], 0},
		{"flipped byte in the second", flipped, 1},
		{"numbering gap", append(journalFrameOf(7, journalBody), journalFrameOf(9, journalBody)...), 1},
		{"stale older entry after", append(bytes.Clone(good), journalFrameOf(3, journalBody)...), 2},
		{"length beyond the data", append(binary.BigEndian.AppendUint32(nil, 1<<30), make([]byte, 40)...), 0},
		{"not JSON", journalFrameOf(1, "nope"), 0},
		{"no event type", journalFrameOf(1, `{"ev":{"id":"x"}}`), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, end := parseJournal(c.data)
			if len(got) != c.want {
				t.Fatalf("%d entries, want %d", len(got), c.want)
			}
			if end > int64(len(c.data)) {
				t.Fatalf("end %d past %d bytes", end, len(c.data))
			}
		})
	}
}

func FuzzParseJournal(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(journalFrameOf(1, journalBody))
	f.Add(append(journalFrameOf(7, journalBody), journalFrameOf(8, journalBody)...))
	f.Add(append(journalFrameOf(7, journalBody), journalFrameOf(9, journalBody)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, end := parseJournal(data)
		if end < 0 || end > int64(len(data)) {
			t.Fatalf("end %d outside %d bytes", end, len(data))
		}
		for i := 1; i < len(entries); i++ {
			if entries[i].n != entries[i-1].n+1 {
				t.Fatalf("entries %d and %d not consecutive", entries[i-1].n, entries[i].n)
			}
		}
	})
}

// A journal file that holds garbage (a disk's or an attacker's) is read up
// to the first bad frame; the store opens.
func TestAuditJournalGarbage(t *testing.T) {
	cfg, _ := testConfig(t)
	must(t, os.MkdirAll(filepath.Dir(cfg.Path), 0o700))
	must(t, os.WriteFile(journalPath(cfg.Path), bytes.Repeat([]byte{0xff, 0x00, 0x13}, 5000), 0o600))
	s := openStore(t, cfg)
	if _, err := s.Audit(AuditEvent{Type: "after"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact || rep.Chunks != 1 {
		t.Fatalf("chain: %+v %v", rep, err)
	}
}

// An entry is written as json.Marshal would write it, and the event's JSON
// kept for the applier is what appendAudit would have encoded.
func TestJournalEntryMarshal(t *testing.T) {
	at := time.Date(2026, 12, 5, 15, 0, 0, 123456789, time.UTC)
	for _, e := range []journalEntry{
		{Event: AuditEvent{ID: "01J", Time: at, Type: "cert.issue", User: "al\"ice<>&\u2028", Fields: map[string]string{"b": "2", "a": "\x1b[2J"}}},
		{Event: AuditEvent{ID: "01K", Time: at, Type: "cert.issue"}, Token: []byte{0, 1, 2, 0xff, 0xfe}, Expires: at.UnixNano()},
		{Event: AuditEvent{ID: "01L", Time: at, Type: "x"}, Token: bytes.Repeat([]byte{7}, 32)},
	} {
		got, err := e.marshal()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&e)
		if !bytes.Equal(got, want) {
			t.Errorf("entry:\n got %s\nwant %s", got, want)
		}
		ev, _ := json.Marshal(e.Event)
		if !bytes.Equal(e.event, ev) {
			t.Errorf("event JSON:\n got %s\nwant %s", e.event, ev)
		}
		var back journalEntry
		if err := json.Unmarshal(got, &back); err != nil || back.Event.ID != e.Event.ID || !bytes.Equal(back.Token, e.Token) || back.Expires != e.Expires {
			t.Errorf("read back %+v, %v", back, err)
		}
	}
}

// The applier signs the chain's head in the transaction that appends the
// journal's entries: the head is covered without the flusher (whose
// interval here is an hour) committing a checkpoint of its own.
func TestAuditApplySignsHead(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	for round := range 3 {
		for i := range 5 {
			if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue", User: fmt.Sprint("u", i)},
				fmt.Appendf(nil, "tok-%d-%d", round, i), clk.Now().Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		must(t, s.syncAudit())
		var tail, signed uint64
		must(t, s.b.View(func(tx Tx) error {
			var err error
			if tail, _, err = tx.AuditTail(); err != nil {
				return err
			}
			return tx.AuditCheckpoints(0, ^uint64(0), func(seq uint64, _ []byte) error {
				signed = seq
				return nil
			})
		}))
		if tail != uint64(5*(round+1)) || signed != tail {
			t.Fatalf("round %d: audit head %d, newest checkpoint at %d", round, tail, signed)
		}
		if s.auditDirty.Load() {
			t.Fatalf("round %d: the head is marked unsigned after the applier signed it", round)
		}
		if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
			t.Fatalf("round %d: %+v %v", round, rep, err)
		}
	}
}
