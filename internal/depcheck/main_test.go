package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The module as it stands keeps every rule.
func TestModuleKeepsTheRules(t *testing.T) {
	problems, err := check("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("broken rules:\n%s", strings.Join(problems, "\n"))
	}
}

// A module with deliberately wrong imports is caught, each one.
func TestCatchesWrongImports(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":                          "module github.com/bastionhq/bastion\n\ngo 1.24\n",
		"recorder/recorder.go":            "package recorder\n\nfunc Open() {}\n",
		"internal/config/config.go":       "package config\n\ntype Config struct{}\n",
		"internal/testenv/testenv.go":     "package testenv\n\nfunc Start() {}\n",
		"bastion/server.go":               "package bastion\n\nimport _ \"github.com/bastionhq/bastion/recorder\"\n",
		"bastion/policy/policy.go":        "package policy\n\nimport _ \"github.com/bastionhq/bastion/internal/config\"\n",
		"bench/main.go":                   "package main\n\nimport _ \"github.com/bastionhq/bastion/internal/testenv\"\n\nfunc main() {}\n",
		"bastion/shellcmd/shellcmd.go":    "package shellcmd\n",
		"internal/testenv/helper/help.go": "package helper\n\nimport _ \"github.com/bastionhq/bastion/internal/testenv\"\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	problems, err := check(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(problems, "\n")
	for _, want := range []string{
		"bastion must not import recorder",
		"bastion/policy must not import internal/config",
		"bench must not import internal/testenv",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if len(problems) != 3 {
		t.Errorf("got %d problems, want 3:\n%s", len(problems), got)
	}
}
