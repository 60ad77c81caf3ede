package app

import (
	"testing"

	"github.com/bastionhq/bastion/recorder"
)

func TestSessionColumns(t *testing.T) {
	tests := []struct {
		name                 string
		s                    recorder.SessionInfo
		status, exit, detail string
	}{
		{"exec", recorder.SessionInfo{Kind: "exec", Status: "ended", Command: "ls; cat cards.txt"}, "ended", "0", "ls; cat cards.txt"},
		{"live", recorder.SessionInfo{Kind: "shell", Status: "live"}, "live", "-", ""},
		{"blocked", recorder.SessionInfo{Kind: "exec", Status: "ended", ExitStatus: 126, Blocked: 1, Command: "rm -rf x"}, "ended (1 blocked)", "126", "rm -rf x"},
		{"approved and denied", recorder.SessionInfo{Kind: "shell", Status: "ended", Approved: 2, Denied: 1}, "ended (2 approved, 1 denied)", "0", ""},
		{"signal", recorder.SessionInfo{Kind: "exec", Status: "ended", ExitStatus: -1, ExitSignal: "KILL"}, "ended", "SIGKILL", ""},
		{"postgres", recorder.SessionInfo{Kind: "postgres", Status: "ended", ExitStatus: -1, Login: "app", Database: "shop", Statements: 3, Blocked: 1},
			"ended (1 blocked)", "-", "database shop, 3 statements"},
		{"postgres refused", recorder.SessionInfo{Kind: "postgres", Status: "ended", ExitStatus: -1, Reason: "database not allowed"}, "ended", "-", "database not allowed"},
		{"tcp", recorder.SessionInfo{Kind: "tcp", Status: "ended", ExitStatus: -1, BytesIn: 1536, BytesOut: 3 << 20, Stored: 3<<20 + 1536},
			"ended", "-", "1.5 KiB up, 3.0 MiB down, 3.0 MiB stored"},
		{"tcp metadata only", recorder.SessionInfo{Kind: "tcp", Status: "ended", ExitStatus: -1, BytesIn: 10, BytesOut: 20}, "ended", "-", "10 B up, 20 B down"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sessionStatus(tc.s); got != tc.status {
				t.Errorf("status: got %q, want %q", got, tc.status)
			}
			if got := sessionExit(tc.s); got != tc.exit {
				t.Errorf("exit: got %q, want %q", got, tc.exit)
			}
			if got := sessionDetail(tc.s); got != tc.detail {
				t.Errorf("detail: got %q, want %q", got, tc.detail)
			}
		})
	}
	if got := byteCount(5 << 30); got != "5.0 GiB" {
		t.Errorf("byteCount: got %q", got)
	}
}
