package recorder

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bastionhq/bastion/internal/testenv"
)

// recordTCP records a TCP session: an HTTP exchange in several reads, then
// both sides close.
func recordTCP(t *testing.T, s *Store, clk *clock) string {
	t.Helper()
	r := begin(t, s, SessionInfo{ID: "tcp1", Kind: "tcp", Target: "web"})
	must(t, r.ConnEvent("open 10.1.2.3:51000 10.9.8.7:8080"))
	clk.Advance(1000)
	must(t, r.FromClient([]byte("GET /hello?x=1 HTTP/1.1\r\nHost: web\r\n\r\n")))
	clk.Advance(2000)
	body := bytes.Repeat([]byte("0123456789abcdef"), 300) // several segments
	must(t, r.FromServer([]byte("HTTP/1.1 200 OK\r\nContent-Length: 4800\r\n\r\n")))
	must(t, r.FromServer(body))
	must(t, r.FromServer([]byte{0, 1, 2, 0xff}[:0]))
	must(t, r.Marker("bastion: a note"))
	must(t, r.ConnEvent("client fin"))
	must(t, r.ConnEvent("server fin"))
	must(t, r.End(ExitInfo{Status: -1}))
	return r.ID()
}

func TestTCPTimeline(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	id := recordTCP(t, s, clk)
	var out bytes.Buffer
	must(t, s.Export(id, &out))
	for _, want := range []string{"connection open 10.1.2.3:51000 10.9.8.7:8080", "client -> target  38 bytes", "|GET /hello?x=1 H|", "target -> client  4800 bytes", "bytes elided", "bastion: a note", `"m", "bastion: a note"`, "connection client fin"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, out.String())
		}
	}
	if rep := verify(t, s, id); !rep.Intact {
		t.Fatalf("verify: %+v", rep)
	}
}

// The capture is read by the real tshark: the GET with its path, the 200,
// and both directions reassembled byte for byte.
func TestTCPPcapWithTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark is required in CI")
		}
		t.Skip("tshark not installed")
	}
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	id := recordTCP(t, s, clk)
	path := filepath.Join(t.TempDir(), "s.pcap")
	f, err := os.Create(path)
	must(t, err)
	must(t, s.ExportPcap(id, f))
	f.Close()
	run := func(args ...string) string {
		cmd := exec.Command(tshark, append([]string{"-r", path, "-o", "tcp.check_checksum:TRUE"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s%s", args, err, out, stderr.String())
		}
		return string(out)
	}
	fields := run("-T", "fields", "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code", "-Y", "http")
	if !strings.Contains(fields, "GET\t/hello?x=1") || !strings.Contains(fields, "200") {
		t.Errorf("http fields:\n%s", fields)
	}
	if bad := run("-Y", "tcp.analysis.flags || tcp.checksum.status == 0 || ip.checksum.status == 0"); strings.TrimSpace(bad) != "" {
		t.Errorf("tshark sees problems:\n%s", bad)
	}
	follow := run("-q", "-z", "follow,tcp,raw,0")
	if !strings.Contains(follow, "474554202f68656c6c6f") || !strings.Contains(follow, strings.Repeat("30313233343536373839616263646566", 3)) {
		t.Errorf("follow:\n%s", follow)
	}
	if err := s.ExportPcap("nope", &bytes.Buffer{}); err == nil {
		t.Error("a missing session exported")
	}
}

// A session without content (a tcp target with recording: metadata, a
// PostgreSQL one with recording: transcript) is refused with the reason
// and nothing written, rather than exported as an empty capture.
func TestPcapWithoutContent(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	for kind, want := range map[string]string{"tcp": "metadata only", "postgres": "transcript only"} {
		r := begin(t, s, SessionInfo{ID: "bare-" + kind, Kind: kind, Target: "t1"})
		if kind == "postgres" {
			must(t, r.Output([]byte("shop=> SELECT 1;\r\n")))
		}
		must(t, r.End(ExitInfo{}))
		var out bytes.Buffer
		if err := s.ExportPcap(r.ID(), &out); !errors.Is(err, ErrNoCapture) || !strings.Contains(err.Error(), want) || out.Len() != 0 {
			t.Errorf("%s: %v, %d bytes written", kind, err, out.Len())
		}
	}
}

// Past the session's byte budget (recording.max_bytes) the bytes still
// flow, unstored: the capture must not read as the whole conversation.
// The closes are still recorded, after how many bytes each side sent
// unstored, so the capture shows them missing before each side's FIN
// (Wireshark: previous segment not captured) at the sequence numbers the
// real connection had, and the timeline says so.
func TestPcapShowsUnstoredBytes(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark is required in CI")
		}
		t.Skip("tshark not installed")
	}
	cfg, clk := testConfig(t)
	cfg.SessionByteBudget = 100
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "tcp-budget", Kind: "tcp", Target: "web"})
	must(t, r.ConnEvent("open 10.1.2.3:51000 10.9.8.7:8080"))
	clk.Advance(1000)
	must(t, r.FromClient([]byte("GET /hello HTTP/1.1\r\nHost: web\r\n\r\n"))) // 34 bytes, stored
	must(t, r.FromServer(bytes.Repeat([]byte("A"), 50)))                      // 33 stored (the open event counts), 17 not
	must(t, r.FromClient(bytes.Repeat([]byte("DELETE"), 50)))                 // 300 bytes, unstored
	must(t, r.FromServer(bytes.Repeat([]byte("B"), 500)))                     // 500 bytes, unstored
	must(t, r.ConnEvent("client fin"))
	must(t, r.FromServer([]byte("C")))
	must(t, r.ConnEvent("server fin"))
	must(t, r.End(ExitInfo{Status: -1}))

	path := filepath.Join(t.TempDir(), "s.pcap")
	f, err := os.Create(path)
	must(t, err)
	must(t, s.ExportPcap(r.ID(), f))
	f.Close()
	cmd := exec.Command(tshark, "-r", path, "-Y", "tcp.flags.fin == 1", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.seq", "-e", "tcp.ack", "-e", "tcp.analysis.lost_segment")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v %s", err, out)
	}
	// The client sent 334 bytes and the target 551 (relative sequence
	// numbers count the SYN): each FIN sits where the real one did, and
	// the client's is flagged as following a segment not captured.
	fins := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(fins) != 2 || !strings.HasPrefix(fins[0], "51000\t335\t") || !strings.HasSuffix(fins[0], "\t1") ||
		!strings.HasPrefix(fins[1], "8080\t552\t336") {
		t.Errorf("FIN frames (port, seq, ack, lost segment): %q", fins)
	}
	var tl bytes.Buffer
	must(t, s.Export(r.ID(), &tl))
	for _, want := range []string{"recording truncated", "300 bytes from the client and 517 from the target passed unstored", "connection client fin", "connection server fin"} {
		if !strings.Contains(tl.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl.String())
		}
	}
	if rep := verify(t, s, r.ID()); !rep.Intact {
		t.Fatalf("verify: %+v", rep)
	}
}

