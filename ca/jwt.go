package ca

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bastionhq/bastion/internal/safetext"
)

// idClaims is what the bastion reads from an ID token itself, decoded once
// per token: the header's algorithm and the claims that pick the verifier
// (iss, aud), name the token for the single-use check (jti) and make the
// identity (azp, the username, email_verified, groups). Nothing in it is
// trusted before go-oidc has verified the signature over the same bytes and
// checked iss, aud and exp; verify then checks that go-oidc read the same
// issuer and audience. It is decoded with encoding/json, as go-oidc decodes
// the payload, so both read the bytes the same way.
type idClaims struct {
	alg string
	iss string
	aud []string
	jti string
	azp string

	user         string // the username claim's value, when a string
	userIsString bool
	verified     bool     // email_verified is true or "true"
	groups       []string // the groups claim: absent or null is nil, a string one group
	groupsErr    error    // the groups claim is not a string or a list of valid groups

	payload []byte // the decoded payload, for claims read on demand (claim)
}

// claim returns the raw JSON of the payload's claim name (a workload's
// actor claim). parseToken has refused payloads that name a member twice
// or in two cases, so the name has one reading.
func (c *idClaims) claim(name string) (json.RawMessage, bool) {
	var all map[string]json.RawMessage
	if json.Unmarshal(c.payload, &all) != nil {
		return nil, false
	}
	v, ok := all[name]
	return v, ok && string(v) != "null"
}

// payloadClaims is the payload as decoded, for the default claim names.
type payloadClaims struct {
	Iss           string          `json:"iss"`
	Aud           audience        `json:"aud"`
	JTI           string          `json:"jti"`
	Azp           string          `json:"azp"`
	EmailVerified any             `json:"email_verified"`
	Email         json.RawMessage `json:"email"`
	Groups        json.RawMessage `json:"groups"`
}

type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = []string{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = l
	return nil
}

// parseToken splits a compact JWS and decodes its header's alg and the
// claims in its payload; userClaim and groupsClaim name the claims the
// username and groups come from.
func parseToken(raw, userClaim, groupsClaim string) (idClaims, error) {
	var c idClaims
	hdr, rest, ok := strings.Cut(raw, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(sig, ".") {
		return c, tokenErr(ReasonMalformed, "want 3 dot-separated parts, got %d", strings.Count(raw, ".")+1)
	}
	// Each part must be the one base64url spelling of its bytes: Go's
	// decoders (go-jose's too) skip CR and LF and ignore a final
	// character's unused bits, so without this one token could be sent as
	// many texts, each spent apart (spentBy).
	for _, part := range [...]struct{ name, text string }{{"header", hdr}, {"payload", payload}, {"signature", sig}} {
		if err := canonicalB64(part.text); err != nil {
			return c, tokenErr(ReasonMalformed, "%s: %v", part.name, err)
		}
	}
	h, err := decodeB64(hdr)
	if err != nil {
		return c, tokenErr(ReasonMalformed, "header: %v", err)
	}
	var hv struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(h, &hv); err != nil {
		return c, tokenErr(ReasonMalformed, "header: %v", err)
	}
	if err := plainMembers(h); err != nil {
		return c, tokenErr(ReasonMalformed, "header: %v", err)
	}
	p, err := decodeB64(payload)
	if err != nil {
		return c, tokenErr(ReasonMalformed, "payload: %v", err)
	}
	var pc payloadClaims
	if err := json.Unmarshal(p, &pc); err != nil {
		return c, tokenErr(ReasonMalformed, "payload: %v", err)
	}
	if err := plainMembers(p); err != nil {
		return c, tokenErr(ReasonMalformed, "payload: %v", err)
	}
	c.alg, c.iss, c.aud, c.jti, c.azp = hv.Alg, pc.Iss, pc.Aud, pc.JTI, pc.Azp
	c.payload = p
	c.verified = truthy(pc.EmailVerified)
	user, groups := pc.Email, pc.Groups
	if userClaim != "email" || groupsClaim != "groups" {
		// Claims of other names: a second decoding, for this
		// configuration only.
		var all map[string]json.RawMessage
		if err := json.Unmarshal(p, &all); err != nil {
			return c, tokenErr(ReasonMalformed, "payload: %v", err)
		}
		user, groups = all[userClaim], all[groupsClaim]
	}
	if len(user) > 0 && user[0] == '"' {
		if err := json.Unmarshal(user, &c.user); err != nil {
			return c, tokenErr(ReasonMalformed, "payload: %v", err)
		}
		c.userIsString = true
	}
	if len(groups) > 0 {
		var g any
		if err := json.Unmarshal(groups, &g); err != nil {
			return c, tokenErr(ReasonMalformed, "payload: %v", err)
		}
		c.groups, c.groupsErr = groupsOf(g)
	}
	return c, nil
}

// canonicalB64 accepts s only when it is base64url without padding, every
// byte from the alphabet, and the unused bits of its last character zero:
// the one text RawURLEncoding gives for the bytes it decodes to.
func canonicalB64(s string) error {
	for i := 0; i < len(s); i++ {
		if b := s[i]; !('A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			return fmt.Errorf("byte %d (%q) is not base64url", i, b)
		}
	}
	var unused uint
	switch len(s) % 4 {
	case 1:
		return fmt.Errorf("%d characters is not a base64 length", len(s))
	case 2:
		unused = 4
	case 3:
		unused = 2
	default:
		return nil
	}
	last := strings.IndexByte(b64url, s[len(s)-1])
	if last&(1<<unused-1) != 0 {
		return errors.New("the last character's unused bits are not zero")
	}
	return nil
}

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func decodeB64(s string) ([]byte, error) {
	out := make([]byte, base64.RawURLEncoding.DecodedLen(len(s)))
	n, err := base64.RawURLEncoding.Decode(out, []byte(s))
	return out[:n], err
}

// reservedClaims are read by the bastion for their own meaning, so they
// cannot also be the username or groups claim.
var reservedClaims = []string{"iss", "aud", "jti", "azp", "email_verified"}

// ReservedClaim reports whether the bastion reads claim for its own meaning,
// so that it cannot be the username or groups claim (config check refuses
// what NewVerifier would).
func ReservedClaim(claim string) bool { return slices.Contains(reservedClaims, claim) }

// truthy accepts the boolean true, and the string "true" some IdPs send.
func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}

