package recorder

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

var sessionJSONCases = []SessionInfo{
	{},
	{ID: "01JEXAMPLE", Kind: "shell", User: "alice", Issuer: "https://idp.example", Subject: "u-1", Actor: "octocat",
		Target: "web1", Login: "root", Command: "ls -la", ClientAddr: "127.0.0.1:5022", CertSerial: 1<<64 - 1,
		Width: 80, Height: 24, Term: "xterm-256color", Start: time.Date(2026, 12, 7, 23, 0, 0, 123456789, time.UTC),
		End: time.Date(2026, 12, 7, 23, 5, 0, 0, time.UTC), ExitStatus: -1, ExitSignal: "KILL", Reason: "cut",
		Status: StatusEnded, BytesIn: 1, BytesOut: 1 << 40, Events: 7, Chunks: 3, Truncated: true, Stored: 9,
		Compressed: 5, Error: "disk full", Replica: "r1", ReplicaName: "east", Database: "app", Statements: 12,
		Blocked: 1, Approved: 2, Denied: 3},
	{Kind: "tcp", Target: `<x>&"\`, Command: "\x00\x1f\x7f\u2028\u2029 é 😀", Reason: "bad \xff\xfe utf-8 \xe2\x80",
		Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Width: -3, Blocked: -1},
}

// TestSessionJSON: the hand-written encoder gives json.Marshal's bytes, and
// refuses the times json.Marshal refuses.
func TestSessionJSON(t *testing.T) {
	for _, info := range sessionJSONCases {
		checkSessionJSON(t, info)
	}
	for _, info := range []SessionInfo{
		{Start: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{End: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		checkSessionJSON(t, info)
		if _, err := appendSessionJSON(nil, &info); err == nil {
			t.Errorf("%v: a time json.Marshal refuses was encoded", info)
		}
	}
}

func checkSessionJSON(t *testing.T, info SessionInfo) {
	t.Helper()
	want, werr := json.Marshal(info)
	got, gerr := appendSessionJSON(nil, &info)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
		t.Errorf("%#v:\n got %s (%v)\nwant %s (%v)", info, got, gerr, want, werr)
	}
}

func FuzzSessionJSON(f *testing.F) {
	for _, in := range sessionJSONCases {
		f.Add(in.ID, in.Command, in.Reason, in.Status, in.CertSerial, in.BytesOut, in.Width, in.Truncated, in.Start.UnixNano(), in.End.UnixNano())
	}
	f.Fuzz(func(t *testing.T, id, command, reason, status string, serial uint64, n int64, w int, trunc bool, start, end int64) {
		info := SessionInfo{ID: id, Command: command, Reason: reason, Status: status, CertSerial: serial,
			BytesIn: n, Stored: -n, Width: w, Denied: -w, Truncated: trunc, Start: time.Unix(0, start).UTC()}
		if end != 0 {
			info.End = time.Unix(0, end).In(time.FixedZone("", int(end%86400)))
		}
		checkSessionJSON(t, info)
	})
}