// Content lost to a failed flush in best_effort mode is not joined up in
// the capture: the sequence numbers move past it (tshark: previous
// segment not captured), the FINs sit where the real ones did, and the
// timeline says the bytes were lost with the gap.
func TestPcapShowsGapBytes(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark is required in CI")
		}
		t.Skip("tshark not installed")
	}
	cfg, clk := testConfig(t)
	cfg.Mode = BestEffort
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "tcp-gap", Kind: "tcp", Target: "web"})
	must(t, r.ConnEvent("open 10.1.2.3:51000 10.9.8.7:8080"))
	clk.Advance(1000)
	must(t, r.FromClient([]byte("GET /a HTTP/1.1\r\n\r\n"))) // 19 bytes, stored
	s.sync()
	s.setFlushHook(t, func() error { return errDiskFull })
	clk.Advance(1000)
	must(t, r.FromServer(bytes.Repeat([]byte("L"), 3000))) // lost
	must(t, r.FromClient(bytes.Repeat([]byte("Q"), 40)))   // lost
	s.sync()
	s.setFlushHook(t, nil)
	clk.Advance(1000)
	must(t, r.FromServer([]byte("after the gap")))
	must(t, r.ConnEvent("client fin"))
	must(t, r.ConnEvent("server fin"))
	must(t, r.End(ExitInfo{Status: -1}))

	path := filepath.Join(t.TempDir(), "s.pcap")
	f, err := os.Create(path)
	must(t, err)
	must(t, s.ExportPcap(r.ID(), f))
	f.Close()
	out, err := exec.Command(tshark, "-r", path, "-Y", "tcp.flags.fin == 1 || tcp.analysis.lost_segment", "-T", "fields",
		"-e", "tcp.srcport", "-e", "tcp.seq", "-e", "tcp.flags.fin", "-e", "tcp.analysis.lost_segment").Output()
	if err != nil {
		t.Fatalf("tshark: %v %s", err, out)
	}
	// The client sent 19+40 bytes, the target 3000+13 (relative sequence
	// numbers count the SYN). The target's segment after the gap is
	// flagged, and so is the client's FIN.
	// (tshark versions print a flag as 0/1 or False/True.)
	norm := strings.NewReplacer("True", "1", "False", "0")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		got = append(got, strings.TrimRight(norm.Replace(line), "\t"))
	}
	want := []string{"8080\t3001\t0\t1", "51000\t60\t1\t1", "8080\t3014\t1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("frames (port, seq, fin, lost segment):\n%q\nwant\n%q", got, want)
	}
	var tl bytes.Buffer
	must(t, s.Export(r.ID(), &tl))
	for _, want := range []string{"recording gap: 2 events", "40 bytes from the client and 3000 from the target passed unstored (lost with the recording gap above)"} {
		if !strings.Contains(tl.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl.String())
		}
	}
	if rep := verify(t, s, r.ID()); !rep.Intact || !rep.Sealed {
		t.Fatalf("verify: %+v", rep)
	}
}

