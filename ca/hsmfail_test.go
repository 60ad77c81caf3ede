//go:build cgo

package ca

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/bastionhq/bastion/internal/testenv"
)

// The user CA's token stops signing while the bastion runs (here: logged
// out, as a token reset or a PIN change on a network HSM does): a login
// gets no certificate, is told the bastion cannot sign (503, to retry, not
// a 400 that blames the request), and the refusal is audited as the CA's,
// not as a bad request. Nothing falls back to another key.
func TestIssueFailsClosedWhenHSMStopsSigning(t *testing.T) {
	h := testenv.SoftHSM(t)
	uri := h.KeyURI("user-ca", 1)
	if _, closeKMS, err := CreateKey(uri, PurposeUser, ""); err != nil {
		t.Fatal(err)
	} else {
		closeKMS()
	}
	hsm, err := LoadKeys(t.TempDir(), KeyConfig{User: uri})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hsm.Close() })
	e := newAPIEnv(t)
	e.authority.keys.UserCA = hsm.UserCA
	if status, body := e.post(t, request(e.token(t, e.idp, "u-alice", "bastion", nil), edKey(t), "")); status != 200 {
		t.Fatalf("with the token: %d %s", status, body)
	}

	// Log the application out of the token (every session of it).
	p := pkcs11.New(h.Module)
	defer p.Destroy()
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil || len(slots) == 0 {
		t.Fatal(slots, err)
	}
	sh, err := p.OpenSession(slots[0], pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Logout(sh); err != nil {
		t.Fatal(err)
	}
	p.CloseSession(sh)

	status, body := e.post(t, request(e.token(t, e.idp, "u-alice", "bastion", nil), edKey(t), ""))
	var er ErrorResponse
	json.Unmarshal(body, &er)
	if status != 503 || er.Reason != ReasonCAUnavailable {
		t.Errorf("with the token logged out: %d %s, want 503 %s", status, body, ReasonCAUnavailable)
	}
	if strings.Contains(er.Error, "pkcs11") || strings.Contains(string(body), "ssh-") || strings.Contains(string(body), "certificate\":\"") {
		t.Errorf("a certificate came back: %s", body)
	}
	rec := e.audit.last()
	if rec.Action != ActionRefuse || rec.Reason != ReasonCAUnavailable || !strings.Contains(rec.Detail, "pkcs11: ") {
		t.Errorf("audit record %+v: want a refusal, reason %s, with the module's error", rec, ReasonCAUnavailable)
	}
}
