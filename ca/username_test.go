package ca

import (
	"context"
	"errors"
	"testing"

	"github.com/bastionhq/bastion/internal/devidp"
)

// A name that lower-cases to another only through Unicode case folding
// must not become that other name: strings.ToLower maps the Kelvin sign
// (U+212A) to an ASCII 'k', so "\u212Aarl@…", a different address at the
// IdP, logged in as karl, with karl's roles and recordings.
func TestUsernameNotFoldedFromNonASCII(t *testing.T) {
	idp, err := devidp.Start(devidp.Config{Users: []devidp.User{
		{Subject: "u-kelvin", Email: "\u212Aarl@example.com", EmailVerified: boolp(true)},
		{Subject: "u-login", Claims: map[string]any{"login": "\u212Aarl"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	for _, tc := range []struct{ sub, claim string }{{"u-kelvin", "email"}, {"u-login", "login"}} {
		v, err := NewVerifier(OIDCConfig{Issuer: idp.Issuer(), ClientID: "bastion", UsernameClaim: tc.claim})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := idp.IDTokenClaims(tc.sub, "bastion")
		tok, _ := idp.MintIDToken(c)
		id, err := v.Verify(context.Background(), tok)
		var te *TokenError
		if err == nil || !errors.As(err, &te) || te.Reason != ReasonUsername {
			t.Errorf("%s claim with a Kelvin sign: identity %q, err %v; want a username refusal", tc.claim, id.User, err)
		}
	}
}

// A person must not log in under a workload identity's name: the policy
// knows identities by name (roles' users:, the sessions one may see), so
// a person whose email local part is a CI job's name (ci-etl@, a shared
// mailbox, or any address at a public IdP) held the job's user roles. A
// person's name that is a workload's is refused.
func TestPersonCannotTakeWorkloadName(t *testing.T) {
	idp, err := devidp.Start(devidp.Config{Users: []devidp.User{
		{Subject: "u-ci", Email: "ci-etl@example.com", EmailVerified: boolp(true)},
		{Subject: "u-alice", Email: "alice@example.com", EmailVerified: boolp(true)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	v, err := NewVerifier(OIDCConfig{Issuer: idp.Issuer(), ClientID: "bastion",
		Workloads: []Workload{{Issuer: "https://ci.example.com", Audience: "bastion", Subject: "repo:acme/etl:*", Name: "ci-etl", Groups: []string{"etl"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(sub string) string {
		c, _ := idp.IDTokenClaims(sub, "bastion")
		tok, _ := idp.MintIDToken(c)
		return tok
	}
	id, err := v.Verify(context.Background(), mint("u-ci"))
	var te *TokenError
	if err == nil || !errors.As(err, &te) || te.Reason != ReasonUsername {
		t.Fatalf("a person named like the workload: identity %q (workload %v), err %v; want a username refusal", id.User, id.Workload, err)
	}
	if id, err := v.Verify(context.Background(), mint("u-alice")); err != nil || id.User != "alice" {
		t.Fatalf("alice: %+v, %v", id, err)
	}
}
