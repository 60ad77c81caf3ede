package ca

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func jwtOf(header, payload string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
}

const rs256 = `{"alg":"RS256","kid":"k"}`

// jwtSeeds are ID tokens, well-formed and not, that the table tests and the
// fuzz target start from.
var jwtSeeds = []string{
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","sub":"u","email":"a@x","email_verified":true,"groups":["dev","ops"],"jti":"j"}`),
	jwtOf(rs256, `{"iss":"https://idp","aud":["bastion","other"],"azp":"bastion","email":"a@x","email_verified":"true","groups":"dev"}`),
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","email":5,"groups":[1]}`),
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","groups":null,"email":null}`),
	"", "a", "a.b", "a.b.c.d", "!!.e30.c2ln", jwtOf(rs256, "") + "x", "e30.!!.c2ln",
	jwtOf(`[]`, `{}`), jwtOf(`{"alg":5}`, `{}`), jwtOf(rs256, `[]`), jwtOf(rs256, `{"iss":1}`),
	jwtOf(rs256, `{"aud":{"a":1}}`), jwtOf(rs256, `{"aud":[1]}`), jwtOf(rs256, `{"jti":true}`), jwtOf(rs256, `{"azp":[]}`),
	jwtOf(rs256, `{"iss":"x"`), jwtOf(rs256, `{"iss":"x"} {}`), jwtOf(rs256, `{"groups":[`),
	// Members differing only in case (encoding/json reads the last into
	// the field), or named twice, or not UTF-8.
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","exp":1,"EXP":9999999999}`),
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","email":"a@x","EMAIL":"root@x"}`),
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","groups":["dev"],"Groups":["sec"]}`),
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","sub":"u","\u017fub":"root"}`), // U+017F folds to s
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","email":"a@x","email":"b@x"}`),
	jwtOf(`{"alg":"RS256","ALG":"none"}`, `{"iss":"https://idp"}`),
	jwtOf(`{"alg":"RS256","\u212aid":"k","kid":"k"}`, `{"iss":"https://idp"}`), // U+212A KELVIN SIGN folds to k
	jwtOf(rs256, "{\"iss\":\"https://idp\",\"n\":\"\xff\"}"),
	// Nested objects may repeat their parent's names, and case varies freely there.
	jwtOf(rs256, `{"iss":"https://idp","aud":"bastion","address":{"iss":"x","ISS":"y"},"email":"a@x"}`),
}

