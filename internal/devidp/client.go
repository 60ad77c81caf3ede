package devidp

import (
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is the op.Client for a Config Client. A client without a secret is a
// native (public) application: auth method none, PKCE required, loopback redirect
// URIs matching on any port. A client with a secret is a confidential web
// application authenticating with client_secret_basic or client_secret_post.
type client struct {
	id           string
	secret       string
	native       bool // a native app with a (published) secret
	redirectURIs []string
	device       bool
	lifetime     time.Duration
	loginURL     string // prefix; the login request ID is appended
}

var _ op.Client = (*client)(nil)

func (c *client) public() bool { return c.secret == "" }

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return slices.Clone(c.redirectURIs) }
func (c *client) PostLogoutRedirectURIs() []string { return nil }
func (c *client) LoginURL(id string) string        { return c.loginURL + url.QueryEscape(id) }
func (c *client) AccessTokenType() op.AccessTokenType {
	return op.AccessTokenTypeBearer
}
func (c *client) IDTokenLifetime() time.Duration { return c.lifetime }
func (c *client) DevMode() bool                  { return false }
func (c *client) ClockSkew() time.Duration       { return 0 }

// IDTokenUserinfoClaimsAssertion puts the user's claims into the ID token even when
// an access token is issued too, which is what bastion reads.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }

func (c *client) ApplicationType() op.ApplicationType {
	if c.public() || c.native {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	g := []oidc.GrantType{oidc.GrantTypeCode}
	if c.device {
		g = append(g, oidc.GrantTypeDeviceCode)
	}
	return g
}

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed allows "groups" besides the standard scopes zitadel always allows;
// other unknown scopes are dropped from the request.
func (c *client) IsScopeAllowed(scope string) bool { return scope == "groups" }

// authRequest is a login request: an authorization request waiting for, or completed
// by, a user on the login page. Storage hands out copies only.
type authRequest struct {
	id           string
	created      time.Time
	clientID     string
	redirectURI  string
	state        string
	nonce        string
	scopes       []string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge
	code         string // authorization code, once issued

	subject  string
	authTime time.Time
	done     bool
}

var _ op.AuthRequest = (*authRequest)(nil)

func (r *authRequest) clone() *authRequest {
	c := *r
	c.scopes = slices.Clone(r.scopes)
	if r.challenge != nil {
		ch := *r.challenge
		c.challenge = &ch
	}
	return &c
}

func (r *authRequest) GetID() string                         { return r.id }
func (r *authRequest) GetACR() string                        { return "" }
func (r *authRequest) GetAMR() []string                      { return nil }
func (r *authRequest) GetAudience() []string                 { return []string{r.clientID} }
func (r *authRequest) GetAuthTime() time.Time                { return r.authTime }
func (r *authRequest) GetClientID() string                   { return r.clientID }
func (r *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return r.challenge }
func (r *authRequest) GetNonce() string                      { return r.nonce }
func (r *authRequest) GetRedirectURI() string                { return r.redirectURI }
func (r *authRequest) GetResponseType() oidc.ResponseType    { return r.responseType }
func (r *authRequest) GetResponseMode() oidc.ResponseMode    { return r.responseMode }
func (r *authRequest) GetScopes() []string                   { return r.scopes }
func (r *authRequest) GetState() string                      { return r.state }
func (r *authRequest) GetSubject() string                    { return r.subject }
func (r *authRequest) Done() bool                            { return r.done }
