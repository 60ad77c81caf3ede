// Package keyuri reads the key URIs of the config's ca section: where a CA
// key lives when it is not a file in data_dir/ca. The syntax is that of
// go.step.sm/crypto/kms (RFC 7512 for PKCS#11), checked here without
// touching the module or the network, so that a malformed URI is a config
// error and not a failed start:
//
//	pkcs11:token=bastion;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin
//	yubikey:slot-id=9c?pin-source=/etc/bastion/yubikey-pin
//	awskms:key-id=1234abcd-…;region=eu-west-1
//	cloudkms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/1
//	azurekms:vault=bastion-kv;name=user-ca
//	softkms:path=/etc/bastion/user_ca.pem
//
// # Secrets
//
// A URI may carry a PIN (pin-value=…). [URI.String] never shows it, and
// [URI.Redact] removes it, the raw URI and the PIN's encodings from any text,
// such as an error a KMS library built from the raw URI. A pin-source is a
// file path and is shown.
//
// Package keyuri is a leaf: standard library only.
package keyuri

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLen bounds a key URI; real ones are a few hundred bytes.
const MaxLen = 2048

// Schemes are the key stores a URI may name.
var Schemes = []string{"pkcs11", "yubikey", "awskms", "cloudkms", "azurekms", "softkms"}

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("malformed key URI")

// redactedPIN stands for a PIN in anything shown.
const redactedPIN = "REDACTED"

// URI is a parsed key URI.
type URI struct {
	// Scheme is one of Schemes, lower case.
	Scheme string
	raw    string
	values url.Values // the attributes of the opaque part (;-separated) and the query (&-separated)
	path   string     // cloudkms: the resource name when given as the opaque part
	pins   []string   // secret strings to scrub from text: the PIN, as given and decoded
	shown  string
}

// Parse checks s and returns it parsed. Errors never contain s itself
// (it may hold a PIN), only the offending attribute's name.
func Parse(s string) (*URI, error) {
	bad := func(format string, args ...any) (*URI, error) {
		return nil, fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))
	}
	switch {
	case s == "":
		return bad("empty")
	case len(s) > MaxLen:
		return bad("longer than %d bytes", MaxLen)
	case !utf8.ValidString(s):
		return bad("not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return bad("contains whitespace or a control character (percent-encode spaces as %%20)")
		}
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || scheme == "" {
		return bad("no scheme: want one of %s, e.g. pkcs11:token=…;object=…", strings.Join(Schemes, ", "))
	}
	scheme = strings.ToLower(scheme)
	if !slices.Contains(Schemes, scheme) {
		return bad("unknown scheme %q: want one of %s", truncate(scheme, 20), strings.Join(Schemes, ", "))
	}
	if strings.HasPrefix(rest, "//") {
		return bad("%s: attributes follow the colon directly (%s:name=value;…), not //", scheme, scheme)
	}
	opaque, query, _ := strings.Cut(rest, "?")
	if strings.Contains(opaque, "#") || strings.Contains(query, "#") {
		return bad("%s: a fragment (#) is not allowed; percent-encode # as %%23", scheme)
	}
	u := &URI{Scheme: scheme, raw: s, values: url.Values{}}
	if scheme == "cloudkms" && strings.HasPrefix(opaque, "projects/") {
		p, err := url.PathUnescape(opaque)
		if err != nil {
			return bad("cloudkms: bad percent-encoding in the resource name")
		}
		u.path = p
		opaque = ""
	}
	if err := u.addAttrs(opaque, ";"); err != nil {
		return bad("%s: %v", scheme, err)
	}
	if err := u.addAttrs(query, "&"); err != nil {
		return bad("%s: %v", scheme, err)
	}
	if err := u.check(); err != nil {
		return bad("%s: %v", scheme, err)
	}
	// The KMS library parses the raw text with net/url: what it would
	// refuse, refuse here.
	if _, err := url.Parse(s); err != nil {
		return bad("%s: not a URI net/url accepts", scheme)
	}
	u.shown = u.redacted()
	return u, nil
}

