// Command depcheck enforces the import direction of docs/ARCHITECTURE.md:
// leaves know nothing of the server, the player knows nothing of SSH, the
// CA knows nothing of sessions, the SSH server reaches the recorder only
// through its own interfaces, the policy is not the config, and only tests
// use the test harness. It reads the packages with `go list` and prints one
// line per broken rule; the exit status is 1 when any is broken.
//
//	go run ./internal/depcheck [DIR]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// rule forbids the packages matching pkg (relative to the module; a
// trailing "/..." also matches the packages below) from importing, directly
// or not, any package matching one of deny. Paths without a dot in their
// first element are the module's own.
type rule struct {
	pkg  string
	deny []string
	why  string
}

var leafDeny = []string{"ca", "recorder", "player", "golang.org/x/crypto/ssh", "github.com/gliderlabs/ssh"}

var rules = []rule{
	{"ca", []string{"bastion/...", "recorder/...", "player/...", "internal/app", "internal/demo"}, "the CA knows nothing of sessions"},
	{"recorder", []string{"bastion/...", "ca/...", "player/...", "golang.org/x/crypto/ssh"}, "the store knows nothing of the server"},
	{"player", []string{"bastion/...", "ca/...", "golang.org/x/crypto/ssh", "github.com/gliderlabs/ssh"}, "the player knows nothing of SSH"},
	{"recorder/asciicast", leafDeny, "a leaf"},
	{"bastion/shellcmd", leafDeny, "a leaf"},
	{"bastion/linerec", leafDeny, "a leaf"},
	{"bastion/mask", leafDeny, "a leaf"},
	{"bastion/pgproxy", leafDeny, "a leaf"},
	{"internal/keyuri", leafDeny, "a leaf: key URIs are parsed before any key is opened"},
	{"internal/auditlimit", leafDeny, "a leaf"},
	// The policy parses host keys (x/crypto/ssh) but knows nothing of the
	// server, the CA or the store, and the YAML config is not its model.
	{"bastion/policy", []string{"internal/...", "bastion", "ca/...", "recorder/...", "player/...", "github.com/gliderlabs/ssh"}, "the policy compiles its own types; the config is not its model"},
	{"bastion", []string{"recorder/...", "internal/app", "internal/config", "internal/demo"}, "the server reaches the recorder through its own interfaces (iface.go)"},
	{"internal/app", []string{"internal/devidp", "internal/demo"}, "the development IdP is reachable only through `bastion demo`"},
	{"internal/console", []string{"internal/app", "internal/config", "internal/demo", "internal/devidp"}, "the console reaches the server and the store through their APIs; internal/app wires it"},
	{"internal/config", []string{"internal/devidp"}, "the development IdP is reachable only through `bastion demo`"},
	{"...", []string{"internal/testenv"}, "only tests use the test harness"},
}

type pkg struct {
	ImportPath string
	Deps       []string
	Module     *struct{ Path string }
}

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	problems, err := check(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "depcheck:", err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Println("depcheck:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

// check lists the module's packages in dir (tests excluded) and returns a
// line for every import a rule forbids.
func check(dir string) ([]string, error) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Deps,Module", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v: %s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 || pkgs[0].Module == nil {
		return nil, errors.New("no packages of a module found")
	}
	mod := pkgs[0].Module.Path
	abs := func(p string) string {
		first, _, _ := strings.Cut(p, "/")
		if p == "..." || !strings.Contains(first, ".") {
			return strings.TrimSuffix(mod+"/"+p, "/")
		}
		return p
	}
	matches := func(pattern, path string) bool {
		pattern = abs(pattern)
		if base, ok := strings.CutSuffix(pattern, "/..."); ok {
			return path == base || strings.HasPrefix(path, base+"/")
		}
		return path == pattern
	}
	var problems []string
	for _, p := range pkgs {
		for _, r := range rules {
			if !matches(r.pkg, p.ImportPath) {
				continue
			}
			for _, d := range p.Deps {
				for _, deny := range r.deny {
					if matches(deny, d) && d != p.ImportPath && !(deny == "internal/testenv" && strings.HasPrefix(p.ImportPath, abs("internal/testenv"))) {
						problems = append(problems, fmt.Sprintf("%s must not import %s (%s)", strings.TrimPrefix(p.ImportPath, mod+"/"), strings.TrimPrefix(d, mod+"/"), r.why))
					}
				}
			}
		}
	}
	sort.Strings(problems)
	return problems, nil
}
