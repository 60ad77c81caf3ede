package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A login's database credentials carry its identity, serial and lifetime,
// verify against the database-client CA only, and are refused by the
// database CA (what PostgreSQL trusts).
func TestDBAccessCertificate(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	a := testAuthority(t, func() time.Time { return clock() })
	id, err := a.Stamp(Identity{User: "ci-etl", Issuer: "https://ci", Subject: "repo:acme/etl:ref:refs/heads/main", Groups: []string{"etl"}, Workload: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := a.SignDBAccess(id, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.VerifyDBAccess([]*x509.Certificate{c})
	if err != nil {
		t.Fatal(err)
	}
	id.ValidAfter, id.ValidBefore = id.ValidAfter.UTC(), id.ValidBefore.UTC()
	got.ValidAfter, got.ValidBefore = got.ValidAfter.UTC(), got.ValidBefore.UTC()
	if !reflect.DeepEqual(got, id) {
		t.Errorf("identity round trip:\n got %+v\nwant %+v", got, id)
	}
	if c.SerialNumber.Uint64() != id.Serial || !c.NotAfter.Equal(id.ValidBefore) {
		t.Errorf("certificate serial %s until %v, want the login's %d until %v", c.SerialNumber, c.NotAfter, id.Serial, id.ValidBefore)
	}
	dbRoots := x509.NewCertPool()
	dbRoots.AddCert(a.Keys().DBCA.Cert)
	if _, err := c.Verify(x509.VerifyOptions{Roots: dbRoots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("a database client certificate verifies against the database CA")
	}
	// A certificate from the database CA (what the bastion presents
	// upstream) is not a credential for the listener.
	up, err := a.SignDBClient(key.Public(), "ci-etl", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyDBAccess([]*x509.Certificate{up}); err == nil || !strings.Contains(err.Error(), "not one this bastion issued") {
		t.Errorf("database CA certificate at the listener: %v", err)
	}
	// Expired: refused with a reason a person can act on.
	clock = func() time.Time { return id.ValidBefore.Add(time.Second) }
	if _, err := a.VerifyDBAccess([]*x509.Certificate{c}); err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "bastion login") {
		t.Errorf("expired certificate: %v", err)
	}
	clock = func() time.Time { return now }
	if _, err := a.VerifyDBAccess(nil); err == nil {
		t.Error("no certificate accepted")
	}
	// Keys the doors refuse.
	small, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if _, err := a.SignDBAccess(id, small.Public()); !errors.Is(err, ErrWeakKey) {
		t.Errorf("P-224 key: %v", err)
	}
	if _, err := a.SignDBAccess(Identity{User: "x"}, key.Public()); err == nil {
		t.Error("an unstamped identity was certified")
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	good := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if _, err := ParsePublicKeyPEM(good); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{
		"empty":        "",
		"not PEM":      "hello",
		"wrong type":   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		"garbage DER":  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 1, 2}})),
		"two blocks":   good + good,
		"trailing":     good + "x",
		"private half": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	} {
		if _, err := ParsePublicKeyPEM(in); !errors.Is(err, ErrWeakKey) {
			t.Errorf("%s: got %v, want ErrWeakKey", name, err)
		}
	}
}

// accessTokenCases are malformed or forged tokens; each must be refused
// with ErrAccessToken.
func accessTokenCases(t testing.TB, a *Authority, good string) map[string]string {
	other := testAuthority(t, nil)
	id, _ := other.Stamp(Identity{User: "alice", Issuer: "https://idp", Subject: "u-alice"}, 0)
	foreign, _ := other.IssueAccessToken(id)
	head, sig, _ := strings.Cut(strings.TrimPrefix(good, accessTokenPrefix), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(head)
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	reclaim := func(edit func(map[string]any)) string {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		edit(c)
		b, _ := json.Marshal(c)
		return accessTokenPrefix + base64.RawURLEncoding.EncodeToString(b) + "." + sig
	}
	return map[string]string{
		"empty":               "",
		"prefix only":         accessTokenPrefix,
		"no signature":        accessTokenPrefix + head,
		"another scheme":      "Bearer " + good,
		"a JWT":               "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
		"signature garbage":   accessTokenPrefix + head + ".!!!",
		"claims garbage":      accessTokenPrefix + "!!!." + sig,
		"truncated signature": good[:len(good)-4],
		"another bastion":     foreign,
		"groups added":        reclaim(func(c map[string]any) { c["groups"] = []string{"dba"} }),
		"user changed":        reclaim(func(c map[string]any) { c["usr"] = "root" }),
		"expiry extended":     reclaim(func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour * 24 * 365).Unix() }),
		"oversized":           accessTokenPrefix + strings.Repeat("A", MaxAccessTokenBytes),
	}
}

func TestAccessToken(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	a := testAuthority(t, func() time.Time { return clock() })
	id, err := a.Stamp(Identity{User: "alice", Issuer: "https://idp", Subject: "u-alice", Groups: []string{"dev", "sre"}}, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.IssueAccessToken(id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.VerifyAccessToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "alice" || got.Serial != id.Serial || !got.ValidBefore.Equal(id.ValidBefore) || strings.Join(got.Groups, ",") != "dev,sre" || got.Issuer != id.Issuer || got.Subject != id.Subject {
		t.Errorf("got %+v, want %+v", got, id)
	}
	for name, bad := range accessTokenCases(t, a, tok) {
		if _, err := a.VerifyAccessToken(bad); !errors.Is(err, ErrAccessToken) {
			t.Errorf("%s: got %v, want ErrAccessToken", name, err)
		}
	}
	// The largest identity a login may have (maxGroups groups of the
	// longest name) gets a token the doors take.
	// Names JSON escapes are the longest: a group may hold '<', '&', '"'
	// and '\\', which encoding/json writes in up to six bytes.
	for _, fill := range []string{"g", "<", "&", `"`, `\`} {
		var many []string
		for i := range maxGroups {
			g := fmt.Sprintf("%03d-", i)
			for len(g)+len(fill) <= 128 {
				g += fill
			}
			many = append(many, g)
		}
		big, err := a.Stamp(Identity{User: "alice", Issuer: "https://idp", Subject: strings.Repeat(fill, 255/len(fill)), Groups: many}, 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		bigTok, err := a.IssueAccessToken(big)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := a.VerifyAccessToken(bigTok); err != nil || len(got.Groups) != maxGroups || !reflect.DeepEqual(got.Groups, many) {
			t.Errorf("a token of %d groups of %q (%d bytes): %v", len(many), fill, len(bigTok), err)
		}
	}
	clock = func() time.Time { return id.ValidBefore }
	if _, err := a.VerifyAccessToken(tok); !errors.Is(err, ErrAccessToken) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
}

// FuzzAccessToken: no input verifies but the tokens the authority issued,
// and nothing panics.
func FuzzAccessToken(f *testing.F) {
	a := testAuthority(f, nil)
	id, _ := a.Stamp(Identity{User: "alice", Issuer: "https://idp", Subject: "u-alice"}, 0)
	good, _ := a.IssueAccessToken(id)
	f.Add(good)
	for _, s := range accessTokenCases(f, a, good) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := a.VerifyAccessToken(tok)
		// Only the issued claims verify (a signature may have another
		// valid encoding of the same claims).
		if err == nil && (tok[:strings.LastIndexByte(tok, '.')] != good[:strings.LastIndexByte(good, '.')] || got.Serial != id.Serial) {
			t.Fatalf("a token that was never issued verified: %q", tok)
		}
		if err != nil && !errors.Is(err, ErrAccessToken) {
			t.Fatalf("error %v does not wrap ErrAccessToken", err)
		}
	})
}