var unstoredCases = []struct {
	in       string
	c, s     uint64
	lost, ok bool
}{
	{"unstored 300 517", 300, 517, false, true},
	{"unstored 40 3000 lost", 40, 3000, true, true},
	{"unstored 0 0", 0, 0, false, true},
	{"unstored 1", 0, 0, false, false},
	{"unstored 1 2 gone", 0, 0, false, false},
	{"unstored 1 2 lost extra", 0, 0, false, false},
	{"unstored -1 2", 0, 0, false, false},
	{"unstored 1 18446744073709551616", 0, 0, false, false},
	{"unstored 0x10 2", 0, 0, false, false},
	{"open 1.2.3.4:5 6.7.8.9:10", 0, 0, false, false},
	{"", 0, 0, false, false},
	{"unstored\x00 1 2", 0, 0, false, false},
}

func TestParseUnstored(t *testing.T) {
	for _, tc := range unstoredCases {
		c, s, lost, ok := parseUnstored([]byte(tc.in))
		if ok != tc.ok || ok && (c != tc.c || s != tc.s || lost != tc.lost) {
			t.Errorf("parseUnstored(%q) = %d %d %v %v", tc.in, c, s, lost, ok)
		}
	}
}

// FuzzParseUnstored: a connection event's text comes from the store; any
// bytes are refused or read back as what they say.
func FuzzParseUnstored(f *testing.F) {
	for _, tc := range unstoredCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, s, lost, ok := parseUnstored(b)
		if !ok {
			return
		}
		// What was accepted says exactly that: the word, two decimal
		// numbers (leading zeros allowed), "lost" or nothing.
		f := strings.Fields(string(b))
		num := func(v string, n uint64) bool {
			v = strings.TrimLeft(v, "0")
			if v == "" {
				v = "0"
			}
			return v == fmt.Sprint(n)
		}
		if f[0] != "unstored" || !num(f[1], c) || !num(f[2], s) || lost != (len(f) == 4) || len(f) == 4 && f[3] != "lost" {
			t.Fatalf("%q read as %d %d lost=%v", b, c, s, lost)
		}
	})
}

