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

// The username is the email's local part, so at an IdP where anyone can
// have an account (gitlab.com, a Google app open to every account, a
// Keycloak realm with self-registration) alice@attacker.example logs in
// as alice, and the bastion, which knows people by name, shows her
// alice's sessions and recordings. oidc.email_domains keeps the people to
// the organisation's addresses; gitlab.com with the email claim and no
// email_domains does not start.
func TestEmailDomains(t *testing.T) {
	idp, err := devidp.Start(devidp.Config{Users: []devidp.User{
		{Subject: "u-alice", Email: "alice@example.com", EmailVerified: boolp(true)},
		{Subject: "u-mallory", Email: "alice@attacker.example", EmailVerified: boolp(true)},
		{Subject: "u-upper", Email: "bob@EXAMPLE.com", EmailVerified: boolp(true)},
		{Subject: "u-sub", Email: "carol@mail.example.com", EmailVerified: boolp(true)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	mint := func(sub string) string {
		c, _ := idp.IDTokenClaims(sub, "bastion")
		tok, _ := idp.MintIDToken(c)
		return tok
	}
	v, err := NewVerifier(OIDCConfig{Issuer: idp.Issuer(), ClientID: "bastion", EmailDomains: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if id, err := v.Verify(ctx, mint("u-alice")); err != nil || id.User != "alice" {
		t.Fatalf("alice@example.com: %+v, %v", id, err)
	}
	if id, err := v.Verify(ctx, mint("u-upper")); err != nil || id.User != "bob" {
		t.Fatalf("bob@EXAMPLE.com: %+v, %v", id, err)
	}
	for _, sub := range []string{"u-mallory", "u-sub"} {
		id, err := v.Verify(ctx, mint(sub))
		var te *TokenError
		if !errors.As(err, &te) || te.Reason != ReasonUsername {
			t.Errorf("%s: identity %q, err %v; want a username refusal", sub, id.User, err)
		}
	}
	if _, err := NewVerifier(OIDCConfig{Issuer: "https://gitlab.com", ClientID: "x"}); err == nil {
		t.Error("gitlab.com with the email claim and no email_domains was accepted")
	}
	// Google and Apple: anyone can have an account there with a verified
	// email (alice@gmail.com), so the email claim needs email_domains
	// there too; an Internal Google app is no help to a bastion that
	// cannot see how the app is set up.
	for _, iss := range []string{"https://accounts.google.com", "https://accounts.google.com/", "https://appleid.apple.com"} {
		if _, err := NewVerifier(OIDCConfig{Issuer: iss, ClientID: "x"}); err == nil {
			t.Errorf("%s with the email claim and no email_domains was accepted", iss)
		}
		if _, err := NewVerifier(OIDCConfig{Issuer: iss, ClientID: "x", EmailDomains: []string{"example.com"}}); err != nil {
			t.Errorf("%s with email_domains: %v", iss, err)
		}
	}
	if _, err := NewVerifier(OIDCConfig{Issuer: "https://gitlab.com", ClientID: "x", UsernameClaim: "nickname"}); err != nil {
		t.Errorf("gitlab.com with its unique user names: %v", err)
	}
	if _, err := NewVerifier(OIDCConfig{Issuer: "https://x", ClientID: "x", EmailDomains: []string{"@example.com"}}); err == nil {
		t.Error("an email domain with an @ was accepted")
	}
}
