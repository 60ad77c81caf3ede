package ca

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/auditlimit"
	"github.com/bastionhq/bastion/internal/devidp"
)

// memAuditor records issuance decisions in memory (a unit test of the
// handler; the end-to-end tests read the real audit log).
type memAuditor struct {
	mu   sync.Mutex
	recs []AuditRecord
	fail bool
}

func (m *memAuditor) AuditCert(r AuditRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return fmt.Errorf("disk full")
	}
	m.recs = append(m.recs, r)
	return nil
}

func (m *memAuditor) last() AuditRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.recs) == 0 {
		return AuditRecord{}
	}
	return m.recs[len(m.recs)-1]
}

type apiEnv struct {
	idp, ci, stranger *devidp.Provider
	srv               *httptest.Server
	audit             *memAuditor
	authority         *Authority
	ca                *Server
}

func boolp(b bool) *bool { return &b }

func newAPIEnv(t testing.TB) *apiEnv {
	t.Helper()
	start := func(users ...devidp.User) *devidp.Provider {
		p, err := devidp.Start(devidp.Config{
			Users:   users,
			Clients: []devidp.Client{{ID: "bastion", RedirectURIs: []string{"http://127.0.0.1/callback"}, Device: true}},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	e := &apiEnv{audit: &memAuditor{}}
	e.idp = start(
		devidp.User{Subject: "u-alice", Email: "alice@example.com", EmailVerified: boolp(true), Groups: []string{"dev", "sre"}},
		devidp.User{Subject: "u-bob", Email: "bob@example.com", EmailVerified: boolp(false)},
		devidp.User{Subject: "u-carol", Email: "carol@example.com"},
		devidp.User{Subject: "u-evil", Email: "root,deploy@example.com", EmailVerified: boolp(true)},
		devidp.User{Subject: "u-ctrl", Email: "al\x1b[2Jice@example.com", EmailVerified: boolp(true)},
		devidp.User{Subject: "u-nl", Email: "eve\n@example.com", EmailVerified: boolp(true)},
	)
	e.ci = start(devidp.User{Subject: "repo:acme/etl:ref:refs/heads/main"})
	e.stranger = start(devidp.User{Subject: "u-alice", Email: "alice@example.com", EmailVerified: boolp(true)})
	e.authority = testAuthority(t, nil)
	v, err := NewVerifier(OIDCConfig{
		Issuer: e.idp.Issuer(), ClientID: "bastion",
		Workloads: []Workload{{Issuer: e.ci.Issuer(), Audience: "bastion-ci", Subject: "repo:acme/etl:*", Name: "ci-etl", Groups: []string{"etl"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerConfig{Authority: e.authority, Verifier: v, Auditor: e.audit, Info: Info{SSHAddress: "127.0.0.1:2222"}})
	if err != nil {
		t.Fatal(err)
	}
	e.ca = s
	mux := http.NewServeMux()
	s.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *apiEnv) token(t testing.TB, p *devidp.Provider, sub, aud string, edit func(map[string]any)) string {
	t.Helper()
	c, err := p.IDTokenClaims(sub, aud)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(c)
	}
	tok, err := p.MintIDToken(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *apiEnv) post(t *testing.T, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(e.srv.URL+PathCertificate, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func edKey(t testing.TB) string {
	t.Helper()
	return string(ssh.MarshalAuthorizedKey(newEd25519(t)))
}

func request(tok, key, ttl string) []byte {
	b, _ := json.Marshal(CertRequest{IDToken: tok, PublicKey: key, TTL: ttl})
	return b
}

// jwksKey fetches the IdP's RSA public key the way an attacker would.
func jwksKey(t *testing.T, issuer string) *rsa.PublicKey {
	t.Helper()
	var disc struct {
		JWKS string `json:"jwks_uri"`
	}
	getJSON := func(u string, v any) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(v)
	}
	getJSON(issuer+"/.well-known/openid-configuration", &disc)
	var set jose.JSONWebKeySet
	getJSON(disc.JWKS, &set)
	for _, k := range set.Keys {
		if pk, ok := k.Key.(*rsa.PublicKey); ok {
			return pk
		}
	}
	t.Fatal("no RSA key in the IdP's JWKS")
	return nil
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestCertificateAPI(t *testing.T) {
	e := newAPIEnv(t)
	valid := e.token(t, e.idp, "u-alice", "bastion", nil)
	claims, _ := e.idp.IDTokenClaims("u-alice", "bastion")
	pubDER, _ := x509.MarshalPKIXPublicKey(jwksKey(t, e.idp.Issuer()))
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsHeader := b64(map[string]string{"alg": "HS256", "typ": "JWT"})
	mac := hmac.New(sha256.New, pubPEM)
	mac.Write([]byte(hsHeader + "." + b64(claims)))
	hs256 := hsHeader + "." + b64(claims) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	algNone := b64(map[string]string{"alg": "none"}) + "." + b64(claims) + "."
	rogue, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: rogue, KeyID: "not-in-jwks"}}, nil)
	payload, _ := json.Marshal(claims)
	jws, _ := rs.Sign(payload)
	unknownKid, _ := jws.CompactSerialize()
	// A rogue key that names the IdP's key ID and carries itself in a
	// jwk header (and a jku to fetch it from): the bastion takes keys from
	// the issuer's key set only.
	var hdr struct {
		Kid string `json:"kid"`
	}
	hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(valid, ".")[0])
	json.Unmarshal(hb, &hdr)
	rj, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: rogue, KeyID: hdr.Kid}},
		(&jose.SignerOptions{EmbedJWK: true}).WithHeader("jku", e.stranger.Issuer()+"/keys").WithHeader("kid", hdr.Kid))
	jws, _ = rj.Sign(payload)
	embedded, _ := jws.CompactSerialize()
	parts := strings.Split(valid, ".")
	claims2 := map[string]any{}
	for k, v := range claims {
		claims2[k] = v
	}
	claims2["email"] = "mallory@example.com"
	tampered := parts[0] + "." + b64(claims2) + "." + parts[2]
	issued, _, err := e.authority.SignUser(Identity{User: "bob", Issuer: "https://x", Subject: "s"}, newEd25519(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	var dbCAKey []byte
	if c := e.authority.Keys().DBClientCA; c != nil {
		der, _ := x509.MarshalPKIXPublicKey(c.Cert.PublicKey)
		dbCAKey, _ = json.Marshal(CertRequest{IDToken: valid, DBPublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	}
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	weak, _ := ssh.NewPublicKey(&rsa1024.PublicKey)

	ci := func(sub, aud string, edit func(map[string]any)) string {
		return e.token(t, e.ci, "repo:acme/etl:ref:refs/heads/main", aud, func(c map[string]any) {
			c["sub"] = sub
			if edit != nil {
				edit(c)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		reason string
	}{
		{"expired", request(e.token(t, e.idp, "u-alice", "bastion", func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
		}), edKey(t), ""), 401, ReasonExpired},
		// Its iat is when a revocation by user (ca revoke --user) is
		// compared with: a token minted before one by an IdP whose clock
		// is an hour ahead would pass it for an hour.
		{"issued in the future", request(e.token(t, e.idp, "u-alice", "bastion", func(c map[string]any) {
			c["iat"] = time.Now().Add(time.Hour).Unix()
			c["exp"] = time.Now().Add(2 * time.Hour).Unix()
		}), edKey(t), ""), 401, ReasonInvalid},
		{"not yet valid (nbf in an hour)", request(e.token(t, e.idp, "u-alice", "bastion", func(c map[string]any) {
			c["nbf"] = time.Now().Add(time.Hour).Unix()
		}), edKey(t), ""), 401, ReasonInvalid},
		{"another audience", request(e.token(t, e.idp, "u-alice", "grafana", nil), edKey(t), ""), 401, ReasonAudience},
		{"wrong issuer", request(e.token(t, e.stranger, "u-alice", "bastion", nil), edKey(t), ""), 401, ReasonUnknownIssuer},
		{"alg none", request(algNone, edKey(t), ""), 401, ReasonAlgorithm},
		{"HS256 with the IdP public key", request(hs256, edKey(t), ""), 401, ReasonAlgorithm},
		{"unknown kid", request(unknownKid, edKey(t), ""), 401, ReasonSignature},
		{"tampered payload", request(tampered, edKey(t), ""), 401, ReasonSignature},
		{"rogue key in a jwk header under the IdP's kid", request(embedded, edKey(t), ""), 401, ReasonSignature},
		{"malformed token", request("not.a.jwt.at.all", edKey(t), ""), 401, ReasonMalformed},
		{"garbage token", request("eyJ!!!.x.y", edKey(t), ""), 401, ReasonMalformed},
		{"empty token", request("", edKey(t), ""), 401, ReasonMalformed},
		{"email not verified", request(e.token(t, e.idp, "u-bob", "bastion", nil), edKey(t), ""), 401, ReasonEmailUnverified},
		{"email_verified missing", request(e.token(t, e.idp, "u-carol", "bastion", nil), edKey(t), ""), 401, ReasonEmailUnverified},
		{"principal injection", request(e.token(t, e.idp, "u-evil", "bastion", nil), edKey(t), ""), 401, ReasonUsername},
		{"control characters", request(e.token(t, e.idp, "u-ctrl", "bastion", nil), edKey(t), ""), 401, ReasonUsername},
		{"newline in name", request(e.token(t, e.idp, "u-nl", "bastion", nil), edKey(t), ""), 401, ReasonUsername},
		{"several audiences without azp", request(e.token(t, e.idp, "u-alice", "bastion", func(c map[string]any) {
			c["aud"] = []string{"bastion", "other"}
			delete(c, "azp")
		}), edKey(t), ""), 401, ReasonAuthorizedParty},
		{"azp of another client", request(e.token(t, e.idp, "u-alice", "bastion", func(c map[string]any) { c["azp"] = "other" }), edKey(t), ""), 401, ReasonAuthorizedParty},
		{"ttl above maximum", request(valid, edKey(t), "9h"), 400, "ttl"},
		{"negative ttl", request(valid, edKey(t), "-5m"), 400, "ttl"},
		{"ttl not a duration", request(valid, edKey(t), "forever"), 400, "ttl"},
		{"RSA 1024", request(valid, string(ssh.MarshalAuthorizedKey(weak)), ""), 400, "public_key"},
		{"DSA", request(valid, dsaAuthorizedLine(t), ""), 400, "public_key"},
		{"malformed key", request(valid, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA", ""), 400, "public_key"},
		{"two keys", request(valid, edKey(t)+edKey(t), ""), 400, "public_key"},
		{"a certificate as the key", request(valid, string(ssh.MarshalAuthorizedKey(issued)), ""), 400, "public_key"},
		{"the bastion's user CA key", request(valid, e.authority.Keys().UserCALine(), ""), 400, "public_key"},
		{"the bastion's database client CA key", dbCAKey, 400, "public_key"},
		{"oversized body", append([]byte(`{"id_token":"`), bytes.Repeat([]byte("a"), 100<<10)...), 413, "too_large"},
		{"not JSON", []byte("id_token=x"), 400, "json"},
		{"unknown field", []byte(`{"id_token":"x","public_key":"y","admin":true}`), 400, "json"},
		{"trailing data", append(request(valid, edKey(t), ""), []byte("{}")...), 400, "json"},
		{"workload subject mismatch", request(ci("repo:acme/other:ref:refs/heads/main", "bastion-ci", nil), edKey(t), ""), 401, ReasonSubject},
		{"workload ttl above its maximum", request(ci("repo:acme/etl:ref:refs/heads/main", "bastion-ci", nil), edKey(t), "1h"), 400, "ttl"},
		{"workload wrong audience", request(ci("repo:acme/etl:ref:refs/heads/main", "bastion", nil), edKey(t), ""), 401, ReasonAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.audit.recs)
			status, body := e.post(t, tc.body)
			if status != tc.status {
				t.Fatalf("got HTTP %d %s, want %d", status, body, tc.status)
			}
			var er ErrorResponse
			if err := json.Unmarshal(body, &er); err != nil || er.Reason != tc.reason || er.Error == "" {
				t.Fatalf("got %s, want reason %q and an error message", body, tc.reason)
			}
			if strings.Contains(string(body), "eyJ") {
				t.Errorf("the error echoes the token: %s", body)
			}
			if len(e.audit.recs) != before+1 {
				t.Fatalf("refusal not audited")
			}
			if r := e.audit.last(); r.Action != ActionRefuse || r.Reason != tc.reason {
				t.Errorf("audit record %+v, want a refusal with reason %q", r, tc.reason)
			}
		})
	}

	t.Run("person", func(t *testing.T) {
		status, body := e.post(t, request(valid, edKey(t), "30m"))
		if status != 200 {
			t.Fatalf("HTTP %d %s", status, body)
		}
		var resp CertResponse
		json.Unmarshal(body, &resp)
		if resp.Principal != "alice" || strings.Join(resp.Groups, ",") != "dev,sre" {
			t.Errorf("got %+v", resp)
		}
		if d := time.Until(resp.ValidBefore); d > 31*time.Minute || d < 29*time.Minute {
			t.Errorf("valid for %s, want 30m", d)
		}
		if r := e.audit.last(); r.Action != ActionIssue || r.User != "alice" || r.Serial == 0 {
			t.Errorf("issuance audit %+v", r)
		}
		out := keygenL(t, resp.Certificate)
		mustContainAll(t, out, "Principals: \n                alice\n", "Key ID: \"user=alice iss="+e.idp.Issuer(), ExtGroups, hex.EncodeToString([]byte(`["dev","sre"]`)))
	})
	t.Run("workload", func(t *testing.T) {
		status, body := e.post(t, request(ci("repo:acme/etl:ref:refs/heads/main", "bastion-ci", nil), edKey(t), ""))
		if status != 200 {
			t.Fatalf("HTTP %d %s", status, body)
		}
		var resp CertResponse
		json.Unmarshal(body, &resp)
		if resp.Principal != "ci-etl" || strings.Join(resp.Groups, ",") != "etl" {
			t.Errorf("got %+v", resp)
		}
		if d := time.Until(resp.ValidBefore); d > 5*time.Minute+time.Second {
			t.Errorf("workload certificate valid for %s, want at most 5m", d)
		}
		mustContainAll(t, keygenL(t, resp.Certificate), "workload=ci-etl", ExtWorkload, "repo:acme/etl:ref:refs/heads/main")
	})
	// A workload's sub can hold text whoever pushes a job chooses (GitHub's
	// customised sub with the workflow's name): in the key ID, which
	// targets' sshd logs, it is one quoted field, not fields of its own.
	t.Run("workload sub with spaces in the key id", func(t *testing.T) {
		for _, sub := range []string{"repo:acme/etl:workflow:x serial=1 actor=bob", "repo:acme/etl:workflow:\u202ebob=rotca"} {
			status, body := e.post(t, request(ci(sub, "bastion-ci", nil), edKey(t), ""))
			if status != 200 {
				t.Fatalf("HTTP %d %s", status, body)
			}
			var resp CertResponse
			json.Unmarshal(body, &resp)
			want := "workload=ci-etl iss=" + e.ci.Issuer() + " sub=" + strconv.QuoteToASCII(sub) + " serial=" + resp.Serial
			if resp.KeyID != want {
				t.Errorf("key id %q, want %q", resp.KeyID, want)
			}
			if r := e.audit.last(); r.KeyID != want {
				t.Errorf("audited key id %q, want %q", r.KeyID, want)
			}
		}
	})
	t.Run("audit failure refuses issuance", func(t *testing.T) {
		e.audit.mu.Lock()
		e.audit.fail = true
		e.audit.mu.Unlock()
		defer func() { e.audit.mu.Lock(); e.audit.fail = false; e.audit.mu.Unlock() }()
		status, body := e.post(t, request(valid, edKey(t), ""))
		if status != 503 || !strings.Contains(string(body), "audit") {
			t.Fatalf("got HTTP %d %s, want 503 audit", status, body)
		}
	})
	t.Run("info", func(t *testing.T) {
		resp, err := http.Get(e.srv.URL + PathInfo)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var info Info
		json.NewDecoder(resp.Body).Decode(&info)
		if info.Issuer != e.idp.Issuer() || info.ClientID != "bastion" || info.SSHAddress != "127.0.0.1:2222" || !strings.HasPrefix(info.HostCA, "@cert-authority * ssh-ed25519 ") {
			t.Errorf("info %+v", info)
		}
	})
}

func keygenL(t *testing.T, cert string) string {
	t.Helper()
	keygen := requireTool(t, "ssh-keygen")
	p := filepath.Join(t.TempDir(), "c-cert.pub")
	os.WriteFile(p, []byte(cert), 0o600)
	out, err := exec.Command(keygen, "-L", "-f", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	return string(out)
}

func mustContainAll(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

// The IdP's key set is fetched once and reused across logins, not per
// request (a per-request fetch made every issuance depend on a round trip
// to the IdP).
func TestKeySetCached(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idp, err := devidp.New(devidp.Config{
		Issuer: "http://" + ln.Addr().String(),
		Users:  []devidp.User{{Subject: "u-alice", Email: "alice@example.com", EmailVerified: boolp(true)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var jwks atomic.Int64
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "keys") || strings.Contains(r.URL.Path, "jwks") {
			jwks.Add(1)
		}
		idp.Handler().ServeHTTP(w, r)
	})}}
	srv.Start()
	defer srv.Close()
	v, err := NewVerifier(OIDCConfig{Issuer: idp.Issuer(), ClientID: "bastion"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		c, _ := idp.IDTokenClaims("u-alice", "bastion")
		tok, _ := idp.MintIDToken(c)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := jwks.Load(); n != 1 {
		t.Fatalf("the key set was fetched %d times for 20 logins, want once", n)
	}
}

func TestTokenSpentKey(t *testing.T) {
	enc := func(payload string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	exp := time.Unix(1900000000, 0)
	key := func(raw string) []byte {
		c, err := parseToken(raw, "email", "groups")
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return spentBy(raw, c.iss, c.jti, time.Time{}, exp).key
	}
	a := key(enc(`{"iss":"https://ci","jti":"j1","exp":1900000000}`))
	b := key(enc(`{"iss":"https://ci","jti":"j1","exp":1900000000,"nonce":"x"}`))
	c := key(enc(`{"iss":"https://other","jti":"j1","exp":1900000000}`))
	d := key(enc(`{"iss":"https://ci","exp":1900000000}`))
	e := key(enc(`{"iss":"https://ci","exp":1900000000,"n":1}`))
	// Without a jti, a token is named by what its signature signs: another
	// signature over the same header and payload (ECDSA's (r, n-s)) is the
	// same token.
	f := key(strings.TrimSuffix(enc(`{"iss":"https://ci","exp":1900000000}`), ".c2ln") + ".b3RoZXI")
	if !bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(d, e) || bytes.Equal(a, d) || !bytes.Equal(d, f) {
		t.Error("keys: the same jti must name the same token; tokens without one are named by their header and payload")
	}
	// The key of a token with a jti is the one stores already hold: spent
	// tokens stay spent across an upgrade.
	want := sha256.Sum256([]byte("jti\x00https://ci\x00j1"))
	if !bytes.Equal(a, want[:]) {
		t.Errorf("key %x, want %x", a, want)
	}
}

// BenchmarkCertificate is one issuance through the handler (request
// parsing, ID token verification with a cached key set, stamping, signing,
// the audit call and the response), without the network and with an
// in-memory auditor: the bastion's own CPU and allocations per certificate.
func BenchmarkCertificate(b *testing.B) {
	e := newAPIEnv(b)
	h := e.srv.Config.Handler
	key := edKey(b)
	claims, err := e.idp.IDTokenClaims("u-alice", "bastion")
	if err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, b.N+1)
	for i := range bodies {
		c := maps.Clone(claims)
		c["jti"] = fmt.Sprintf("bench-%d", i)
		tok, err := e.idp.MintIDToken(c)
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = request(tok, key, "")
	}
	issue := func(body []byte) {
		req := httptest.NewRequest(http.MethodPost, PathCertificate, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d: %s", w.Code, w.Body)
		}
	}
	issue(bodies[b.N]) // fetches the key set
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := range b.N {
		issue(bodies[i])
	}
	b.StopTimer()
	reportCPU(b, cpu0)
}

// processCPU is the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per operation since cpu0 (all
// threads, the GC's included): on a shared machine a steadier figure than
// ns/op, which counts time waiting for a core.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// TestAuthorizedKey: the certificate in the answer is exactly what
// ssh.MarshalAuthorizedKey writes.
func TestAuthorizedKey(t *testing.T) {
	a, err := New(Config{Keys: testKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := a.SignUser(Identity{User: "alice", Issuer: "https://idp", Subject: "s", Groups: []string{"dev"}}, newEd25519(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []ssh.PublicKey{cert, cert.Key} {
		if got, want := authorizedKey(k.Type(), k.Marshal()), string(ssh.MarshalAuthorizedKey(k)); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// Refusals are audited within a bound: a request with a garbage token
// costs its sender nothing, and each refusal audited cost a record in the
// hash-chained log (and at every sink). Past the bound they are counted and
// a summary record says how many, why and from where. Refusals after the
// token was verified (a user is known) have their own bucket, so a flood of
// garbage does not hide them.
func TestRefusalAuditsRateLimited(t *testing.T) {
	e := newAPIEnv(t)
	e.ca.anonRefusals = e.ca.refusalLimiter(3, 0.001, 200*time.Millisecond)
	e.ca.userRefusals = e.ca.refusalLimiter(3, 0.001, 200*time.Millisecond)
	valid := e.token(t, e.idp, "u-alice", "bastion", nil)
	for range 20 {
		if status, _ := e.post(t, request("garbage", edKey(t), "")); status != 401 {
			t.Fatalf("garbage token: status %d", status)
		}
	}
	for range 5 {
		if status, _ := e.post(t, request(valid, edKey(t), "9h")); status != 400 {
			t.Fatalf("ttl above maximum: status %d", status)
		}
	}
	// What is held back is summed up every 200 ms, so requests that take
	// longer (a loaded machine) are summed up in more than one record per
	// bucket: together they account for every refusal held back.
	var anon, user, malformed, ttl int
	var sums []AuditRecord
	for deadline := time.Now().Add(10 * time.Second); (malformed < 17 || ttl < 2) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		e.audit.mu.Lock()
		anon, user, malformed, ttl, sums = 0, 0, 0, 0, nil
		for _, r := range e.audit.recs {
			switch {
			case r.Action == auditlimit.Type:
				sums = append(sums, r)
				n, _ := strconv.Atoi(r.Fields["count"])
				switch r.Fields["reasons"] {
				case ReasonMalformed + "=" + r.Fields["count"]:
					malformed += n
				case "ttl=" + r.Fields["count"]:
					ttl += n
				}
			case r.Action == ActionRefuse && r.User == "":
				anon++
			case r.Action == ActionRefuse:
				user++
			}
		}
		e.audit.mu.Unlock()
	}
	if anon != 3 || user != 3 {
		t.Fatalf("audited one by one: %d refusals before a user was known and %d after, want the bursts of 3", anon, user)
	}
	if malformed != 17 || ttl != 2 {
		t.Fatalf("summaries count %d malformed tokens (want 17) and %d TTLs (want 2): %+v", malformed, ttl, sums)
	}
	for _, sum := range sums {
		if sum.Fields["type"] != ActionRefuse || !strings.HasPrefix(sum.Remote, "127.0.0.1:") {
			t.Fatalf("summary: %+v", sum)
		}
	}
}

// An ID token issued by the moment its user was revoked (bastion ca revoke
// --user: one taken with a stolen laptop, not yet spent) buys no
// certificate, and the refusal is audited; a token issued after it does,
// as does another user's.
func TestCertificateRevokedUser(t *testing.T) {
	e := newAPIEnv(t)
	at := time.Now().Truncate(time.Second)
	e.ca.cfg.Revoked = func(user string) (time.Time, bool) { return at, user == "alice" }
	iat := func(v any) func(map[string]any) {
		return func(c map[string]any) {
			if v == nil {
				delete(c, "iat")
			} else {
				c["iat"] = v
			}
		}
	}
	for _, tc := range []struct {
		name string
		tok  string
		want int
	}{
		{"issued before", e.token(t, e.idp, "u-alice", "bastion", iat(at.Add(-time.Minute).Unix())), http.StatusUnauthorized},
		{"issued in the revocation's second", e.token(t, e.idp, "u-alice", "bastion", iat(at.Unix())), http.StatusUnauthorized},
		{"no iat", e.token(t, e.idp, "u-alice", "bastion", iat(nil)), http.StatusUnauthorized},
		{"issued after", e.token(t, e.idp, "u-alice", "bastion", iat(at.Add(time.Second).Unix())), http.StatusOK},
		{"another user", e.token(t, e.ci, "repo:acme/etl:ref:refs/heads/main", "bastion-ci", nil), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.post(t, request(tc.tok, edKey(t), ""))
			if code != tc.want {
				t.Fatalf("%d %s", code, body)
			}
			rec := e.audit.last()
			if tc.want == http.StatusOK {
				if rec.Action != ActionIssue {
					t.Errorf("audited %+v", rec)
				}
				return
			}
			var er ErrorResponse
			json.Unmarshal(body, &er)
			if er.Reason != ReasonRevoked || !strings.Contains(er.Error, "have been revoked") {
				t.Errorf("answer %s", body)
			}
			if rec.Action != ActionRefuse || rec.Reason != ReasonRevoked || rec.User != "alice" {
				t.Errorf("audited %+v", rec)
			}
		})
	}
}

// TestCertificateRevokedUserWhileIssuing: a revocation that lands between
// the CA's look at it and the stamping of the certificate, with the clock
// crossing into the next second meanwhile, must not leave the token's
// holder a certificate the bastion takes for one issued after it: the
// certificate is either refused or issued (by its ValidAfter) no later
// than the revocation, which then revokes it.
func TestCertificateRevokedUserWhileIssuing(t *testing.T) {
	e := newAPIEnv(t)
	var mu sync.Mutex
	now := time.Now().Truncate(time.Second).Add(999 * time.Millisecond)
	e.authority.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	var at time.Time
	e.ca.cfg.Revoked = func(user string) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() {
			return at, user == "alice"
		}
		// alice is revoked just after this answer; the next millisecond
		// is the next second.
		at = now.Add(500 * time.Microsecond)
		now = now.Add(time.Millisecond)
		return time.Time{}, false
	}
	tok := e.token(t, e.idp, "u-alice", "bastion", nil) // issued before the revocation
	code, body := e.post(t, request(tok, edKey(t), ""))
	if code != http.StatusOK {
		return // refused: nothing issued
	}
	var resp CertResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	issued := Identity{ValidAfter: resp.ValidAfter}.Issued()
	if issued.After(at) {
		t.Fatalf("a token issued before alice's revocation (%s) bought a certificate issued after it (%s): the bastion takes it for a later login",
			at.Format(time.RFC3339Nano), issued.Format(time.RFC3339Nano))
	}
}

// A token whose claims differ only in case (a custom claim an IdP lets a
// user set, mapped into the token: "EXP" after the real "exp", which
// encoding/json, go-oidc's reader, would take as the expiry) buys no
// certificate though the IdP signed it.
func TestCertificateRefusesCaseVariantClaims(t *testing.T) {
	e := newAPIEnv(t)
	for name, edit := range map[string]func(map[string]any){
		"EXP": func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			c["EXP"] = time.Now().Add(time.Hour).Unix()
		},
		"EMAIL":  func(c map[string]any) { c["EMAIL"] = "root@example.com" },
		"Groups": func(c map[string]any) { c["Groups"] = []string{"sec"} },
	} {
		t.Run(name, func(t *testing.T) {
			code, body := e.post(t, request(e.token(t, e.idp, "u-alice", "bastion", edit), edKey(t), ""))
			var er ErrorResponse
			json.Unmarshal(body, &er)
			if code != http.StatusUnauthorized || er.Reason != ReasonMalformed || !strings.Contains(er.Error, "differ only in case") {
				t.Fatalf("%d %s", code, body)
			}
		})
	}
	if code, body := e.post(t, request(e.token(t, e.idp, "u-alice", "bastion", nil), edKey(t), "")); code != http.StatusOK {
		t.Fatalf("the same token without them: %d %s", code, body)
	}
}
