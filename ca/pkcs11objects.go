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
	n := 0
	err := findPrivateKeys(u, id, label, func(*pkcs11.Ctx, pkcs11.SessionHandle, pkcs11.ObjectHandle) error {
		n++
		return nil
	})
	return n, err
}

// privateKeyExposure says how the private key u names has been or can be
// outside the module: "" for a key made inside it, sensitive and never
// extractable (what ca init makes).
func privateKeyExposure(u *keyuri.URI) (string, error) {
	var out []string
	err := findPrivateKeys(u, []byte(u.Get("id")), []byte(u.Get("object")), func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
		for _, a := range []struct {
			typ  uint
			bad  bool // the value that means exposure
			says string
		}{
			{pkcs11.CKA_EXTRACTABLE, true, "it can be exported (CKA_EXTRACTABLE)"},
			{pkcs11.CKA_SENSITIVE, false, "it is not sensitive (CKA_SENSITIVE false)"},
			{pkcs11.CKA_NEVER_EXTRACTABLE, false, "it was extractable once or imported (CKA_NEVER_EXTRACTABLE false)"},
			{pkcs11.CKA_ALWAYS_SENSITIVE, false, "it was imported or not always sensitive (CKA_ALWAYS_SENSITIVE false)"},
		} {
			attrs, err := ctx.GetAttributeValue(sh, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(a.typ, nil)})
			if err != nil || len(attrs) != 1 || len(attrs[0].Value) != 1 {
				continue // a module that does not say
			}
			if (attrs[0].Value[0] != 0) == a.bad {
				out = append(out, a.says)
			}
		}
		return nil
	})
	return strings.Join(out, ", "), err
}

// findPrivateKeys calls f for each private key object in the token u names
// with CKA_ID id and CKA_LABEL label (either may be empty: any).
func findPrivateKeys(u *keyuri.URI, id, label []byte, f func(*pkcs11.Ctx, pkcs11.SessionHandle, pkcs11.ObjectHandle) error) error {
	module := u.Get("module-path")
	if module == "" {
		module = "p11-kit-proxy.so"
	}
	// A second handle on the module crypto11 already loaded and
	// initialized: the same library state (and login), not a new one. It is
	// never finalized, which would end crypto11's sessions.
	ctx := pkcs11.New(module)
	if ctx == nil {
		return fmt.Errorf("load %s", module)
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return fmt.Errorf("initialize %s: %w", module, err)
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("list slots: %w", err)
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
			return fmt.Errorf("token info: %w", err)
		}
		if v := u.Get("serial"); v != "" && strings.TrimSpace(ti.SerialNumber) == v || v == "" && u.Get("token") != "" && strings.TrimSpace(ti.Label) == u.Get("token") {
			slot, found = s, true
			break
		}
	}
	if !found {
		return errors.New("token not found")
	}
	sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return fmt.Errorf("open session: %w", err)
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
		return fmt.Errorf("find objects: %w", err)
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := ctx.FindObjects(sh, 16)
		if err != nil {
			ctx.FindObjectsFinal(sh)
			return fmt.Errorf("find objects: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if err := ctx.FindObjectsFinal(sh); err != nil {
		return fmt.Errorf("find objects: %w", err)
	}
	for _, oh := range all {
		if err := f(ctx, sh, oh); err != nil {
			return err
		}
	}
	return nil
}
