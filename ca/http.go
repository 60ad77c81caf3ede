package ca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/auditlimit"
	"github.com/bastionhq/bastion/internal/safetext"
)

// API paths on the bastion's HTTP listener.
const (
	PathInfo        = "/v1/info"
	PathCertificate = "/v1/certificate"
)

// maxRequestBytes bounds a certificate request: a token and a public key.
const maxRequestBytes = 64 << 10

// Audit actions written for every issuance and refusal.
const (
	ActionIssue  = "cert.issue"
	ActionRefuse = "cert.refuse"
)

// AuditRecord is one issuance or refusal.
type AuditRecord struct {
	Action      string // ActionIssue or ActionRefuse
	User        string // empty when the token was refused before a user was known
	Issuer      string
	Subject     string
	Workload    bool
	Actor       string // a workload run's trigger (Identity.Actor)
	Serial      uint64
	KeyID       string
	ValidBefore time.Time
	Reason      string // refusal reason label (a Reason constant or a request problem)
	Detail      string // refusal detail, never containing the token
	Remote      string // client address
	// TokenKey, for an issuance, names the ID token it spends (a hash of
	// its issuer and jti, or of the whole token when it has no jti; never
	// the token), and TokenExpiry is when that token expires. The Auditor
	// records the key with the issuance, atomically, and returns
	// ErrTokenReplay when the key was recorded before: an ID token buys one
	// certificate.
	TokenKey    []byte
	TokenExpiry time.Time
	// Fields are more fields to record (a summary of refusals held back:
	// auditlimit.Summary.Fields).
	Fields map[string]string
}

// ErrTokenReplay is returned by an Auditor for an issuance whose ID token
// was already used for one.
var ErrTokenReplay = errors.New("this ID token was already used for a certificate; each login needs a fresh ID token")

// Auditor records issuance decisions. An issuance whose record cannot be
// written is refused: no certificate leaves the bastion unaudited.
type Auditor interface {
	AuditCert(AuditRecord) error
}

// Info is what a client needs to log in; served at PathInfo.
type Info struct {
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// ClientSecret is the client's published secret, for providers that
	// want one from native apps (oidc.public_client_secret); not confidential.
	ClientSecret string   `json:"public_client_secret,omitempty"`
	Scopes       []string `json:"scopes"`
	SSHAddress   string   `json:"ssh_address"`
	HostCA       string   `json:"host_ca"` // known_hosts @cert-authority line
	UserTTL      string   `json:"user_ttl"`
	MaxUserTTL   string   `json:"max_user_ttl"`
	// PostgresAddress is the direct PostgreSQL listener clients use
	// (host:port); empty when the bastion has none.
	PostgresAddress string `json:"postgres_address,omitempty"`
	// SQLAPI says the bastion answers POST /v1/sql: login then asks for
	// an access token.
	SQLAPI bool `json:"sql_api,omitempty"`
}

// CertRequest is the body of a POST to PathCertificate.
type CertRequest struct {
	IDToken   string `json:"id_token"`
	PublicKey string `json:"public_key"`     // authorized_keys format; may be empty when DBPublicKey or AccessToken is set
	TTL       string `json:"ttl,omitempty"`  // Go duration; empty for the default
	Source    string `json:"source_address"` // optional CIDR list bound into the certificate
	// DBPublicKey (PEM "PUBLIC KEY") is certified too, as the login's
	// X.509 client certificate for the direct PostgreSQL listener.
	DBPublicKey string `json:"db_public_key,omitempty"`
	// AccessToken asks for the login's access token for the SQL API.
	AccessToken bool `json:"access_token,omitempty"`
}

