package pgproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// acceptTLS is a listener TLS config with a server certificate for 127.0.0.1.
func acceptTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	ca := testenv.NewPostgresCA(t, "direct-ca")
	cert := ca.IssueServer(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}, ca.Pool()
}

func startupPacket(params ...string) []byte {
	var p [][2]string
	for i := 0; i+1 < len(params); i += 2 {
		p = append(p, [2]string{params[i], params[i+1]})
	}
	return appendStartupPacket(nil, 3<<16, p)
}

// runAccept feeds in to Accept over loopback TCP, half-closed after it so
// that Accept sees the end at once, and returns Accept's result and what
// the client was sent until Accept closed the connection.
func runAccept(t testing.TB, cfg *tls.Config, in []byte) (*Front, error, []byte) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		client.Write(in)
		client.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(client)
		got <- b
	}()
	f, err := Accept(context.Background(), server, AcceptConfig{TLS: cfg, Timeout: 30 * time.Second})
	if f != nil {
		f.tc.Close()
	}
	return f, err, <-got
}

// Malformed or unwanted first packets on a direct listener: each is
// refused before TLS, with a PostgreSQL error when the client can read one.
func TestAcceptRefuses(t *testing.T) {
	cfg, _ := acceptTLS(t)
	cancel := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 16}, cancelRequestCode), 7)
	cancel = binary.BigEndian.AppendUint32(cancel, 9)
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr error
		says    string // in the bytes sent back
	}{
		{"plaintext startup", startupPacket("user", "app", "database", "pg1/shop"), ErrNoTLS, "TLS connections only"},
		{"cancel request", cancel, ErrCancelRequest, ""},
		{"short length", []byte{0, 0, 0, 4, 0, 0, 0, 0}, nil, ""},
		{"huge length", []byte{0x7f, 0, 0, 0, 0, 3, 0, 0}, nil, ""},
		{"unknown code", []byte{0, 0, 0, 8, 0, 9, 0, 9}, nil, "unexpected startup packet"},
		{"SSLRequest with a body", []byte{0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 0}, nil, "unexpected startup packet"},
		{"truncated", []byte{0, 0, 0, 40, 0, 3, 0, 0, 'u'}, nil, ""},
		{"GSSENC then plaintext", append([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}, startupPacket("user", "x")...), ErrNoTLS, "TLS connections only"},
		{"GSSENC twice", []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30, 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}, nil, "unexpected startup packet"},
		{"SSLRequest with pipelined bytes", append([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}, startupPacket("user", "x")...), nil, "S"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err, sent := runAccept(t, cfg, tc.in)
			if f != nil || err == nil {
				t.Fatalf("accepted: %v", f)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(string(sent), tc.says) {
				t.Errorf("sent %q, want it to contain %q", sent, tc.says)
			}
		})
	}
}

// A client that asks for TLS gets it, and its StartupMessage comes back
// through Conn with SetParam's change, followed by what it sent next.
func TestAcceptTLS(t *testing.T) {
	cfg, pool := acceptTLS(t)
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		client.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f})
		var b [1]byte
		if _, err := io.ReadFull(client, b[:]); err != nil || b[0] != 'S' {
			client.Close()
			return
		}
		tc := tls.Client(client, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		tc.Write(append(startupPacket("user", "app", "database", "pg1/shop"), 'X', 0, 0, 0, 4))
	}()
	f, err := Accept(context.Background(), server, AcceptConfig{TLS: cfg, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if f.Param("database") != "pg1/shop" || f.Param("user") != "app" || f.Param("nope") != "" {
		t.Fatalf("params %v", f.params)
	}
	if f.TLS().HandshakeComplete != true {
		t.Fatal("no handshake")
	}
	f.SetParam("database", "shop")
	want := append(startupPacket("user", "app", "database", "shop"), 'X', 0, 0, 0, 4)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(f.Conn(), got); err != nil || string(got) != string(want) {
		t.Fatalf("replayed %q, %v; want %q", got, err, want)
	}
}

// FuzzAccept: no first bytes make Accept panic or accept without TLS.
func FuzzAccept(f *testing.F) {
	f.Add(startupPacket("user", "app", "database", "pg1/shop"))
	f.Add([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f})
	f.Add([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30, 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f})
	f.Add([]byte{0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0})
	cfg, _ := acceptTLS(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if fr, err, _ := runAccept(t, cfg, in); fr != nil || err == nil {
			t.Fatalf("accepted %q without a TLS handshake", in)
		}
	})
}
