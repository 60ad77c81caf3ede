package ca

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestVerifyLogin: a web sign-in's ID token must be the people IdP's, for
// the console's client, with the nonce the sign-in sent; the identity is
// the same as for a certificate.
func TestVerifyLogin(t *testing.T) {
	e := newAPIEnv(t)
	v, err := NewVerifier(OIDCConfig{
		Issuer: e.idp.Issuer(), ClientID: "bastion",
		Workloads: []Workload{{Issuer: e.ci.Issuer(), Audience: "console", Subject: "*", Name: "ci", Groups: []string{"sec"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	withNonce := func(n string) func(map[string]any) {
		return func(c map[string]any) { c["nonce"] = n }
	}
	ctx := context.Background()

	tok := e.token(t, e.idp, "u-alice", "console", withNonce("n-123"))
	id, _, exp, err := v.VerifyLogin(ctx, tok, "console", "n-123")
	if err != nil {
		t.Fatalf("VerifyLogin: %v", err)
	}
	if id.User != "alice" || id.Subject != "u-alice" || id.Issuer != e.idp.Issuer() || len(id.Groups) != 2 || id.Workload {
		t.Errorf("identity %+v", id)
	}
	if d := time.Until(exp); d <= 0 || d > time.Hour {
		t.Errorf("expiry in %s", d)
	}

	for _, tc := range []struct {
		name, tok, client, nonce, reason string
	}{
		{"another nonce", tok, "console", "n-456", ReasonInvalid},
		{"no nonce expected", tok, "console", "", ReasonInvalid},
		{"token without nonce", e.token(t, e.idp, "u-alice", "console", nil), "console", "n-123", ReasonInvalid},
		{"the CLI's audience", e.token(t, e.idp, "u-alice", "bastion", withNonce("n-123")), "console", "n-123", ReasonAudience},
		{"another IdP", e.token(t, e.stranger, "u-alice", "console", withNonce("n-123")), "console", "n-123", ReasonUnknownIssuer},
		{"a workload", e.token(t, e.ci, "repo:acme/etl:ref:refs/heads/main", "console", withNonce("n-123")), "console", "n-123", ReasonUnknownIssuer},
		{"unverified email", e.token(t, e.idp, "u-bob", "console", withNonce("n-123")), "console", "n-123", ReasonEmailUnverified},
		{"expired", e.token(t, e.idp, "u-alice", "console", func(c map[string]any) { c["nonce"] = "n-123"; c["exp"] = time.Now().Add(-time.Minute).Unix() }), "console", "n-123", ReasonExpired},
		{"garbage", "not.a.token", "console", "n-123", ReasonMalformed},
		{"empty", "", "console", "n-123", ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := v.VerifyLogin(ctx, tc.tok, tc.client, tc.nonce)
			var te *TokenError
			if !errors.As(err, &te) || te.Reason != tc.reason {
				t.Errorf("got %v, want a token error %q", err, tc.reason)
			}
		})
	}
}
