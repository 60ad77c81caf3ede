package localsvc

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SoftHSM is a SoftHSM2 token in a directory of its own: a PKCS#11 module
// that tests and benchmarks hold CA keys in, as a real HSM would.
//
// The module finds its tokens through the SOFTHSM2_CONF environment
// variable, read when the module is initialised: set Env in the process
// that loads it (os.Setenv, t.Setenv, or a child's environment).
type SoftHSM struct {
	Dir     string // holds the config, the token directory and the PIN file
	Conf    string // the softhsm2.conf to point SOFTHSM2_CONF at
	Module  string // the PKCS#11 module (libsofthsm2.so)
	Label   string // the token's label
	PIN     string // the user PIN
	PINFile string // a 0600 file holding PIN, for pin-source
}

// SoftHSMModules are where distributions install the SoftHSM2 module.
var SoftHSMModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// InitSoftHSM initialises a fresh token labelled label in dir with
// softhsm2-util (--init-token --free), user PIN pin.
func InitSoftHSM(dir, label, pin string) (*SoftHSM, error) {
	util, err := LookTool("softhsm2-util")
	if err != nil {
		return nil, err
	}
	module, err := LookTool(SoftHSMModules...)
	if err != nil {
		return nil, fmt.Errorf("libsofthsm2.so is not installed")
	}
	h := &SoftHSM{Dir: dir, Conf: filepath.Join(dir, "softhsm2.conf"), Module: module, Label: label, PIN: pin, PINFile: filepath.Join(dir, "pin")}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(h.PINFile, []byte(pin+"\n"), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", pin+"-so")
	cmd.Env = append(os.Environ(), h.Env())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return h, nil
}

// Env is the SOFTHSM2_CONF=… setting for a process that loads the module.
func (h *SoftHSM) Env() string { return "SOFTHSM2_CONF=" + h.Conf }

// KeyURI is the PKCS#11 URI of the key object (with CKA_ID id) in this
// token, its PIN read from PINFile.
func (h *SoftHSM) KeyURI(object string, id byte) string {
	return fmt.Sprintf("pkcs11:token=%s;id=%%%02x;object=%s?module-path=%s&pin-source=%s",
		url.PathEscape(h.Label), id, url.PathEscape(object), h.Module, h.PINFile)
}