func TestParseToken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		wantErr bool
		check   func(c idClaims) bool
	}{
		{"person", jwtSeeds[0], false, func(c idClaims) bool {
			return c.alg == "RS256" && c.iss == "https://idp" && slices.Equal(c.aud, []string{"bastion"}) && c.jti == "j" &&
				c.user == "a@x" && c.userIsString && c.verified && slices.Equal(c.groups, []string{"dev", "ops"}) && c.groupsErr == nil
		}},
		{"audience list, string forms", jwtSeeds[1], false, func(c idClaims) bool {
			return slices.Equal(c.aud, []string{"bastion", "other"}) && c.azp == "bastion" && c.verified && slices.Equal(c.groups, []string{"dev"})
		}},
		{"username and groups of the wrong type are kept for later", jwtSeeds[2], false, func(c idClaims) bool {
			return !c.userIsString && c.groupsErr != nil && !c.verified
		}},
		{"null username and groups", jwtSeeds[3], false, func(c idClaims) bool {
			return !c.userIsString && c.groups == nil && c.groupsErr == nil
		}},
		{"empty", "", true, nil},
		{"one part", "a", true, nil},
		{"two parts", "a.b", true, nil},
		{"four parts", "a.b.c.d", true, nil},
		{"header not base64url", "!!.e30.c2ln", true, nil},
		{"line feed in the header", "e3\n0.e30.c2ln", true, nil},
		{"CR LF in the payload", "e30.e3\r\n0.c2ln", true, nil},
		{"line feed after the signature", "e30.e30.c2ln\n", true, nil},
		{"padding", "e30=.e30.c2ln", true, nil},
		{"standard base64's alphabet", "e30.e30.c2+/", true, nil},
		{"signature's last unused bits set", "e30.e30.c2l", true, nil},
		{"payload's last unused bits set", "e30.e31.c2ln", true, nil},
		{"signature of an impossible length", "e30.e30.c2lnA", true, nil},
		{"header not JSON", "bm90.e30.c2ln", true, nil},
		{"payload not base64url", "e30.!!.c2ln", true, nil},
		{"header an array", jwtSeeds[11], true, nil},
		{"alg a number", jwtSeeds[12], true, nil},
		{"payload an array", jwtSeeds[13], true, nil},
		{"iss a number", jwtSeeds[14], true, nil},
		{"aud an object", jwtSeeds[15], true, nil},
		{"aud of numbers", jwtSeeds[16], true, nil},
		{"jti a boolean", jwtSeeds[17], true, nil},
		{"azp a list", jwtSeeds[18], true, nil},
		{"truncated payload", jwtSeeds[19], true, nil},
		{"data after the payload", jwtSeeds[20], true, nil},
		{"truncated groups", jwtSeeds[21], true, nil},
		{"exp and EXP", jwtSeeds[22], true, nil},
		{"email and EMAIL", jwtSeeds[23], true, nil},
		{"groups and Groups", jwtSeeds[24], true, nil},
		{"sub and ſub", jwtSeeds[25], true, nil},
		{"email twice", jwtSeeds[26], true, nil},
		{"alg and ALG in the header", jwtSeeds[27], true, nil},
		{"kid and Kid in the header", jwtSeeds[28], true, nil},
		{"payload not UTF-8", jwtSeeds[29], true, nil},
		{"nested members are not the claims", jwtSeeds[30], false, func(c idClaims) bool { return c.iss == "https://idp" && c.user == "a@x" }},
		{"too many groups", jwtOf(rs256, `{"groups":[`+groupList(maxGroups+1)+`]}`), false, func(c idClaims) bool { return c.groupsErr != nil }},
		{"an invalid group", jwtOf(rs256, `{"groups":["a b\n"]}`), false, func(c idClaims) bool { return c.groupsErr != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseToken(tc.raw, "email", "groups")
			if tc.wantErr {
				var te *TokenError
				if !errors.As(err, &te) || te.Reason != ReasonMalformed {
					t.Fatalf("got %+v, %v; want a malformed-token error", c, err)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("got %+v, %v", c, err)
			}
		})
	}
}

func groupList(n int) string {
	s := ""
	for i := range n {
		if i > 0 {
			s += ","
		}
		s += `"g"`
	}
	return s
}

// TestParseTokenOtherClaims reads the username and groups from claims of
// other names than the defaults.
func TestParseTokenOtherClaims(t *testing.T) {
	raw := jwtOf(rs256, `{"iss":"i","aud":"a","email":"e@x","preferred_username":"bob","roles":["r1"],"groups":["g"]}`)
	c, err := parseToken(raw, "preferred_username", "roles")
	if err != nil || c.user != "bob" || !slices.Equal(c.groups, []string{"r1"}) {
		t.Fatalf("got %+v, %v", c, err)
	}
	for _, claim := range reservedClaims {
		if _, err := NewVerifier(OIDCConfig{Issuer: "https://i", ClientID: "c", UsernameClaim: claim}); err == nil {
			t.Errorf("username claim %q accepted", claim)
		}
		if _, err := NewVerifier(OIDCConfig{Issuer: "https://i", ClientID: "c", GroupsClaim: claim}); err == nil {
			t.Errorf("groups claim %q accepted", claim)
		}
	}
}

