package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// BenchmarkRS256Verify is one RS256 signature check with a 2048-bit key, as
// go-jose makes for every ID token: crypto/rsa sets up the modulus again on
// every call (fipsPublicKey: bigmod.NewModulus of N), which nothing outside
// the standard library can cache. Run it with -cpuprofile and look at
// crypto/rsa.fipsPublicKey's share to see what that setup costs.
func BenchmarkRS256Verify(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("header.payload"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &key.PublicKey
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}