// A capture (or the timeline) of a damaged session is refused before
// anything is written:
// a pcap is read later, apart from the error the export printed, so one
// cut at the damage (or one whose chain is consistent but does not match
// its seal, found only at its end) would read as the session. The
// session is large enough that the export's buffer would have been
// written out several times before the damage was found.
func TestPcapOfDamagedSessionWritesNothing(t *testing.T) {
	const chunks = 6
	record := func(t *testing.T) (Config, string, string) {
		cfg, clk := testConfig(t)
		s, err := Open(cfg)
		must(t, err)
		rng := rand.New(rand.NewPCG(1, 2))
		r := begin(t, s, SessionInfo{ID: "victim", Kind: "tcp", Target: "web"})
		other := begin(t, s, SessionInfo{ID: "other", Kind: "tcp", Target: "web"})
		must(t, r.ConnEvent("open 10.1.2.3:51000 10.9.8.7:8080"))
		must(t, other.ConnEvent("open 10.1.2.3:51001 10.9.8.7:8080"))
		for range chunks {
			clk.Advance(1000)
			b := make([]byte, 200<<10) // random: stored as it is
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			must(t, r.FromServer(b))
			must(t, other.FromServer(b[:100]))
			s.sync()
		}
		must(t, r.ConnEvent("client fin"))
		must(t, r.ConnEvent("server fin"))
		must(t, r.End(ExitInfo{Status: -1}))
		must(t, other.End(ExitInfo{Status: -1}))
		must(t, s.Close())
		return cfg, r.ID(), other.ID()
	}
	last := func(t *testing.T, cfg Config, id string) uint64 {
		db, err := bolt.Open(cfg.Path, 0o600, nil)
		must(t, err)
		defer db.Close()
		var n uint64
		db.View(func(tx *bolt.Tx) error {
			for n = 0; tx.Bucket(bucketChunks).Get(chunkKey(id, n+1)) != nil; n++ {
			}
			return nil
		})
		return n
	}
	tests := []struct {
		name string
		edit func(id, other string, last uint64) func(*bolt.Tx) error
	}{
		{"flipped byte in the last chunk", func(id, _ string, last uint64) func(*bolt.Tx) error {
			return editChunk(id, last, flipAt(chunkHeaderLenV2+3))
		}},
		{"last chunk rewritten with a fresh hash", func(id, _ string, last uint64) func(*bolt.Tx) error {
			return editChunk(id, last, reseal)
		}},
		{"last chunk deleted", func(id, _ string, last uint64) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket(bucketChunks).Delete(chunkKey(id, last)) }
		}},
		{"last chunk truncated", func(id, _ string, last uint64) func(*bolt.Tx) error {
			return editChunk(id, last, func(v []byte) []byte { return v[:len(v)/2] })
		}},
		{"a middle chunk deleted", func(id, _ string, last uint64) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket(bucketChunks).Delete(chunkKey(id, last-1)) }
		}},
		// The capture's times are the session's start plus each event's
		// offset: a start moved in the record moves every frame.
		{"session start changed", func(id, _ string, _ uint64) func(*bolt.Tx) error {
			return editJSON(bucketSessions, id, func(m map[string]any) { m["start"] = "2024-01-01T00:00:00Z" })
		}},
		{"session user changed", func(id, _ string, _ uint64) func(*bolt.Tx) error {
			return editJSON(bucketSessions, id, func(m map[string]any) { m["user"] = "mallory" })
		}},
		{"another session's chunk spliced in", func(id, other string, last uint64) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketChunks)
				return b.Put(chunkKey(id, last-1), bytes.Clone(b.Get(chunkKey(other, 2))))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, id, other := record(t)
			n := last(t, cfg, id)
			if n < chunks-1 {
				t.Fatalf("the session has %d chunks", n+1)
			}
			tamper(t, cfg.Path, tc.edit(id, other, n))
			s := openStore(t, cfg)
			if rep := verify(t, s, id); rep.Intact || rep.Problem == "" {
				t.Fatalf("verify: %+v", rep)
			}
			var out bytes.Buffer
			err := s.ExportPcap(id, &out)
			if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "bastion verify") {
				t.Errorf("ExportPcap: %v, want %v saying to run verify", err, ErrBroken)
			}
			if out.Len() != 0 {
				t.Errorf("%d bytes of capture written before the damage was reported", out.Len())
			}
			// The timeline (export, replay) likewise: nothing but the
			// header before the error.
			out.Reset()
			if err := s.Export(id, &out); !errors.Is(err, ErrBroken) {
				t.Errorf("Export: %v, want %v", err, ErrBroken)
			}
			if n := strings.Count(out.String(), "\n"); n > 1 {
				t.Errorf("%d lines of timeline written before the damage was reported", n)
			}
		})
	}
}

// A connection the bastion cut (idle timeout, a withdrawn grant, a strict
// recording that failed) is recorded as "cut", not as each side's FIN:
// the capture resets each side still open, after the client's own FIN if
// it had half-closed, and the timeline says the bastion cut it.
func TestPcapShowsCut(t *testing.T) {
	testenv.Require(t, "tshark")
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "tcp-cut", Kind: "tcp", Target: "web"})
	must(t, r.ConnEvent("open 10.1.2.3:51000 10.9.8.7:8080"))
	clk.Advance(1000)
	must(t, r.FromClient([]byte("SUBSCRIBE news\r\n")))
	must(t, r.ConnEvent("client fin"))
	must(t, r.FromServer([]byte("+OK\r\n")))
	must(t, r.Marker("bastion: session ended: idle timeout after 30m0s without activity"))
	must(t, r.ConnEvent("cut"))
	must(t, r.End(ExitInfo{Status: -1}))
	path := filepath.Join(t.TempDir(), "s.pcap")
	f, err := os.Create(path)
	must(t, err)
	must(t, s.ExportPcap(r.ID(), f))
	f.Close()
	out, err := exec.Command("tshark", "-r", path, "-Y", "tcp.flags.fin == 1 || tcp.flags.reset == 1", "-T", "fields",
		"-e", "tcp.srcport", "-e", "tcp.seq", "-e", "tcp.flags.fin", "-e", "tcp.flags.reset").Output()
	if err != nil {
		t.Fatalf("tshark: %v %s", err, out)
	}
	norm := strings.NewReplacer("True", "1", "False", "0")
	got := strings.Split(strings.TrimSpace(norm.Replace(string(out))), "\n")
	// The client's FIN, then the target's RST (it had not closed): the
	// client's side was already closed.
	want := []string{"51000\t17\t1\t0", "8080\t6\t0\t1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("closing frames (port, seq, fin, rst):\n%q\nwant\n%q", got, want)
	}
	var tl bytes.Buffer
	must(t, s.Export(r.ID(), &tl))
	for _, want := range []string{"] bastion: session ended: idle timeout", "connection cut by the bastion"} {
		if !strings.Contains(tl.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl.String())
		}
	}
	if strings.Contains(tl.String(), "bastion: bastion:") {
		t.Errorf("timeline repeats the marker's prefix:\n%s", tl.String())
	}
}