// FuzzParseToken feeds arbitrary tokens to the claims reader: it must
// refuse with a malformed-token error or return claims, never panic, and
// never return groups along with a groups error.
func FuzzParseToken(f *testing.F) {
	for _, s := range jwtSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := parseToken(raw, "email", "groups")
		if err != nil {
			var te *TokenError
			if !errors.As(err, &te) || te.Reason != ReasonMalformed {
				t.Fatalf("error %v is not a malformed-token error", err)
			}
			return
		}
		// An accepted token is the one spelling of its bytes, part by part:
		// the single-use check names it by its text.
		for _, part := range strings.Split(raw, ".") {
			b, err := base64.RawURLEncoding.Strict().DecodeString(part)
			if err != nil || base64.RawURLEncoding.EncodeToString(b) != part {
				t.Fatalf("accepted part %q is not canonical base64url (%v)", part, err)
			}
		}
		if c.groupsErr != nil && c.groups != nil {
			t.Fatalf("groups %q with error %v", c.groups, c.groupsErr)
		}
		for _, g := range c.groups {
			if validateGroup(g) != nil {
				t.Fatalf("invalid group %q accepted", g)
			}
		}
	})
}

func BenchmarkPlainMembers(b *testing.B) {
	p := []byte(`{"iss":"https://idp.example.com","sub":"u-alice","aud":["bastion"],"azp":"bastion","iat":1765000000,"auth_time":1765000000,"exp":1765000300,"jti":"8f2c1e5a9b7d4f3e","email":"alice@example.com","email_verified":true,"name":"Alice","groups":["dev","sre"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := plainMembers(p); err != nil {
			b.Fatal(err)
		}
	}
}

// plainMembersRef is plainMembers the plain way, with encoding/json's
// tokenizer: the fuzz target's reference.
func plainMembersRef(b []byte) error {
	if !utf8.Valid(b) || !json.Valid(b) {
		return errors.New("bad")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("not an object")
	}
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		k := string(appendFoldKey(nil, []byte(tok.(string))))
		if seen[k] {
			return errors.New("ambiguous")
		}
		seen[k] = true
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

var plainMembersCases = []struct {
	in string
	ok bool
}{
	{`{}`, true},
	{` { "a" : 1 , "b" : [ 1 , { "a" : 2 } ] , "c" : "x\"y}" } `, true},
	{`{"a":1,"A":2}`, false},
	{`{"a":1,"\u0041":2}`, false},
	{`{"a\\":1,"a":2}`, true},
	{`{"k":1,"\u212a":2}`, false},
	{`{"s":1,"ſ":2}`, false},
	{`{"ß":1,"ẞ":2}`, false},
	{`{"é":1,"É":2}`, false},
	{`{"a":{"b":1,"B":2}}`, true},
	{`{"a":1,"a":1}`, false},
	{"{\"a\":\"\xff\"}", false},
	{`[]`, false},
	{`"x"`, false},
	{`{"a":1} x`, false},
	{`{"a":[1,2,{"x":"]"}],"b":null,"c":true,"d":-1.5e3}`, true},
	{`{"` + strings.Repeat("m", 40) + `":1,` + members(40) + `}`, true},
	{`{` + members(40) + `,"M7":1}`, false},
}

// members returns n distinct members "m0":0,...
func members(n int) string {
	var l []string
	for i := range n {
		l = append(l, fmt.Sprintf(`"m%d":%d`, i, i))
	}
	return strings.Join(l, ",")
}

func TestPlainMembers(t *testing.T) {
	for _, tc := range plainMembersCases {
		if err := plainMembers([]byte(tc.in)); (err == nil) != tc.ok {
			t.Errorf("plainMembers(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

// FuzzPlainMembers: on any JSON text, the walk agrees with encoding/json's
// tokenizer about whether the object's names are plain.
func FuzzPlainMembers(f *testing.F) {
	for _, tc := range plainMembersCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := plainMembers(b)
		if !json.Valid(b) {
			return // parseToken has encoding/json decode it first
		}
		if want := plainMembersRef(b); (got == nil) != (want == nil) {
			t.Fatalf("plainMembers(%q) = %v, reference %v", b, got, want)
		}
	})
}
