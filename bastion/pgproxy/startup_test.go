package pgproxy

import (
	"encoding/binary"
	"strings"
	"testing"
)

// startupParamCases: which startup parameters are forwarded. Setting names are
// case-insensitive; user, database and replication are matched exactly, as PostgreSQL
// does.
var startupParamCases = []struct {
	name  string
	extra []string
	ok    bool
}{
	{"user", nil, true},
	{"database", nil, true},
	{"replication", nil, true},
	{"application_name", nil, true},
	{"client_encoding", nil, true},
	{"DateStyle", nil, true},
	{"datestyle", nil, true},
	{"TimeZone", nil, true},
	{"IntervalStyle", nil, true},
	{"extra_float_digits", nil, true},
	{"role", nil, false},
	{"ROLE", nil, false},
	{"Role", nil, false},
	{"session_authorization", nil, false},
	{"options", nil, false},
	{"search_path", nil, false},
	{"search_path", []string{"search_path"}, true},
	{"Search_Path", []string{"search_path"}, true},
	{"default_transaction_read_only", nil, false},
	{"USER", nil, false}, // a setting named USER, not the user
	{"Database", nil, false},
	{"", nil, false},
	{"role\x00x", nil, false},
}

func TestCheckStartupParam(t *testing.T) {
	for _, tc := range startupParamCases {
		err := checkStartupParam(tc.name, tc.extra, map[string]bool{})
		if (err == nil) != tc.ok {
			t.Errorf("%q (extra %q): got %v, want allowed=%v", tc.name, tc.extra, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "is not allowed") {
			t.Errorf("%q: got %q, want it to say the parameter is not allowed", tc.name, err)
		}
	}
	seen := map[string]bool{}
	if err := checkStartupParam("TimeZone", nil, seen); err != nil {
		t.Fatal(err)
	}
	if err := checkStartupParam("timezone", nil, seen); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("got %v, want a refusal of the second TimeZone", err)
	}
}

// FuzzStartupParams decodes arbitrary startup packets and filters their parameters:
// nothing panics, and whatever passes is on the allowlist.
func FuzzStartupParams(f *testing.F) {
	for _, tc := range startupParamCases {
		f.Add(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {tc.name, "x"}})[4:])
	}
	f.Add(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"TimeZone", "UTC"}, {"timezone", "x"}})[4:])
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) < 4 {
			return
		}
		binary.BigEndian.PutUint32(body, protocolVersion30)
		m, err := decodeStartup(body)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range m.params {
			if checkStartupParam(p[0], nil, seen) != nil {
				continue
			}
			l := strings.ToLower(p[0])
			if !startupParams[l] && p[0] != "user" && p[0] != "database" && p[0] != "replication" {
				t.Fatalf("%q passed the allowlist", p[0])
			}
		}
	})
}
