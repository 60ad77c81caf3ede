package pgproxy

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestNewRejectsUnsafeConfigs(t *testing.T) {
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("no") }
	cert := func(context.Context, string) (*tls.Certificate, error) { return nil, nil }
	pw := func(context.Context, string) (string, error) { return "", nil }
	authz := func(context.Context, Startup) error { return nil }
	judge := func(context.Context, Statement) Verdict { return Verdict{} }
	good := func() Config {
		return Config{DialUpstream: dial, UpstreamTLS: &tls.Config{ServerName: "db"}, ClientCert: cert, Authorize: authz, Judge: judge}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no dial", func(c *Config) { c.DialUpstream = nil }, "DialUpstream is required"},
		{"no authorize", func(c *Config) { c.Authorize = nil }, "Authorize is required"},
		{"no judge", func(c *Config) { c.Judge = nil }, "Judge is required"},
		{"no credentials", func(c *Config) { c.ClientCert = nil }, "ClientCert or Password"},
		{"certificate without TLS", func(c *Config) { c.UpstreamTLS = nil }, "UpstreamTLS is required"},
		{"unverified upstream", func(c *Config) { c.UpstreamTLS.InsecureSkipVerify = true }, "InsecureSkipVerify is not allowed"},
		{"no server name", func(c *Config) { c.UpstreamTLS.ServerName = "" }, "ServerName is required"},
		{"server TLS without certificate", func(c *Config) { c.ServerTLS = &tls.Config{} }, "ServerTLS has no certificate"},
		{"negative limit", func(c *Config) { c.Limits.MaxMessage = -1 }, "negative limit"},
		{"tiny startup limit", func(c *Config) { c.Limits.MaxStartup = 8 }, "below 16 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.mod(&cfg)
			_, err := New(cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := New(good()); err != nil {
		t.Errorf("good config: %v", err)
	}
	pwOnly := good()
	pwOnly.ClientCert, pwOnly.UpstreamTLS, pwOnly.Password = nil, nil, pw
	if _, err := New(pwOnly); err != nil {
		t.Errorf("password over plaintext: %v", err)
	}
}

// TestSCRAMVector checks the SCRAM-SHA-256 client against RFC 7677's example exchange.
func TestSCRAMVector(t *testing.T) {
	c := &scramClient{password: "pencil", nonce: "rOprNGfwEbeRWgbNEkqO"}
	c.clientFirst()
	c.clientFirstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO" // the RFC names the user
	final, err := c.clientFinal([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil {
		t.Fatal(err)
	}
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if string(final) != want {
		t.Errorf("got %q, want %q", final, want)
	}
	if err := c.verifyServer([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil || !c.verified {
		t.Errorf("server signature: %v", err)
	}
	if err := c.verifyServer([]byte("v=AAAA")); err == nil {
		t.Error("accepted a wrong server signature")
	}
	for _, bad := range []string{"r=other,s=c2FsdA==,i=4096", "r=rOprNGfwEbeRWgbNEkqOx,s=!!,i=4096", "r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=99999999", "garbage"} {
		if _, err := c.clientFinal([]byte(bad)); err == nil {
			t.Errorf("accepted server-first %q", bad)
		}
	}
}

// fakeServer is a minimal PostgreSQL server for password authentication tests. mode is
// "scram", "scram-badsig", "md5" or "cleartext".
func fakeServer(t *testing.T, mode, password string) string {
	t.Helper()
	return acceptLoop(t, func(conn net.Conn) {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		fakeSession(conn, mode, password)
	}).String()
}

func fakeSession(conn net.Conn, mode, password string) {
	be := pgproto3.NewBackend(conn, conn)
	m, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	user := m.(*pgproto3.StartupMessage).Parameters["user"]
	fail := func() {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed for user " + user})
		be.Flush()
	}
	switch mode {
	case "scram", "scram-badsig":
		be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}})
		be.Flush()
		be.SetAuthType(pgproto3.AuthTypeSASL)
		m, err := be.Receive()
		init, ok := m.(*pgproto3.SASLInitialResponse)
		if err != nil || !ok || init.AuthMechanism != "SCRAM-SHA-256" || !strings.HasPrefix(string(init.Data), "n,,") {
			fail()
			return
		}
		bare := strings.TrimPrefix(string(init.Data), "n,,")
		cnonce := strings.TrimPrefix(bare, "n=,r=")
		salt := []byte("pepper and salt")
		serverFirst := "r=" + cnonce + "server-part,s=" + base64.StdEncoding.EncodeToString(salt) + ",i=4096"
		be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
		be.Flush()
		be.SetAuthType(pgproto3.AuthTypeSASLContinue)
		m, err = be.Receive()
		resp, ok := m.(*pgproto3.SASLResponse)
		if err != nil || !ok {
			fail()
			return
		}
		withoutProof, proof64, _ := strings.Cut(string(resp.Data), ",p=")
		proof, _ := base64.StdEncoding.DecodeString(proof64)
		salted, _ := pbkdf2.Key(sha256.New, password, salt, 4096, 32)
		mac := func(key []byte, s string) []byte {
			h := hmac.New(sha256.New, key)
			h.Write([]byte(s))
			return h.Sum(nil)
		}
		clientKey := mac(salted, "Client Key")
		storedKey := sha256.Sum256(clientKey)
		authMsg := bare + "," + serverFirst + "," + withoutProof
		sig := mac(storedKey[:], authMsg)
		if len(proof) != len(sig) {
			fail()
			return
		}
		recovered := make([]byte, len(sig))
		subtle.XORBytes(recovered, proof, sig)
		if got := sha256.Sum256(recovered); got != storedKey {
			fail()
			return
		}
		serverSig := mac(mac(salted, "Server Key"), authMsg)
		if mode == "scram-badsig" {
			serverSig[0] ^= 1
		}
		be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + base64.StdEncoding.EncodeToString(serverSig))})
	case "md5":
		salt := [4]byte{1, 2, 3, 4}
		be.Send(&pgproto3.AuthenticationMD5Password{Salt: salt})
		be.Flush()
		be.SetAuthType(pgproto3.AuthTypeMD5Password)
		m, err := be.Receive()
		pm, ok := m.(*pgproto3.PasswordMessage)
		inner := md5.Sum([]byte(password + user))
		outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), salt[:]...))
		if err != nil || !ok || pm.Password != "md5"+hex.EncodeToString(outer[:]) {
			fail()
			return
		}
	case "cleartext":
		be.Send(&pgproto3.AuthenticationCleartextPassword{})
		be.Flush()
		be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
		if m, err := be.Receive(); err != nil || m.(*pgproto3.PasswordMessage).Password != password {
			fail()
			return
		}
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 7, SecretKey: []byte{0, 0, 0, 9}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	be.Flush()
	for {
		m, err := be.Receive()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *pgproto3.Query:
			be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("q"), DataTypeOID: oidText, DataTypeSize: -1, TypeModifier: -1}}})
			be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(m.String)}})
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			be.Flush()
		case *pgproto3.Terminate:
			return
		}
	}
}

