package asciicast

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/recorder/internal/asciinematest"
)

// The real asciinema accepts every golden file and prints the same text.
func TestAsciinemaCatGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.cast"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, events := decodeAll(t, data)
			var want strings.Builder
			for _, ev := range events {
				if ev.Type == Output {
					want.WriteString(ev.Data)
				}
			}
			got, err := asciinematest.Cat(t, path)
			if err != nil {
				t.Fatal(err)
			}
			if got != want.String() {
				t.Errorf("got %q, want %q", got, want.String())
			}
		})
	}
}

// And it refuses a file our decoder refuses, so the check has teeth.
func TestAsciinemaCatRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.cast")
	if err := os.WriteFile(path, []byte(`{"version": 1, "width": 80, "height": 24}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := asciinematest.Cat(t, path); err == nil {
		t.Errorf("got success with output %q, want an error", out)
	}
}
