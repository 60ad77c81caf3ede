// Package devidp is a development OpenID Connect provider for bastion's tests and
// for `bastion demo`, and for nothing else. It must never be wired into
// `bastion serve`: it authenticates nobody. Whoever can reach it can sign in as
// any configured user by clicking a button.
//
// # Basics
//
// The protocol is zitadel's (github.com/zitadel/oidc/v3/pkg/op): discovery, JWKS,
// authorize, token, userinfo, introspection, revocation and device authorization,
// with PKCE. This package supplies only an in-memory op.Storage, the client and
// login-request types, and two small server-rendered pages:
//
//   - /login lists the users as buttons for a pending authorization request, then
//     sends the browser back to zitadel's /authorize/callback, which redirects to
//     the client with code and state;
//   - /device takes the user code a device shows, then offers the users (approve)
//     and a Deny button.
//
// Both pages say "Development identity provider — for local use only".
//
// Clients without a secret are public (native) clients: auth method none, PKCE
// with S256 required, and an http loopback redirect URI matches on any port
// (RFC 8252 §7.3). Clients with a secret are confidential and authenticate with
// client_secret_basic or client_secret_post; with Native: true they are native
// apps all the same (loopback redirects on any port), as Google's desktop clients
// with their published secret are. Device: true allows the device grant (poll
// interval 1s), for public clients too.
//
// ID tokens are RS256, signed with a key generated in New, and carry iss, sub, aud
// (the client ID), azp, exp, iat, auth_time, nonce (from the authorization request)
// and, whatever scopes were asked for, the user's email, email_verified, groups and
// extra Claims. MintIDToken signs arbitrary claims with the same key and key ID, so
// tests can craft tokens (expired, wrong audience) that still verify against the
// real key set; IDTokenClaims gives a valid starting point.
//
// CompleteBrowserLogin and ApproveDevice stand in for the person at the browser.
// They request the same endpoints and submit the same forms, over real HTTP, that
// a browser does; they do not reach into the storage. ApproveDeviceAt does what
// ApproveDevice does for a provider in another process, given only its issuer URL
// (the tests of `bastion demo` use it).
//
//	idp, _ := devidp.Start(devidp.Config{Users: users, Clients: clients})
//	defer idp.Close()
//	redirect, err := idp.CompleteBrowserLogin(ctx, oauth2Config.AuthCodeURL(state, ...), "alice")
//	err = idp.ApproveDevice(ctx, deviceAuth.UserCode, "bob")
//
// # Concurrency
//
// A Provider is safe for concurrent use. Its state (login requests, codes, access
// tokens, device authorizations) lives in memory behind one mutex and is lost on
// Close; at most a few thousand of each are kept, and expired ones are dropped.
// Authorization codes and device codes yield tokens once.
//
// # Caveats
//
//   - No refresh tokens, no sessions (prompt=none always fails), no consent, no
//     logout pages; scopes beyond the standard ones and "groups" are dropped.
//   - zitadel stamps iat and exp of the ID tokens it issues, and the expiry of
//     device codes, with the wall clock; Config.Now governs only auth_time,
//     access-token expiry, login-request expiry and IDTokenClaims. (zitadel
//     computes expires_in against the wall clock, so a Now far off it makes
//     expires_in meaningless; bastion reads only the ID token.)
//   - zitadel logs through slog's default logger, not Config.Logger.
//   - User codes have about 34 bits of entropy and attempts are not limited.
//   - The issuer must have no path: mount Handler at the root of its own server.
package devidp
