package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at link time by the Makefile (`make build`, `make dist`):
//
//	-ldflags "-X main.version=v1.2.0 -X main.commit=<sha> -X main.date=<RFC 3339>"
//
// Empty values fall back to what the Go toolchain stamps into every binary
// built from a module in a git checkout (debug.ReadBuildInfo: the module
// version, vcs.revision, vcs.time, vcs.modified), so a plain `go build` or
// `go install` still says which commit it is.
var version, commit, date string

// buildVersion is what `bastion version` reports.
type buildVersion struct {
	Version  string // a tag such as v1.2.0, a `git describe` string, or "devel"
	Commit   string // full revision, "" when unknown
	Date     string // build date (ldflags) or commit date (VCS stamp), "" when unknown
	Modified bool   // built from a work tree with uncommitted changes
	Go       string // toolchain, e.g. go1.27.3
}

// versionOf combines the link-time values with the toolchain's build
// information; bi may be nil (a binary built without module support).
func versionOf(bi *debug.BuildInfo, ldVersion, ldCommit, ldDate string) buildVersion {
	v := buildVersion{Version: ldVersion, Commit: ldCommit, Date: ldDate, Go: runtime.Version()}
	if bi != nil {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			v.Go = bi.GoVersion
		}
		vcsCommit, vcsTime := "", ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsCommit = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				// Only meaningful for the VCS stamp's own commit.
				if ldCommit == "" || ldCommit == vcsCommit {
					v.Modified = s.Value == "true"
				}
			}
		}
		if v.Commit == "" {
			v.Commit = vcsCommit
		}
		if v.Date == "" {
			v.Date = vcsTime
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	if strings.HasSuffix(v.Version, "-dirty") {
		v.Modified = true
	}
	return v
}

// String is the one line `bastion version` prints, e.g.
// "bastion v1.2.0 (commit 3ddfa4a1b2c3, built 2026-12-05T07:00:00Z, go1.27.3 linux/amd64)".
func (v buildVersion) String() string {
	parts := []string{}
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if v.Modified && !strings.HasSuffix(v.Version, "-dirty") {
			c += ", modified"
		}
		parts = append(parts, "commit "+c)
	}
	if v.Date != "" {
		parts = append(parts, "built "+v.Date)
	}
	parts = append(parts, v.Go+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("bastion %s (%s)", v.Version, strings.Join(parts, ", "))
}

func currentVersion() buildVersion {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi, version, commit, date)
}

func runVersion(args []string) error {
	fs := flags("version", "", "Print the version, the commit and the build date of this binary.")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fs.usageErr()
	}
	fmt.Println(currentVersion())
	return nil
}