// serveOne runs p on a loopback listener and returns its address.
func serveOne(t *testing.T, p *Proxy) (string, func() []error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var errs []error
	addr := acceptLoop(t, func(c net.Conn) {
		if err := p.Serve(ctx, c); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	t.Cleanup(cancel)
	return addr.String(), func() []error { mu.Lock(); defer mu.Unlock(); return append([]error(nil), errs...) }
}

func TestPasswordAuthentication(t *testing.T) {
	for _, tc := range []struct {
		mode, password string
		ok             bool
		want           string
	}{
		{"scram", "pencil", true, ""},
		{"scram", "wrong", false, "password authentication failed"},
		{"scram-badsig", "pencil", false, "server signature does not match"},
		{"md5", "pencil", true, ""},
		{"md5", "wrong", false, "password authentication failed"},
		{"cleartext", "pencil", false, "cleartext password without TLS"},
	} {
		t.Run(tc.mode+"/"+tc.password, func(t *testing.T) {
			upstream := fakeServer(t, tc.mode, "pencil")
			p, err := New(Config{
				DialUpstream: func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "tcp", upstream) },
				Password:     func(context.Context, string) (string, error) { return tc.password, nil },
				Authorize:    func(context.Context, Startup) error { return nil },
				Judge:        func(context.Context, Statement) Verdict { return Verdict{Action: Allow} },
			})
			if err != nil {
				t.Fatal(err)
			}
			addr, _ := serveOne(t, p)
			c := dial(t, addr)
			c.Write(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}}))
			rc := &rawConn{conn: c, fe: pgproto3.NewFrontend(c, c)}
			if !tc.ok {
				if fatal := rc.readFatal(t); !strings.Contains(fatal.Message, tc.want) {
					t.Errorf("got %q, want it to mention %q", fatal.Message, tc.want)
				}
				return
			}
			if got := rc.untilReady(t); got != "AuthenticationOk ReadyForQuery(I)" {
				t.Fatalf("startup: got %s", got)
			}
			rc.send(t, &pgproto3.Query{String: "SELECT 'hello'"})
			if got, want := rc.untilReady(t), "RowDescription DataRow CommandComplete(SELECT 1) ReadyForQuery(I)"; got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestCancelRegistry(t *testing.T) {
	var r CancelRegistry // the zero value works
	a, b := &cancelTarget{}, &cancelTarget{}
	ka, unA := r.register(a)
	kb, unB := r.register(b)
	if ka == kb || ka.pid == 0 || int32(ka.pid) < 0 {
		t.Fatalf("got keys %+v %+v", ka, kb)
	}
	if r.lookup(ka) != a || r.lookup(kb) != b || r.Len() != 2 {
		t.Fatal("lookup failed")
	}
	if r.lookup(cancelKey{ka.pid, ka.secret ^ 1}) != nil {
		t.Error("a key with the wrong secret matched")
	}
	unA()
	unA()
	if r.lookup(ka) != nil || r.Len() != 1 {
		t.Error("unregister failed")
	}
	unB()
	if r.Len() != 0 {
		t.Errorf("got %d entries, want 0", r.Len())
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":        "plain text",
		"tab\tok":           "tab\tok",
		"esc\x1b[31mred":    `esc\x1b[31mred`,
		"nl\nx":             `nl\x0ax`,
		"bad \xff utf8":     `bad \xff utf8`,
		"c1 \u009b csi":     `c1 \x9b csi`,
		"ünïcödé is fine ✓": "ünïcödé is fine ✓",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestTagRows(t *testing.T) {
	for tag, want := range map[string]int64{"SELECT 3": 3, "INSERT 0 12": 12, "UPDATE 0": 0, "COPY 7": 7, "CREATE TABLE": -1, "": -1, "SELECT x": -1} {
		got, ok := tagRows(tag)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("tagRows(%q): got %d, want %d", tag, got, want)
		}
	}
}

func TestNumericText(t *testing.T) {
	// 4111111111111111 = digits 4111 1111 1111 1111 (base 10000), weight 3.
	v := append(u16(4), u16(3)...)
	v = append(v, u16(0)...)
	v = append(v, u16(0)...)
	for _, d := range []int{4111, 1111, 1111, 1111} {
		v = append(v, u16(d)...)
	}
	if got := numericText(v); got != "4111111111111111" {
		t.Errorf("got %q", got)
	}
	if got := numericText(v[:7]); got != "" {
		t.Errorf("malformed: got %q", got)
	}
}

func TestBinaryNeedsMask(t *testing.T) {
	s := &session{cfg: &Config{MaskValue: luhnMask}}
	i8 := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	withLen := func(b []byte) []byte { return append(i32(len(b)), b...) }
	arr := func(elem int, vals ...[]byte) []byte {
		b := append(append(append(i32(1), i32(0)...), i32(elem)...), append(i32(len(vals)), i32(1)...)...)
		for _, v := range vals {
			b = append(b, withLen(v)...)
		}
		return b
	}
	rec := append(append(i32(2), append(i32(oidInt4), withLen(i32(0))...)...), append(i32(oidInt8), withLen(i8(4111111111111111))...)...)
	for _, c := range []struct {
		name string
		oid  uint32
		v    []byte
		want bool
	}{
		{"int8 card", oidInt8, i8(4111111111111111), true},
		{"int8 other", oidInt8, i8(42), false},
		{"int8 malformed", oidInt8, i8(42)[:7], true},
		{"int8[] card", 1016, arr(oidInt8, i8(1), i8(4111111111111111)), true},
		{"int8[] other", 1016, arr(oidInt8, i8(1), i8(2)), false},
		{"int8[] claiming text elements", 1016, arr(oidText, []byte("x")), true},
		{"int8[] truncated", 1016, arr(oidInt8, i8(1))[:20], true},
		{"record with a card", oidRecord, rec, true},
		{"record truncated", oidRecord, rec[:len(rec)-1], true},
		{"int8range card", 3926, append([]byte{0x02 | 0x10}, withLen(i8(4111111111111111))...), true},
		{"int8range empty", 3926, []byte{0x01}, false},
		{"float8 card", oidFloat8, binary.BigEndian.AppendUint64(nil, math.Float64bits(4111111111111111)), true},
		{"float8 other", oidFloat8, binary.BigEndian.AppendUint64(nil, math.Float64bits(0.5)), false},
		{"text", oidText, []byte("hello"), false},
		{"bool", oidBool, []byte{1}, false},
		{"a domain or other type", 16400, i8(4111111111111111), true},
		{"inet", 869, []byte{2, 32, 0, 4, 127, 0, 0, 1}, false},
		{"inet malformed", 869, []byte{2, 32, 0, 5, 127, 0, 0, 1}, true},
		{"uuid", 2950, make([]byte, 16), false},
		{"a geometric type", 600, make([]byte, 16), true},
	} {
		got, err := s.binaryNeedsMask(c.oid, c.v)
		if err != nil || got != c.want {
			t.Errorf("%s: got %v, %v, want %v", c.name, got, err, c.want)
		}
	}
}

func TestCopyBinary(t *testing.T) {
	for sql, want := range map[string]bool{
		"COPY t TO STDOUT":                                   false,
		"COPY t TO STDOUT WITH (FORMAT csv, HEADER)":         false,
		"COPY (SELECT 1) TO STDOUT (FORMAT 'text')":          false,
		"COPY t TO STDOUT WITH (FORMAT binary)":              true,
		"COPY t TO STDOUT WITH (format \"BINARY\")":          true,
		"COPY t TO STDOUT BINARY":                            true,
		"COPY BINARY t TO STDOUT":                            true,
		"COPY t TO STDOUT WITH (FORMAT text, FORMAT binary)": true,
		"not sql": true,
	} {
		if got := copyBinary(sql); got != want {
			t.Errorf("copyBinary(%q) = %v, want %v", sql, got, want)
		}
	}
}
