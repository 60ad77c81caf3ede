package main

import (
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	vcs := func(rev, when, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Path: "github.com/bastionhq/bastion", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: when}, {Key: "vcs.modified", Value: modified}}}
	}
	tests := []struct {
		name                string
		bi                  *debug.BuildInfo
		ldVersion, ldCommit string
		ldDate              string
		want                buildVersion
		wantIn              []string
	}{
		{
			name: "nothing known",
			want: buildVersion{Version: "devel"},
		},
		{
			name:   "go build in a checkout: the VCS stamp",
			bi:     vcs("3ddfa4a1b2c3d4e5f60718293a4b5c6d7e8f9012", "2026-12-01T10:00:00Z", "false"),
			want:   buildVersion{Version: "devel", Commit: "3ddfa4a1b2c3d4e5f60718293a4b5c6d7e8f9012", Date: "2026-12-01T10:00:00Z", Go: "go1.27.3"},
			wantIn: []string{"bastion devel (commit 3ddfa4a1b2c3, built 2026-12-01T10:00:00Z, go1.27.3 "},
		},
		{
			name:   "uncommitted changes",
			bi:     vcs("3ddfa4a1b2c3d4e5f60718293a4b5c6d7e8f9012", "2026-12-01T10:00:00Z", "true"),
			want:   buildVersion{Version: "devel", Commit: "3ddfa4a1b2c3d4e5f60718293a4b5c6d7e8f9012", Date: "2026-12-01T10:00:00Z", Modified: true, Go: "go1.27.3"},
			wantIn: []string{"commit 3ddfa4a1b2c3, modified"},
		},
		{
			name:      "make build: link-time values win",
			bi:        vcs("3ddfa4a1b2c3d4e5f60718293a4b5c6d7e8f9012", "2026-12-01T10:00:00Z", "false"),
			ldVersion: "v1.2.0", ldCommit: "3ddfa4a1b2c3d4e5f60718293a4b5c6d7e8f9012", ldDate: "2026-12-05T07:00:00Z",
			want:   buildVersion{Version: "v1.2.0", Commit: "3ddfa4a1b2c3d4e5f60718293a4b5c6d7e8f9012", Date: "2026-12-05T07:00:00Z", Go: "go1.27.3"},
			wantIn: []string{"bastion v1.2.0 (commit 3ddfa4a1b2c3, built 2026-12-05T07:00:00Z"},
		},
		{
			name:      "git describe of a dirty tree",
			ldVersion: "v1.2.0-3-g3ddfa4a-dirty", ldCommit: "3ddfa4a",
			want:   buildVersion{Version: "v1.2.0-3-g3ddfa4a-dirty", Commit: "3ddfa4a", Modified: true},
			wantIn: []string{"bastion v1.2.0-3-g3ddfa4a-dirty (commit 3ddfa4a, "},
		},
		{
			name: "go install of a tagged module",
			bi:   &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v1.3.0"}},
			want: buildVersion{Version: "v1.3.0", Go: "go1.27.3"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := versionOf(tc.bi, tc.ldVersion, tc.ldCommit, tc.ldDate)
			if tc.want.Go == "" {
				tc.want.Go = got.Go // the running toolchain
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(got.String(), s) {
					t.Errorf("got %q, want it to contain %q", got.String(), s)
				}
			}
		})
	}
}

// TestMakefileStampsVersion keeps the Makefile's link-time stamps and the
// variables they set together: a renamed variable would silently leave
// released binaries saying "devel".
func TestMakefileStampsVersion(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(b)
	for _, x := range []string{"-X main.version=", "-X main.commit=", "-X main.date="} {
		if !strings.Contains(mk, x) {
			t.Errorf("the Makefile's LDFLAGS lack %q", x)
		}
	}
	for _, target := range []string{"\nbuild:", "\ndist:"} {
		if !strings.Contains(mk, target) {
			t.Errorf("the Makefile has no %s target", strings.TrimSpace(target))
		}
	}
	if !regexp.MustCompile(`go build[^\n]*\$\(LDFLAGS\)|\$\(GO\) build[^\n]*\$\(LDFLAGS\)`).MatchString(mk) {
		t.Error("make build does not pass $(LDFLAGS)")
	}
	// The variables exist and are strings (a -X of anything else is ignored).
	_ = []*string{&version, &commit, &date}
}