// CertResponse is the answer to a successful CertRequest.
type CertResponse struct {
	Certificate string    `json:"certificate"` // authorized_keys format
	Principal   string    `json:"principal"`
	Serial      string    `json:"serial"` // decimal; JSON numbers lose 64-bit precision
	KeyID       string    `json:"key_id"`
	Groups      []string  `json:"groups"`
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
	// DBCertificate (PEM) is the client certificate for DBPublicKey, and
	// DBCA (PEM) the CA that signs it and the direct listener's server
	// certificate: clients verify the listener with it (sslrootcert).
	DBCertificate string `json:"db_certificate,omitempty"`
	DBCA          string `json:"db_ca,omitempty"`
	// AccessToken is the SQL API's bearer token, valid until ValidBefore.
	AccessToken string `json:"access_token,omitempty"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

// ServerConfig configures the HTTP API.
type ServerConfig struct {
	Authority *Authority    // required
	Verifier  *Verifier     // required
	Auditor   Auditor       // required
	Info      Info          // issuer and client ID are filled from Verifier when empty
	Logger    *slog.Logger  // nil discards
	Timeout   time.Duration // per-request verification timeout; default 15s
	// Revoked reports up to when everything a user held was revoked
	// (bastion ca revoke --user); an ID token issued by then buys no
	// certificate. Nil: no user is ever revoked.
	Revoked func(user string) (time.Time, bool)
}

// Server serves the login API.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	// Refusals are audited within a bound (auditlimit): a request with
	// a garbage token costs its sender nothing. One bucket for refusals
	// before any user is known, one for the rest (a spent token used
	// again, a TTL too long), so a flood of one hides nothing of the
	// other; what a bucket holds back is summed up in the log.
	anonRefusals, userRefusals *auditlimit.Limiter
}

// NewServer checks cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Authority == nil || cfg.Verifier == nil || cfg.Auditor == nil {
		return nil, errors.New("ca: ServerConfig needs Authority, Verifier and Auditor")
	}
	if cfg.Info.Issuer == "" {
		cfg.Info.Issuer = cfg.Verifier.Issuer()
	}
	if cfg.Info.ClientID == "" {
		cfg.Info.ClientID = cfg.Verifier.ClientID()
	}
	if len(cfg.Info.Scopes) == 0 {
		cfg.Info.Scopes = []string{"openid", "email", "profile"}
	}
	if cfg.Info.HostCA == "" {
		cfg.Info.HostCA = cfg.Authority.Keys().HostCALine("*")
	}
	cfg.Info.UserTTL = cfg.Authority.cfg.UserTTL.String()
	cfg.Info.MaxUserTTL = cfg.Authority.cfg.MaxUserTTL.String()
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log}
	s.anonRefusals, s.userRefusals = s.refusalLimiter(0, 0, 0), s.refusalLimiter(0, 0, 0)
	return s, nil
}

// refusalLimiter bounds the audit records of one kind of refusal, summing
// up what it holds back (zero values: auditlimit's defaults).
func (s *Server) refusalLimiter(burst int, rate float64, every time.Duration) *auditlimit.Limiter {
	return auditlimit.New(burst, rate, every, func(sum auditlimit.Summary) {
		rec := AuditRecord{Action: auditlimit.Type, Reason: "suppressed", Detail: sum.Reason(ActionRefuse), Remote: sum.LastRemote,
			Fields: sum.Fields(ActionRefuse)}
		if err := s.cfg.Auditor.AuditCert(rec); err != nil {
			s.log.Error("audit write failed", "err", err)
		}
	})
}

// Close writes the summary of refusals held back, if any (at shutdown).
func (s *Server) Close() {
	s.anonRefusals.Close()
	s.userRefusals.Close()
}

// Register adds the API routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathInfo, s.info)
	mux.HandleFunc("POST "+PathCertificate, s.certificate)
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	info := s.cfg.Info
	if strings.HasPrefix(info.SSHAddress, ":") {
		// Listening on all interfaces: the client reached us by this name.
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		info.SSHAddress = net.JoinHostPort(host, info.SSHAddress[1:])
	}
	if strings.HasPrefix(info.PostgresAddress, ":") {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		info.PostgresAddress = net.JoinHostPort(host, info.PostgresAddress[1:])
	}
	writeJSON(w, http.StatusOK, info)
}

// requestError is a refusal caused by the request itself, not the token.
type requestError struct {
	status int
	reason string
	err    error
}

func (e *requestError) Error() string { return e.err.Error() }

func badRequest(reason, format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, reason: reason, err: fmt.Errorf(format, args...)}
}

func (s *Server) certificate(w http.ResponseWriter, r *http.Request) {
	remote := r.RemoteAddr
	rec := AuditRecord{Action: ActionRefuse, Remote: remote}
	resp, err := s.issue(r, &rec)
	if err != nil {
		status, reason := http.StatusBadRequest, "bad_request"
		var te *TokenError
		var re *requestError
		switch {
		case errors.As(err, &te):
			status, reason = http.StatusUnauthorized, te.Reason
			if te.Reason == ReasonIdPUnavailable {
				status = http.StatusServiceUnavailable
			}
		case errors.As(err, &re):
			status, reason = re.status, re.reason
		case errors.Is(err, ErrTTL):
			reason = "ttl"
		case errors.Is(err, ErrWeakKey):
			reason = "public_key"
		case errors.Is(err, errAudit):
			status, reason = http.StatusServiceUnavailable, "audit"
		case errors.Is(err, ErrCAUnavailable):
			status, reason = http.StatusServiceUnavailable, ReasonCAUnavailable
		}
		rec.Action, rec.Reason, rec.Detail, rec.TokenKey = ActionRefuse, reason, err.Error(), nil
		shown := err.Error()
		if reason == ReasonCAUnavailable {
			// The module's error is for the log and the audit record.
			shown = "the bastion cannot sign certificates just now (its CA key is unavailable); try again later"
			s.log.Error("a CA key failed to sign", "err", err)
		}
		lim := s.anonRefusals
		if rec.User != "" {
			lim = s.userRefusals
		}
		if lim.Allow(remote, reason) {
			if aerr := s.cfg.Auditor.AuditCert(rec); aerr != nil {
				s.log.Error("audit write failed", "err", aerr)
			}
		}
		s.log.Info("certificate refused", "reason", reason, "user", rec.User, "issuer", rec.Issuer, "remote", remote, "err", err)
		writeJSON(w, status, ErrorResponse{Error: shown, Reason: reason})
		return
	}
	s.log.Info("certificate issued", "user", resp.Principal, "serial", resp.Serial, "issuer", rec.Issuer, "workload", rec.Workload, "actor", rec.Actor, "valid_before", resp.ValidBefore, "remote", remote)
	writeJSON(w, http.StatusOK, resp)
}

// ReasonCAUnavailable is the refusal reason when a CA key cannot sign (an
// HSM or KMS that fails at run time): the bastion's fault, not the request's.
const ReasonCAUnavailable = "ca_unavailable"

// ErrCAUnavailable is wrapped by the error of a signature a CA key failed
// to make: the key is there at start (every key signs a test message) but
// its HSM or KMS fails later. Nothing is issued, and nothing falls back to
// another key.
var ErrCAUnavailable = errors.New("the CA key cannot sign")

var errAudit = errors.New("audit log unavailable; refusing to issue an unaudited certificate")

func (s *Server) issue(r *http.Request, rec *AuditRecord) (*CertResponse, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: "content_type", err: fmt.Errorf("content type %q, want application/json", safetext.Printable(ct))}
		}
	}
	body, err := readBody(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge, reason: "too_large", err: fmt.Errorf("request body exceeds %d bytes", maxRequestBytes)}
		}
		return nil, badRequest("read", "read request: %v", err)
	}
	var req CertRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("json", "request is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, badRequest("json", "trailing data after the JSON request")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	id, use, err := s.cfg.Verifier.verifyToken(ctx, req.IDToken)
	rec.User, rec.Issuer, rec.Subject, rec.Workload, rec.Actor = id.User, id.Issuer, id.Subject, id.Workload, id.Actor
	if err != nil {
		return nil, err
	}
	var pub ssh.PublicKey
	switch {
	case req.PublicKey != "":
		var rest []byte
		if pub, _, _, rest, err = ssh.ParseAuthorizedKey([]byte(req.PublicKey)); err != nil {
			return nil, fmt.Errorf("%w: cannot parse public_key: %v", ErrWeakKey, err)
		}
		if len(strings.TrimSpace(string(rest))) != 0 {
			return nil, fmt.Errorf("%w: public_key must hold exactly one key", ErrWeakKey)
		}
		if err := CheckPublicKey(pub); err != nil {
			return nil, err
		}
	case req.DBPublicKey == "" && !req.AccessToken:
		return nil, fmt.Errorf("%w: public_key is required", ErrWeakKey)
	}
	var dbPub any
	if req.DBPublicKey != "" {
		if dbPub, err = ParsePublicKeyPEM(req.DBPublicKey); err != nil {
			return nil, fmt.Errorf("db_public_key: %w", err)
		}
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return nil, badRequest("ttl", "ttl %q: %v", safetext.Printable(req.TTL), err)
		}
		if ttl <= 0 {
			return nil, fmt.Errorf("%w: ttl must be positive", ErrTTL)
		}
	}
	if req.Source != "" {
		if err := checkSourceAddress(req.Source); err != nil {
			return nil, badRequest("source_address", "%v", err)
		}
	}
	id.SourceAddress = req.Source
	if id, err = s.cfg.Authority.Stamp(id, ttl); err != nil {
		return nil, err
	}
	if s.cfg.Revoked != nil {
		// A token the user held when everything they held was revoked
		// (one stolen with the laptop) is revoked with the rest. Asked
		// after the stamp: a revocation that lands later is later than
		// the certificate's issue time, so it revokes the certificate.
		if at, ok := s.cfg.Revoked(id.User); ok && !use.issued.After(at) {
			iat := "none"
			if !use.issued.IsZero() {
				iat = use.issued.UTC().Format(time.RFC3339)
			}
			return nil, &TokenError{Reason: ReasonRevoked, Err: fmt.Errorf("the credentials of user %s issued up to %s have been revoked, and this ID token was issued by then (iat %s): log in again for a fresh one", id.User, at.UTC().Format(time.RFC3339), iat)}
		}
		// A CI run's token speaks for the person who triggered it too.
		if at, ok := s.cfg.Revoked(id.Actor); id.Actor != "" && ok && !use.issued.After(at) {
			return nil, &TokenError{Reason: ReasonRevoked, Err: fmt.Errorf("user %s, who triggered this run, has been revoked (credentials issued up to %s), and this ID token was issued by then", id.Actor, at.UTC().Format(time.RFC3339))}
		}
	}
	resp := &CertResponse{
		Principal:   id.User,
		Serial:      strconv.FormatUint(id.Serial, 10),
		KeyID:       id.KeyID(),
		Groups:      id.Groups,
		ValidAfter:  id.ValidAfter.UTC(),
		ValidBefore: id.ValidBefore.UTC(),
	}
	if pub != nil {
		cert, wire, err := s.cfg.Authority.signStamped(id, pub)
		if err != nil {
			return nil, err
		}
		resp.Certificate, resp.KeyID = authorizedKey(cert.Type(), wire), cert.KeyId
	}
	if dbPub != nil || req.AccessToken {
		if id.SourceAddress != "" {
			return nil, badRequest("source_address", "source_address binds SSH certificates only; ask for database credentials without it")
		}
		dbca := s.cfg.Authority.Keys().DBClientCA
		if dbca == nil {
			return nil, ErrNoDBClientCA
		}
		resp.DBCA = string(dbca.PEM)
	}
	if dbPub != nil {
		c, err := s.cfg.Authority.SignDBAccess(id, dbPub)
		if err != nil {
			return nil, err
		}
		resp.DBCertificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	if req.AccessToken {
		if resp.AccessToken, err = s.cfg.Authority.IssueAccessToken(id); err != nil {
			return nil, err
		}
	}
	*rec = AuditRecord{
		Action: ActionIssue, User: id.User, Issuer: id.Issuer, Subject: id.Subject, Workload: id.Workload, Actor: id.Actor,
		Serial: id.Serial, KeyID: resp.KeyID, ValidBefore: id.ValidBefore, Remote: rec.Remote,
		TokenKey: use.key, TokenExpiry: use.expires,
	}
	if err := s.cfg.Auditor.AuditCert(*rec); err != nil {
		rec.Serial, rec.KeyID, rec.ValidBefore, rec.TokenKey = 0, "", time.Time{}, nil
		if errors.Is(err, ErrTokenReplay) {
			return nil, &TokenError{Reason: ReasonReplay, Err: ErrTokenReplay}
		}
		s.log.Error("audit write failed", "err", err)
		return nil, errAudit
	}
	return resp, nil
}

// readBody reads the request's body, at most maxRequestBytes, into a buffer
// of the declared length (io.ReadAll starts at 512 bytes and grows).
func readBody(r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(nil, r.Body, maxRequestBytes)
	size := 512
	if n := r.ContentLength; n > 0 && n <= maxRequestBytes {
		size = int(n) + 1 // room to see the end without growing
	}
	b := make([]byte, 0, size)
	for {
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// authorizedKey is string(ssh.MarshalAuthorizedKey(k)) for a key of type
// t whose wire encoding (k.Marshal()) is wire, without its streaming
// encoder and growing buffer.
func authorizedKey(t string, wire []byte) string {
	b := make([]byte, 0, len(t)+1+base64.StdEncoding.EncodedLen(len(wire))+1)
	b = append(append(b, t...), ' ')
	b = base64.StdEncoding.AppendEncode(b, wire)
	return string(append(b, '\n'))
}

// checkSourceAddress validates an OpenSSH source-address list.
func checkSourceAddress(s string) error {
	for _, part := range strings.Split(s, ",") {
		if _, _, err := net.ParseCIDR(part); err != nil && net.ParseIP(part) == nil {
			return fmt.Errorf("source_address %q is not an address or CIDR", safetext.Printable(part))
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// tokenSpent names a verified ID token for the single-use check.
type tokenSpent struct {
	key     []byte
	expires time.Time
	issued  time.Time // the token's iat; zero when it has none
}

// spentBy names a verified ID token for the single-use check: SHA-256 of
// its issuer and jti, or, when it carries no jti, of what its signature
// signs (the header and payload as sent, which parseToken has checked are
// the one base64url text of their bytes), and its expiry. Not the
// signature: an ECDSA signature (ES256) has a second valid form, (r, n-s),
// so the same token can be signed twice.
func spentBy(raw, iss, jti string, issued, expires time.Time) tokenSpent {
	h := sha256.New()
	if jti != "" {
		h.Write([]byte("jti\x00" + iss + "\x00" + jti))
	} else {
		signed := raw
		if i := strings.LastIndexByte(raw, '.'); i >= 0 {
			signed = raw[:i]
		}
		h.Write([]byte("signed\x00" + signed))
	}
	return tokenSpent{key: h.Sum(nil), expires: expires, issued: issued}
}
