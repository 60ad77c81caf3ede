package demo

import (
	"log/slog"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// newBareSession is a session whose requests can be judged without a
// channel; requests that would start a process must not be sent to it.
func newBareSession(permitPty bool) *session {
	return &session{t: &Target{log: slog.New(slog.DiscardHandler)}, login: "demo", permitPt: permitPty, replied: make(chan struct{}), done: make(chan struct{})}
}

func req(typ string, payload []byte) *gossh.Request {
	return &gossh.Request{Type: typ, Payload: payload}
}

// TestSessionRequestsMalformed: every malformed or refused request is
// answered false and changes nothing.
func TestSessionRequestsMalformed(t *testing.T) {
	pty := gossh.Marshal(&ptyRequestMsg{Term: "xterm", Columns: 80, Rows: 24})
	for _, tc := range []struct {
		name      string
		permitPty bool
		before    []*gossh.Request // accepted first
		req       *gossh.Request
	}{
		{"pty-req empty", true, nil, req("pty-req", nil)},
		{"pty-req truncated", true, nil, req("pty-req", pty[:len(pty)-3])},
		{"pty-req length beyond the payload", true, nil, req("pty-req", []byte{0xff, 0xff, 0xff, 0xff, 'x'})},
		{"pty-req huge term", true, nil, req("pty-req", gossh.Marshal(&ptyRequestMsg{Term: strings.Repeat("x", 65), Columns: 80, Rows: 24}))},
		{"pty-req huge window", true, nil, req("pty-req", gossh.Marshal(&ptyRequestMsg{Term: "xterm", Columns: 1 << 20, Rows: 24}))},
		{"pty-req without permit-pty", false, nil, req("pty-req", pty)},
		{"pty-req twice", true, []*gossh.Request{req("pty-req", pty)}, req("pty-req", pty)},
		{"env empty", true, nil, req("env", nil)},
		{"env not allowed", true, nil, req("env", gossh.Marshal(&envRequestMsg{Name: "LD_PRELOAD", Value: "/tmp/x.so"}))},
		{"env LC_ with odd name", true, nil, req("env", gossh.Marshal(&envRequestMsg{Name: "LC_a=b", Value: "x"}))},
		{"env NUL in value", true, nil, req("env", gossh.Marshal(&envRequestMsg{Name: "LANG", Value: "C\x00x"}))},
		{"window-change without pty", true, nil, req("window-change", gossh.Marshal(&windowChangeMsg{Columns: 80, Rows: 24}))},
		{"window-change truncated", true, []*gossh.Request{req("pty-req", pty)}, req("window-change", []byte{0, 0, 0, 80})},
		{"window-change huge", true, []*gossh.Request{req("pty-req", pty)}, req("window-change", gossh.Marshal(&windowChangeMsg{Columns: 80, Rows: 1 << 30}))},
		{"exec empty payload", true, nil, req("exec", nil)},
		{"exec truncated", true, nil, req("exec", []byte{0, 0, 0, 9, 'l', 's'})},
		{"exec NUL in command", true, nil, req("exec", gossh.Marshal(&execMsg{Command: "ls\x00rm"}))},
		{"exec too long", true, nil, req("exec", gossh.Marshal(&execMsg{Command: strings.Repeat("x", maxCommandLen+1)}))},
		{"signal malformed", true, nil, req("signal", []byte{1})},
		{"signal unknown", true, nil, req("signal", gossh.Marshal(&signalMsg{Signal: "STOP"}))},
		{"signal before a process", true, nil, req("signal", gossh.Marshal(&signalMsg{Signal: "INT"}))},
		{"subsystem", true, nil, req("subsystem", gossh.Marshal(&execMsg{Command: "sftp"}))},
		{"x11-req", true, nil, req("x11-req", nil)},
		{"agent", true, nil, req("auth-agent-req@openssh.com", nil)},
		{"unknown", true, nil, req("keepalive@openssh.com", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newBareSession(tc.permitPty)
			for _, r := range tc.before {
				if !s.request(r) {
					t.Fatalf("setup request %s refused", r.Type)
				}
			}
			ptyBefore := s.pty
			if s.request(tc.req) {
				t.Fatalf("got accepted, want refused")
			}
			if s.started || s.cmd != nil {
				t.Fatal("a process was started")
			}
			if len(s.env) != 0 {
				t.Errorf("env: got %q, want none", s.env)
			}
			if s.pty != ptyBefore || (s.pty != nil && (s.pty.Columns != 80 || s.pty.Rows != 24)) {
				t.Errorf("pty changed: got %+v", s.pty)
			}
		})
	}
}

func TestSessionEnvLimit(t *testing.T) {
	s := newBareSession(true)
	for i := 0; i < maxEnvVars; i++ {
		if !s.request(req("env", gossh.Marshal(&envRequestMsg{Name: "LC_ALL", Value: "C"}))) {
			t.Fatalf("env %d refused", i)
		}
	}
	if s.request(req("env", gossh.Marshal(&envRequestMsg{Name: "LANG", Value: "C"}))) {
		t.Fatalf("got accepted beyond %d variables, want refused", maxEnvVars)
	}
}

// FuzzSessionRequest feeds arbitrary payloads to every request type that
// does not start a process: no panic, and the bounds hold.
func FuzzSessionRequest(f *testing.F) {
	types := []string{"pty-req", "env", "window-change", "signal", "subsystem", "x11-req"}
	for i := range types {
		f.Add(uint8(i), []byte(nil))
	}
	f.Add(uint8(0), gossh.Marshal(&ptyRequestMsg{Term: "xterm", Columns: 80, Rows: 24}))
	f.Add(uint8(0), []byte{0xff, 0xff, 0xff, 0xff, 'x'})
	f.Add(uint8(1), gossh.Marshal(&envRequestMsg{Name: "LANG", Value: "C.UTF-8"}))
	f.Add(uint8(1), gossh.Marshal(&envRequestMsg{Name: "LC_a=b", Value: "x"}))
	f.Add(uint8(2), gossh.Marshal(&windowChangeMsg{Columns: 120, Rows: 40}))
	f.Add(uint8(2), []byte{0, 0, 0, 80})
	f.Add(uint8(3), gossh.Marshal(&signalMsg{Signal: "INT"}))
	f.Fuzz(func(t *testing.T, typ uint8, payload []byte) {
		s := newBareSession(true)
		// A pty first, so window changes reach their parser.
		s.request(req("pty-req", gossh.Marshal(&ptyRequestMsg{Term: "xterm", Columns: 80, Rows: 24})))
		s.request(req(types[int(typ)%len(types)], payload))
		if s.started || s.cmd != nil {
			t.Fatal("a process was started")
		}
		if s.pty.Columns > maxWindowCells || s.pty.Rows > maxWindowCells || len(s.pty.Term) > maxTermLen {
			t.Fatalf("pty out of bounds: %+v", s.pty)
		}
		for _, kv := range s.env {
			name, _, _ := strings.Cut(kv, "=")
			if !envAllowed(name) || strings.ContainsRune(kv, 0) {
				t.Fatalf("env %q let through", kv)
			}
		}
	})
}
