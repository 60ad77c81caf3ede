package devidp

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// MintIDToken signs claims, exactly as given, with the provider's current signing key
// and key ID (RS256, typ JWT), so tests can produce expired, wrong-audience or
// otherwise crafted tokens that still carry a valid signature from the real key set.
// A nil map signs an empty claim set. IDTokenClaims gives a valid starting point.
func (p *Provider) MintIDToken(claims map[string]any) (string, error) {
	if claims == nil {
		claims = map[string]any{}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: mint: claims: %w", err)
	}
	signer, err := op.SignerFromKey(p.store.key)
	if err != nil {
		return "", fmt.Errorf("devidp: mint: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidp: mint: sign: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("devidp: mint: %w", err)
	}
	return tok, nil
}

// IDTokenClaims returns the claims of an ID token the provider would issue to
// clientID after subject logged in, less nonce and hashes: iss, sub, aud, azp, iat,
// auth_time and exp (from Config.Now and IDTokenLifetime), a random jti, and the user's
// claims. The map is the caller's to change before MintIDToken (delete jti for a token
// without one). clientID need not be registered.
//
// The jti is what makes two tokens minted for one user in the same second differ:
// RS256 signatures are deterministic, so without it they are the same token, and a
// bastion spends it once.
func (p *Provider) IDTokenClaims(subject, clientID string) (map[string]any, error) {
	u, ok := p.store.usersBySub[subject]
	if !ok {
		return nil, fmt.Errorf("devidp: claims for %q: %w", subject, ErrUnknownUser)
	}
	now := p.now()
	c := userClaims(u)
	maps.Copy(c, map[string]any{
		"iss":       p.issuer,
		"sub":       u.Subject,
		"aud":       []string{clientID},
		"azp":       clientID,
		"iat":       now.Unix(),
		"auth_time": now.Unix(),
		"exp":       now.Add(p.store.idTokenLifetime).Unix(),
		"jti":       rand.Text(),
	})
	return c, nil
}
