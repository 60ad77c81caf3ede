package pgproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A direct listener is a PostgreSQL port of the bastion itself (no SSH
// tunnel): the client must speak TLS, and who it is and which target it
// means are known only after the handshake and its StartupMessage. Accept
// does that first part; the caller then picks the target, builds the
// Config, and hands Front.Conn to Serve, which reads the (rewritten)
// StartupMessage as if the client had just sent it.

// ErrNoTLS: a direct listener's client started without TLS.
var ErrNoTLS = errors.New("pgproxy: the client did not ask for TLS")

// ErrCancelRequest: the connection was a CancelRequest, forwarded (or
// dropped when its key is unknown); there is nothing more to do.
var ErrCancelRequest = errors.New("pgproxy: cancel request")

// AcceptConfig configures Accept.
type AcceptConfig struct {
	// TLS is the listener's server configuration. Required. Client
	// certificates are the caller's to verify (after Accept), so that a
	// refusal can be sent as a PostgreSQL error the user reads.
	TLS *tls.Config
	// Cancels receives CancelRequests (sent in the clear by libpq, or over
	// TLS by newer clients). nil drops them.
	Cancels *CancelRegistry
	// MaxStartup bounds a startup packet; default 10 KiB.
	MaxStartup int
	// Timeout bounds the handshake and StartupMessage; default 30s.
	Timeout time.Duration
}

// Front is a direct listener's client after TLS and its StartupMessage.
type Front struct {
	tc      *tls.Conn
	br      *bufio.Reader
	version uint32
	params  [][2]string
}

// Accept answers the client's SSLRequest with TLS (GSSENCRequest with
// 'N'), reads its StartupMessage and returns it. A client that sends its
// StartupMessage in the clear gets a FATAL error saying to use TLS and
// ErrNoTLS; a CancelRequest is forwarded and gives ErrCancelRequest. On
// any error the connection is closed.
func Accept(ctx context.Context, c net.Conn, cfg AcceptConfig) (_ *Front, err error) {
	if cfg.TLS == nil {
		c.Close()
		return nil, fmt.Errorf("%w: AcceptConfig.TLS is required", ErrConfig)
	}
	if cfg.MaxStartup == 0 {
		cfg.MaxStartup = defaultMaxStartup
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultStartupTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	_ = c.SetDeadline(time.Now().Add(cfg.Timeout))
	var conn net.Conn = c
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	var tc *tls.Conn
	r := io.Reader(c) // unbuffered before TLS: nothing may be read past the SSLRequest
	var br *bufio.Reader
	gss := false
	for {
		body, err := readStartup(r, cfg.MaxStartup)
		if err != nil {
			return nil, fmt.Errorf("pgproxy: startup: %w", err)
		}
		switch code := binary.BigEndian.Uint32(body); {
		case code == sslRequestCode && tc == nil && len(body) == 4:
			if _, err := c.Write([]byte{'S'}); err != nil {
				return nil, fmt.Errorf("pgproxy: startup: %w", err)
			}
			tc = tls.Server(c, cfg.TLS)
			conn = tc
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("pgproxy: client TLS handshake: %w", err)
			}
			br = bufio.NewReaderSize(tc, 512)
			r = br
		case code == gssEncRequestCode && tc == nil && !gss && len(body) == 4:
			gss = true
			if _, err := c.Write([]byte{'N'}); err != nil {
				return nil, fmt.Errorf("pgproxy: startup: %w", err)
			}
		case code == cancelRequestCode && len(body) == 12:
			if cfg.Cancels != nil {
				cfg.Cancels.Forward(ctx, binary.BigEndian.Uint32(body[4:]), binary.BigEndian.Uint32(body[8:]))
			}
			return nil, ErrCancelRequest
		case code>>16 == 3 && tc == nil:
			_, _ = conn.Write(errorMsg('E', "FATAL", "28000",
				"bastion: this listener takes TLS connections only: connect with sslmode=verify-full and the certificate `bastion login` wrote (see `bastion db env`)", "", ""))
			return nil, ErrNoTLS
		case code>>16 == 3:
			msg, err := decodeStartup(body)
			if err != nil {
				_, _ = conn.Write(errorMsg('E', "FATAL", "08P01", "bastion: invalid startup packet", "", ""))
				return nil, err
			}
			_ = c.SetDeadline(time.Time{})
			return &Front{tc: tc, br: br, version: msg.version, params: msg.params}, nil
		default:
			_, _ = conn.Write(errorMsg('E', "FATAL", "08P01", fmt.Sprintf("bastion: unexpected startup packet (code %d)", code), "", ""))
			return nil, protoErr("client", 0, fmt.Sprintf("unexpected startup packet code %d", code))
		}
	}
}

// TLS is the client's TLS state (its certificates are not yet verified).
func (f *Front) TLS() tls.ConnectionState { return f.tc.ConnectionState() }

// Param returns a startup parameter ("" when absent).
func (f *Front) Param(name string) string {
	for _, p := range f.params {
		if p[0] == name {
			return p[1]
		}
	}
	return ""
}

// SetParam sets a startup parameter, adding it when absent.
func (f *Front) SetParam(name, value string) {
	for i, p := range f.params {
		if p[0] == name {
			f.params[i][1] = value
			return
		}
	}
	f.params = append(f.params, [2]string{name, value})
}

// Refuse ends the connection with a FATAL error (SQLSTATE code) the client
// shows, and returns err.
func (f *Front) Refuse(code, message string, err error) error {
	_, _ = f.tc.Write(errorMsg('E', "FATAL", code, "bastion: "+clean(message), "", ""))
	f.tc.Close()
	return err
}

// Conn is the client connection for Serve: it first yields the
// StartupMessage (with SetParam's changes), then what the client sends.
func (f *Front) Conn() net.Conn {
	pre := appendStartupPacket(nil, f.version, f.params)
	return &replayConn{Conn: f.tc, r: io.MultiReader(bytes.NewReader(pre), f.br)}
}

type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Forward sends a client's CancelRequest on to the backend its key names;
// an unknown key is dropped, as PostgreSQL does.
func (r *CancelRegistry) Forward(ctx context.Context, pid, secret uint32) {
	t := r.lookup(cancelKey{pid, secret})
	if t == nil || t.send == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = t.send(ctx)
}
