package devidp

import (
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// BenchmarkCodeFlow measures one whole login over loopback HTTP: authorize, login
// page, form post, callback, code exchange and ID token verification.
func BenchmarkCodeFlow(b *testing.B) {
	e := newEnv(b, Config{})
	conf := e.oauth2(publicID, "", e.callback)
	verifier := e.rp.Verifier(&oidc.Config{ClientID: publicID})
	b.ResetTimer()
	for b.Loop() {
		v := oauth2.GenerateVerifier()
		redirect, err := e.idp.CompleteBrowserLogin(e.ctx, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "alice")
		if err != nil {
			b.Fatal(err)
		}
		tok, err := conf.Exchange(e.ctx, redirect.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := verifier.Verify(e.ctx, tok.Extra("id_token").(string)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMintIDToken(b *testing.B) {
	p, err := New(Config{Issuer: "http://127.0.0.1:9", Users: testUsers()})
	if err != nil {
		b.Fatal(err)
	}
	claims, err := p.IDTokenClaims("alice", publicID)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := p.MintIDToken(claims); err != nil {
			b.Fatal(err)
		}
	}
}
