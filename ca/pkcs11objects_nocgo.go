//go:build !cgo

package ca

import (
	"errors"

	"github.com/bastionhq/bastion/internal/keyuri"
)

// countPrivateKeys needs cgo, as the PKCS#11 backend does: without it no
// pkcs11: URI opens in the first place.
func countPrivateKeys(*keyuri.URI, []byte, []byte) (int, error) {
	return 0, errors.New("this bastion is built without pkcs11 support")
}

func privateKeyExposure(*keyuri.URI) (string, error) {
	return "", errors.New("this bastion is built without pkcs11 support")
}
