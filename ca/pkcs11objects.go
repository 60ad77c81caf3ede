//go:build cgo

package ca

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/pkcs11"

	"github.com/bastionhq/bastion/internal/keyuri"
)

// countPrivateKeys counts the private key objects in the token u names
// whose CKA_ID is id and CKA_LABEL is label (either may be nil: any). It
// must run while the KMS client for u is open, so the token is logged in
// and private objects are visible. crypto11 (under go.step.sm/crypto)
// silently takes the first of several matches; this is what lets the
// bastion refuse instead.
func countPrivateKeys(u *keyuri.URI, id, label []byte) (int, error) {
	module := u.Get("module-path")
	if module == "" {
		module = "p11-kit-proxy.so"
	}
	// A second handle on the module crypto11 already loaded and
	// initialized: the same library state (and login), not a new one. It is
	// never finalized, which would end crypto11's sessions.
	ctx := pkcs11.New(module)
	if ctx == nil {
		return 0, fmt.Errorf("load %s", module)
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return 0, fmt.Errorf("initialize %s: %w", module, err)
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("list slots: %w", err)
	}
	slot, found := uint(0), false
	for _, s := range slots {
		if v := u.Get("slot-id"); v != "" {
			if n, err := strconv.ParseUint(v, 10, 64); err == nil && uint(n) == s {
				slot, found = s, true
				break
			}
			continue
		}
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return 0, fmt.Errorf("token info: %w", err)
		}
		if v := u.Get("serial"); v != "" && strings.TrimSpace(ti.SerialNumber) == v || v == "" && u.Get("token") != "" && strings.TrimSpace(ti.Label) == u.Get("token") {
			slot, found = s, true
			break
		}
	}
	if !found {
		return 0, errors.New("token not found")
	}
	sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return 0, fmt.Errorf("open session: %w", err)
	}
	defer ctx.CloseSession(sh)
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
	if len(id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	if len(label) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	if err := ctx.FindObjectsInit(sh, tmpl); err != nil {
		return 0, fmt.Errorf("find objects: %w", err)
	}
	defer ctx.FindObjectsFinal(sh)
	n := 0
	for {
		hs, _, err := ctx.FindObjects(sh, 16)
		if err != nil {
			return 0, fmt.Errorf("find objects: %w", err)
		}
		if len(hs) == 0 {
			return n, nil
		}
		n += len(hs)
	}
}