// addAttrs reads name=value pairs separated by sep.
func (u *URI) addAttrs(s, sep string) error {
	if s == "" {
		return nil
	}
	for part := range strings.SplitSeq(s, sep) {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		name, err := url.PathUnescape(k)
		if err != nil || !validName(name) {
			return fmt.Errorf("attribute name %q is not valid", truncate(k, 30))
		}
		if !ok {
			return fmt.Errorf("attribute %q has no value (name=value)", name)
		}
		// Decoded as go.step.sm/crypto/kms/uri decodes them (url.ParseQuery).
		val, err := url.QueryUnescape(v)
		if err != nil {
			if isSecret(name) {
				return fmt.Errorf("attribute %s: bad percent-encoding", name)
			}
			return fmt.Errorf("attribute %s: bad percent-encoding in %q", name, truncate(v, 40))
		}
		if u.values.Has(name) {
			return fmt.Errorf("attribute %s appears twice", name)
		}
		if isSecret(name) {
			u.pins = append(u.pins, v, val)
		}
		u.values.Set(name, val)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func isSecret(name string) bool { return name == "pin-value" || name == "management-key" }

// known lists each scheme's attributes; anything else is a typo.
var known = map[string][]string{
	"pkcs11":   {"token", "serial", "slot-id", "manufacturer", "model", "library-manufacturer", "library-description", "library-version", "id", "object", "type", "module-path", "module-name", "pin-value", "pin-source", "max-sessions"},
	"yubikey":  {"slot-id", "serial", "pin-value", "pin-source", "management-key", "management-key-source", "pin-policy", "touch-policy"},
	"awskms":   {"key-id", "name", "region", "profile", "credentials-file"},
	"cloudkms": {"resource", "credentials-file", "project", "location", "ring", "protection-level"},
	"azurekms": {"vault", "name", "version", "hsm", "environment", "client-id", "client-secret", "tenant-id", "subscription-id", "resource-group"},
	"softkms":  {"path"},
}

func (u *URI) check() error {
	for name := range u.values {
		if !slices.Contains(known[u.Scheme], name) {
			return fmt.Errorf("unknown attribute %q (known: %s)", name, strings.Join(known[u.Scheme], ", "))
		}
	}
	if u.values.Has("pin-value") && u.values.Has("pin-source") {
		return errors.New("pin-value and pin-source are mutually exclusive")
	}
	if u.values.Has("client-secret") {
		return errors.New("client-secret does not belong in the config: use the environment (AZURE_CLIENT_SECRET) or a managed identity")
	}
	for _, name := range []string{"pin-source", "module-path", "credentials-file", "path", "management-key-source"} {
		if p := u.values.Get(name); u.values.Has(name) && !filepath.IsAbs(p) {
			// module-path may be a bare library name dlopen finds.
			if name == "module-path" && p != "" && !strings.Contains(p, "/") {
				continue
			}
			return fmt.Errorf("%s must be an absolute path", name)
		}
		// go.step.sm/crypto reads pin-source (and the like) through
		// url.Parse: "/d/pin?x", "/d/pin#x", "//d/pin" or "/d/p%41" would
		// have it read another file than the one the bastion checks.
		if p := u.values.Get(name); strings.HasPrefix(p, "/") {
			if pu, err := url.Parse(p); err != nil || pu.Path != p || pu.Host != "" || pu.RawQuery != "" || pu.Fragment != "" || strings.HasPrefix(p, "//") {
				return fmt.Errorf("%s must be a plain path (no ?, #, %% or leading //)", name)
			}
		}
	}
	switch u.Scheme {
	case "pkcs11":
		n := 0
		for _, k := range []string{"token", "serial", "slot-id"} {
			if u.values.Has(k) {
				n++
			}
		}
		if n != 1 {
			return errors.New("exactly one of token, serial or slot-id names the token")
		}
		if v := u.values.Get("slot-id"); u.values.Has("slot-id") && !isUint(v, 1<<32) {
			return errors.New("slot-id must be a number")
		}
		if v := u.values.Get("max-sessions"); u.values.Has("max-sessions") && (!isUint(v, 1<<20) || v == "0" || v == "1") {
			return errors.New("max-sessions must be a number from 2")
		}
		if u.values.Get("id") == "" && u.values.Get("object") == "" {
			return errors.New("id or object names the key")
		}
		if u.values.Has("type") && u.values.Get("type") != "private" {
			return errors.New(`type must be "private" (the key that signs)`)
		}
	case "yubikey":
		if !u.values.Has("slot-id") {
			return errors.New("slot-id names the key (e.g. 9c)")
		}
		if v := u.values.Get("slot-id"); !isHexSlot(v) {
			return errors.New("slot-id must be a PIV slot in hex (9a, 9c, 9d, 9e, 82-95)")
		}
	case "awskms":
		if u.values.Get("key-id") == "" && u.values.Get("name") == "" {
			return errors.New("key-id names the key")
		}
	case "cloudkms":
		r := u.path
		if r == "" {
			r = u.values.Get("resource")
		}
		parts := strings.Split(r, "/")
		if len(parts) != 10 || parts[0] != "projects" || parts[2] != "locations" || parts[4] != "keyRings" || parts[6] != "cryptoKeys" || parts[8] != "cryptoKeyVersions" || slices.Contains(parts, "") {
			return errors.New("the key is a key version's resource name: projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N")
		}
	case "azurekms":
		if u.values.Get("vault") == "" || u.values.Get("name") == "" {
			return errors.New("vault and name name the key")
		}
	case "softkms":
		if u.values.Get("path") == "" {
			return errors.New("path names the key file")
		}
	}
	return nil
}

func isUint(s string, limit uint64) bool {
	n, err := strconv.ParseUint(s, 10, 64)
	return err == nil && n < limit
}

func isHexSlot(s string) bool {
	n, err := strconv.ParseUint(s, 16, 8)
	return err == nil && len(s) == 2 && (n == 0x9a || n == 0x9c || n == 0x9d || n == 0x9e || n >= 0x82 && n <= 0x95)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Get returns an attribute's value, decoded; "" when absent.
func (u *URI) Get(name string) string { return u.values.Get(name) }

// Has reports whether an attribute is present.
func (u *URI) Has(name string) bool { return u.values.Has(name) }

// Raw returns the URI as written, PIN included: for the KMS library only,
// never for a message or a log.
func (u *URI) Raw() string { return u.raw }

// String returns the URI with any PIN replaced by REDACTED.
func (u *URI) String() string { return u.shown }

// HasPIN reports whether the URI itself carries a PIN (pin-value).
func (u *URI) HasPIN() bool { return u.values.Has("pin-value") }

// redacted rebuilds the raw text with secret values replaced, keeping the
// rest exactly as written so a reader recognises it.
func (u *URI) redacted() string {
	if len(u.pins) == 0 {
		return u.raw
	}
	scheme, rest, _ := strings.Cut(u.raw, ":")
	opaque, query, hasQuery := strings.Cut(rest, "?")
	scrub := func(s, sep string) string {
		parts := strings.Split(s, sep)
		for i, p := range parts {
			k, _, ok := strings.Cut(p, "=")
			if name, err := url.PathUnescape(k); ok && err == nil && isSecret(name) {
				parts[i] = k + "=" + redactedPIN
			}
		}
		return strings.Join(parts, sep)
	}
	out := scheme + ":" + scrub(opaque, ";")
	if hasQuery {
		out += "?" + scrub(query, "&")
	}
	return out
}

// Redact returns text with the raw URI replaced by its redacted form and
// every occurrence of a secret in the URI (as written, decoded, or
// query-escaped) replaced by REDACTED. Use it on every error a KMS library
// returns before showing or logging it.
func (u *URI) Redact(text string) string {
	if len(u.pins) == 0 {
		return text
	}
	text = strings.ReplaceAll(text, u.raw, u.shown)
	for _, p := range u.pins {
		for _, form := range []string{p, url.QueryEscape(p), url.PathEscape(p)} {
			if form != "" {
				text = strings.ReplaceAll(text, form, redactedPIN)
			}
		}
	}
	return text
}

// Key names the key u picks, the same for two URIs that differ only in
// how they are written (attribute order, percent-encoding) or in how they
// reach it (PIN, session pool size): two purposes with equal Key strings
// share one key. It holds no PIN.
func (u *URI) Key() string {
	v := url.Values{}
	for k, vs := range u.values {
		if !isSecret(k) && k != "pin-source" && k != "max-sessions" && k != "credentials-file" && k != "profile" {
			v[k] = vs
		}
	}
	if u.path != "" {
		v.Set("resource", u.path)
	}
	return u.Scheme + ":" + v.Encode()
}

// Connection names what keys can share one KMS client: the URI less the
// attributes that pick a key within it (for PKCS#11, the same module, token
// and PIN). Two keys with equal Connection strings are opened once.
func (u *URI) Connection() string {
	v := url.Values{}
	for k, vs := range u.values {
		switch {
		case u.Scheme == "pkcs11" && (k == "id" || k == "object" || k == "type"):
		case u.Scheme == "yubikey" && k == "slot-id":
		case u.Scheme == "awskms" && (k == "key-id" || k == "name"):
		case u.Scheme == "cloudkms" && k == "resource":
		case u.Scheme == "azurekms" && (k == "name" || k == "version"):
		case u.Scheme == "softkms" && k == "path":
		default:
			v[k] = vs
		}
	}
	return u.Scheme + ":" + v.Encode()
}