// Odd traffic the capture must still get right: an IPv6 client with an
// IPv4 target (shown v4-mapped: one connection has one family), a
// client sequence number that wraps past 2^32 mid-stream (the initial
// one comes from the session ID: this one is 1558 below the wrap),
// empty reads, the clock stepping back (times never go backwards), a
// half-close with the target still sending, then its reset.
func TestPcapOddTraffic(t *testing.T) {
	testenv.Require(t, "tshark")
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	const id = "wrap-670682" // sha256's first word: 0xfffff9e9
	r := begin(t, s, SessionInfo{ID: id, Kind: "tcp", Target: "web"})
	must(t, r.ConnEvent("open [2001:db8::5]:51000 10.9.8.7:8080"))
	clk.Advance(time.Second)
	client := bytes.Repeat([]byte("0123456789"), 500)
	must(t, r.FromClient(client))
	must(t, r.FromClient(nil))
	clk.Advance(-5 * time.Second)
	must(t, r.FromServer([]byte("hello")))
	must(t, r.ConnEvent("client fin"))
	clk.Advance(time.Second)
	for i := range 5 {
		must(t, r.FromServer([]byte{'a' + byte(i)}))
	}
	must(t, r.ConnEvent("server rst"))
	must(t, r.End(ExitInfo{Status: -1}))
	path := filepath.Join(t.TempDir(), "s.pcap")
	f, err := os.Create(path)
	must(t, err)
	must(t, s.ExportPcap(id, f))
	f.Close()
	run := func(args ...string) string {
		out, err := exec.Command("tshark", append([]string{"-r", path, "-o", "tcp.check_checksum:TRUE"}, args...)...).Output()
		if err != nil {
			t.Fatalf("tshark %v: %v", args, err)
		}
		return string(out)
	}
	if bad := run("-Y", "tcp.analysis.flags && !tcp.flags.reset || tcp.checksum.status == 0"); strings.TrimSpace(bad) != "" {
		t.Errorf("tshark sees problems:\n%s", bad)
	}
	fields := strings.TrimSpace(run("-T", "fields", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "tcp.seq_raw", "-e", "frame.time_delta", "-Y", "tcp.len > 0"))
	lines := strings.Split(fields, "\n")
	if !strings.HasPrefix(lines[0], "2001:db8::5\t::ffff:10.9.8.7\t4294965739") {
		t.Errorf("first data frame: %q", lines[0])
	}
	wrapped := false
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if strings.HasPrefix(f[3], "-") {
			t.Errorf("time goes backwards: %q", l)
		}
		wrapped = wrapped || f[0] == "2001:db8::5" && len(f[2]) < 6
	}
	if !wrapped {
		t.Errorf("the client's sequence numbers did not wrap:\n%s", fields)
	}
	c, sv := followRawLocal(t, run("-q", "-z", "follow,tcp,raw,0"))
	if !bytes.Equal(c, client) || string(sv) != "helloabcde" {
		t.Errorf("follow: client %d bytes (equal %v), server %q", len(c), bytes.Equal(c, client), sv)
	}
}

// followRawLocal reassembles both directions of tshark's follow,tcp,raw
// (the target's lines are indented).
func followRawLocal(t *testing.T, out string) (client, server []byte) {
	t.Helper()
	started := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Node 1:") {
			started = true
			continue
		}
		if !started || strings.HasPrefix(line, "====") || strings.TrimSpace(line) == "" {
			continue
		}
		b, err := hex.DecodeString(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("follow line %q: %v", line, err)
		}
		if strings.HasPrefix(line, "\t") {
			server = append(server, b...)
		} else {
			client = append(client, b...)
		}
	}
	return client, server
}
