package bastion

import (
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/bastionhq/bastion/ca"
)

var pgDatabaseCases = []struct {
	in, target, db, err string
}{
	{"pg1/shop", "pg1", "shop", ""},
	{"pg1/a/b", "pg1", "a/b", ""},
	{"shop", "", "", "names no target"},
	{"", "", "", "names no target"},
	{"/shop", "", "", "target before '/' is empty"},
	{"pg1/", "", "", "database after '/' is empty"},
	{"pg\x1b[31m/", "", "", `\x1b`},
}

func TestParsePGDatabase(t *testing.T) {
	for _, tc := range pgDatabaseCases {
		target, db, err := ParsePGDatabase(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.ContainsAny(err.Error(), "\x1b\x00") {
				t.Errorf("%q: got %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || target != tc.target || db != tc.db {
			t.Errorf("%q: got %q %q %v, want %q %q", tc.in, target, db, err, tc.target, tc.db)
		}
	}
}

func FuzzParsePGDatabase(f *testing.F) {
	for _, tc := range pgDatabaseCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		target, db, err := ParsePGDatabase(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\x1b\x00\n") {
				t.Fatalf("unescaped control character in %q", err)
			}
			return
		}
		if target == "" || db == "" || strings.Contains(target, "/") || target+"/"+db != s {
			t.Fatalf("%q split as %q %q", s, target, db)
		}
	})
}

// The SQL API's rate limit is per identity (issuer and subject).
func TestSQLAPIRateLimit(t *testing.T) {
	api := &sqlAPI{cfg: SQLAPIConfig{Rate: 0.001, Burst: 2}, limiters: map[string]*rate.Limiter{}}
	a, b := ca.Identity{Issuer: "i", Subject: "a"}, ca.Identity{Issuer: "i", Subject: "b"}
	if !api.allow(a) || !api.allow(a) || api.allow(a) {
		t.Fatal("a: want two requests, then a refusal")
	}
	if !api.allow(b) {
		t.Fatal("b is limited by a's requests")
	}
}
