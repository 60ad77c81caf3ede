package testenv

import (
	"testing"

	"github.com/bastionhq/bastion/internal/localsvc"
)

// SoftHSM initialises a SoftHSM2 token labelled "bastion" in a temp
// directory and points this process's SOFTHSM2_CONF at it (t.Setenv: the
// test cannot be parallel). Without softhsm2 the test is skipped locally
// and fails in CI.
func SoftHSM(t testing.TB) *localsvc.SoftHSM {
	t.Helper()
	Require(t, "softhsm2-util")
	h, err := localsvc.InitSoftHSM(t.TempDir(), "bastion", "4711-bastion")
	if err != nil {
		t.Fatal(err)
	}
	if tt, ok := t.(interface{ Setenv(k, v string) }); ok {
		tt.Setenv("SOFTHSM2_CONF", h.Conf)
	} else {
		t.Fatal("SoftHSM needs a *testing.T or *testing.B")
	}
	return h
}