const maxGroups = 256

func groupsOf(v any) ([]string, error) {
	switch g := v.(type) {
	case nil:
		return nil, nil
	case string:
		if err := validateGroup(g); err != nil {
			return nil, err
		}
		return []string{g}, nil
	case []any:
		if len(g) > maxGroups {
			return nil, fmt.Errorf("%d groups exceed the limit of %d", len(g), maxGroups)
		}
		out := make([]string, 0, len(g))
		for _, e := range g {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("group %v is not a string", e)
			}
			if err := validateGroup(s); err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("groups claim of type %T", v)
}

// plainMembers checks that b, a JSON object encoding/json has decoded,
// is UTF-8 and names no member twice, nor two that differ only in case.
// encoding/json, which go-oidc reads the claims with as the bastion does,
// matches a name to a field without regard to case, the last one winning:
// a token that carries "exp" and, after it, "EXP" (a custom claim an IdP
// lets a user set, mapped into the token) would be read with the second
// as its expiry, and "EMAIL" or "Groups" likewise as the identity. Such a
// token is refused rather than read one way or the other. It walks the
// top-level members once, without decoding their values (an issuance
// pays for it).
func plainMembers(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("not UTF-8") // encoding/json would read U+FFFD for each bad byte
	}
	errObject := errors.New("not a JSON object")
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errObject
	}
	i++
	var offs [33]int
	ends := offs[:1] // keys[ends[k]:ends[k+1]] is the k-th member's key
	keys := make([]byte, 0, 256)
	var many map[string]string
	for {
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' && len(ends) == 1 {
			break // {}
		}
		if i >= len(b) || b[i] != '"' {
			return errObject
		}
		j := stringEnd(b, i)
		if j < 0 {
			return errObject
		}
		name := b[i+1 : j-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var n string
			if err := json.Unmarshal(b[i:j], &n); err != nil {
				return errObject
			}
			name = []byte(n)
		}
		start := len(keys)
		keys = appendFoldKey(keys, name)
		key := keys[start:]
		switch {
		case many != nil:
			if prev, ok := many[string(key)]; ok {
				return ambiguous(prev, string(name))
			}
			many[string(key)] = string(name)
		default:
			for k := 0; k+1 < len(ends); k++ {
				if bytes.Equal(keys[ends[k]:ends[k+1]], key) {
					return ambiguous(memberAt(b, k), string(name))
				}
			}
			ends = append(ends, len(keys))
			if len(ends) == cap(offs) { // past 32 members: a map
				many = make(map[string]string, 64)
				for k := 0; k+1 < len(ends); k++ {
					many[string(keys[ends[k]:ends[k+1]])] = memberAt(b, k)
				}
			}
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return errObject
		}
		if i = valueEnd(b, i+1); i < 0 {
			return errObject
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == '}' {
			break
		}
		return errObject
	}
	if skipSpace(b, i+1) != len(b) {
		return errors.New("data after the JSON object")
	}
	return nil
}

func ambiguous(prev, name string) error {
	if prev == name {
		return fmt.Errorf("member \"%s\" appears twice", safetext.Printable(name))
	}
	return fmt.Errorf("the claims read ambiguously: members \"%s\" and \"%s\" differ only in case", safetext.Printable(prev), safetext.Printable(name))
}

// memberAt returns the name of b's k-th top-level member, for an error
// (the slow path: it walks b again).
func memberAt(b []byte, k int) string {
	i := skipSpace(b, 0) + 1
	for n := 0; ; n++ {
		i = skipSpace(b, i)
		j := stringEnd(b, i)
		if j < 0 {
			return ""
		}
		if n == k {
			var s string
			json.Unmarshal(b[i:j], &s)
			return s
		}
		i = valueEnd(b, skipSpace(b, j)+1)
		if i < 0 {
			return ""
		}
		i = skipSpace(b, i) + 1 // the comma
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string that starts at b[i]
// (a quote), or -1.
func stringEnd(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// valueEnd returns the index after the JSON value that starts at or after
// b[i], or -1: a string, an object or array (to its matching end), or a
// scalar (to the next comma or closing bracket).
func valueEnd(b []byte, i int) int {
	i = skipSpace(b, i)
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			j := stringEnd(b, i)
			if j < 0 {
				return -1
			}
			if depth == 0 {
				return j
			}
			i = j
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	if depth == 0 {
		return i
	}
	return -1
}

// appendFoldKey appends to dst one key for all the names that equal name
// under simple Unicode case folding (strings.EqualFold, which encoding/json
// follows in matching names): each rune as the least of its folding orbit,
// which for an ASCII letter is its capital.
func appendFoldKey(dst, name []byte) []byte {
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		dst = utf8.AppendRune(dst, least)
		i += n
	}
	return dst
}
