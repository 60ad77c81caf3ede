package ca

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/devidp"
)

// TestWorkloadActor: a workload's actor claim becomes Identity.Actor, through
// the actors map or normalised as a username; a token without a usable one
// is refused (ReasonActor). The actor travels in the certificate, the
// database client certificate's identity and the access token's claims.
func TestWorkloadActor(t *testing.T) {
	plain := &Workload{Name: "ci-etl", ActorClaim: "actor"}
	mapped := &Workload{Name: "ci-etl", ActorClaim: "user_login", Actors: map[string]string{"Alice-Acme": "asmith"}}
	for _, tc := range []struct {
		w                *Workload
		payload, want, e string // want "" is refused, e in the error
	}{
		{plain, `{"actor":"Alice"}`, "alice", ""},
		{plain, `{"actor":"alice+ci@example.com"}`, "alice", ""},
		{plain, `{}`, "", `needs the claim "actor"`},
		{plain, `{"actor":null}`, "", `needs the claim "actor"`},
		{plain, `{"actor":""}`, "", `needs the claim "actor"`},
		{plain, `{"actor":["alice"]}`, "", `needs the claim "actor"`},
		{plain, `{"actor":"dependabot[bot]"}`, "", "map it with actors"},
		{mapped, `{"user_login":"alice-acme"}`, "asmith", ""},
		{mapped, `{"user_login":"bob"}`, "", "not in the actors map"},
		// With oidc.email_domains, an email's domain says whose it is,
		// as for a person's login: bob's CI account with the email
		// alice@bob.example is not alice.
		{plain, `{"actor":"alice@example.com"}`, "alice", ""},
		{plain, `{"actor":"alice@EXAMPLE.com"}`, "alice", ""},
		{plain, `{"actor":"alice@bob.example"}`, "", "not one of oidc.email_domains"},
	} {
		got, err := tc.w.actorOf(&idClaims{payload: []byte(tc.payload)}, []string{"example.com"})
		var te *TokenError
		switch {
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("%s: got %q, %v; want %q", tc.payload, got, err, tc.want)
		case tc.want == "" && (!errors.As(err, &te) || te.Reason != ReasonActor || !strings.Contains(err.Error(), tc.e)):
			t.Errorf("%s: got %q, %v; want a refusal (actor) mentioning %q", tc.payload, got, err, tc.e)
		}
	}

	// At GitHub and GitLab.com anyone has an account and picks (and
	// changes) its login: bob's run under a login that is not a bastion
	// username of his ("bob-gh", or "asmith" when free) would be one he
	// approves himself. There the actors map is required.
	for _, iss := range []string{"https://token.actions.githubusercontent.com", "https://gitlab.com/"} {
		w := Workload{Issuer: iss, Audience: "bastion", Subject: "repo:acme/etl:*", Name: "ci-etl", ActorClaim: "actor"}
		if _, err := NewVerifier(OIDCConfig{Issuer: "https://idp", ClientID: "bastion", Workloads: []Workload{w}}); err == nil || !strings.Contains(err.Error(), "actors") {
			t.Errorf("%s: actor_claim without actors: %v, want a refusal naming actors", iss, err)
		}
		w.Actors = map[string]string{"bob-gh": "bob"}
		if _, err := NewVerifier(OIDCConfig{Issuer: "https://idp", ClientID: "bastion", Workloads: []Workload{w}}); err != nil {
			t.Errorf("%s: actor_claim with actors: %v", iss, err)
		}
	}

	// An actor is a person: a login that normalises to a workload's name
	// (a CI account renamed ci-deploy, or the run's own) is refused, as
	// the actors map may not name a workload and a person may not log in
	// as one.
	ci, err := devidp.Start(devidp.Config{Users: []devidp.User{{Subject: "repo:acme/etl:ref:refs/heads/main"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ci.Close()
	v, err := NewVerifier(OIDCConfig{Issuer: "https://idp", ClientID: "bastion", Workloads: []Workload{
		{Issuer: ci.Issuer(), Audience: "bastion-ci", Subject: "repo:acme/etl:*", Name: "ci-etl", ActorClaim: "actor"},
		{Issuer: "https://other-ci", Audience: "bastion-ci", Subject: "*", Name: "ci-deploy"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, actor := range []string{"alice", "CI-Deploy", "ci-etl"} {
		c, _ := ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
		c["actor"] = actor
		tok, _ := ci.MintIDToken(c)
		id, err := v.Verify(context.Background(), tok)
		var te *TokenError
		switch {
		case actor == "alice" && (err != nil || id.Actor != "alice"):
			t.Errorf("actor alice: %+v, %v", id, err)
		case actor != "alice" && (!errors.As(err, &te) || te.Reason != ReasonActor):
			t.Errorf("actor %s: %+v, %v; want a refusal (actor)", actor, id, err)
		}
	}

	id := Identity{User: "ci-etl", Issuer: "https://ci", Subject: "repo:acme/etl", Workload: true, Actor: "alice", Serial: 7}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	pub, _ := ssh.NewPublicKey(edPub)
	cert, err := id.Certificate(pub)
	if err != nil {
		t.Fatal(err)
	}
	back, err := IdentityFromCertificate(cert)
	if err != nil || back.Actor != "alice" || back.Who() != "ci-etl (triggered by alice)" {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	// Only a workload has an actor, and it is a username.
	for _, bad := range []func(c *ssh.Certificate){
		func(c *ssh.Certificate) { delete(c.Permissions.Extensions, ExtWorkload) },
		func(c *ssh.Certificate) { c.Permissions.Extensions[ExtActor] = "root,alice" },
	} {
		c, _ := id.Certificate(pub)
		bad(c)
		if _, err := IdentityFromCertificate(c); err == nil {
			t.Errorf("accepted a certificate with extensions %v", c.Permissions.Extensions)
		}
	}
	// The database doors' credentials carry it in the identity JSON.
	db := Identity{User: "ci-etl"}
	if err := decodeIdentityJSON([]byte(`{"iss":"https://ci","sub":"s","groups":[],"workload":true,"actor":"alice"}`), &db); err != nil || db.Actor != "alice" {
		t.Fatalf("identity JSON: %+v, %v", db, err)
	}
	if err := decodeIdentityJSON([]byte(`{"iss":"https://idp","sub":"s","groups":[],"actor":"alice"}`), &Identity{User: "bob"}); err == nil {
		t.Fatal("a person's identity JSON with an actor was accepted")
	}
}
