package devidp

import (
	"errors"
	"testing"
)

// TestApproveDeviceAt approves a device login knowing only the issuer URL, as a test
// of a provider running in another process does, and refuses what ApproveDevice
// refuses.
func TestApproveDeviceAt(t *testing.T) {
	e := newEnv(t, Config{})
	conf := e.oauth2(publicID, "", "")
	da, err := conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if err := ApproveDeviceAt(e.ctx, e.idp.Issuer(), da.UserCode, "mallory"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown subject: got %v, want %v", err, ErrUnknownUser)
	}
	if err := ApproveDeviceAt(e.ctx, e.idp.Issuer(), da.UserCode, "alice"); err != nil {
		t.Fatalf("ApproveDeviceAt: %v", err)
	}
	tok, err := conf.DeviceAccessToken(e.ctx, da)
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	if _, ok := tok.Extra("id_token").(string); !ok {
		t.Fatal("no id_token after the approval")
	}
	if err := ApproveDeviceAt(e.ctx, e.idp.Issuer(), da.UserCode, "alice"); !errors.Is(err, ErrUnknownUserCode) {
		t.Errorf("used code: got %v, want %v", err, ErrUnknownUserCode)
	}

	for _, tt := range []struct {
		name, issuer string
	}{
		{"empty", ""},
		{"no scheme", "127.0.0.1:1"},
		{"ftp", "ftp://127.0.0.1:1"},
		{"path", e.idp.Issuer() + "/x"},
		{"user info", "http://u:p@127.0.0.1:1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := ApproveDeviceAt(e.ctx, tt.issuer, "BCDF-GHJK", "alice"); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("got %v, want %v", err, ErrInvalidConfig)
			}
		})
	}
}
