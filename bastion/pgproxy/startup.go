package pgproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// startupTypes are the messages a server sends during authentication and startup.
var startupTypes = typeSet("REvNSKZ")

// maxStartupMessage bounds each server message during startup.
const maxStartupMessage = 64 << 10

// parseOverhead is what a Parse message holds beside its SQL text, at most: the
// statement's name (PostgreSQL truncates it to 63 bytes, but accepts it longer), the
// terminators and 65535 parameter type OIDs.
const parseOverhead = 64<<10 + 2 + 2 + 65535*4

// startupPhase handles the client's startup packets (SSLRequest, GSSENCRequest,
// CancelRequest, StartupMessage), authorises the connection, connects and authenticates
// upstream and completes the client's startup. cancelled is true when the connection was
// a CancelRequest (handled and done).
func (s *session) startupPhase() (cancelled bool, err error) {
	s.unregister = func() {}
	br := bufio.NewReaderSize(s.rawClient, 512)
	sslDone, gssDone := false, false
	var msg startupMsg
	var startupBody []byte // the StartupMessage as read, for Config.Wire
	for {
		body, err := readStartup(br, s.cfg.Limits.MaxStartup)
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				s.fatal(err, "08P01", "bastion: invalid startup packet: "+clean(pe.Reason))
			}
			return false, fmt.Errorf("pgproxy: startup: %w", err)
		}
		code := binary.BigEndian.Uint32(body)
		switch code {
		case sslRequestCode:
			if len(body) != 4 || sslDone {
				return false, s.fatal(protoErr("client", 0, "unexpected SSLRequest"), "08P01", "bastion: unexpected SSLRequest")
			}
			sslDone = true
			if s.cfg.ServerTLS == nil {
				if _, err := s.rawClient.Write([]byte{'N'}); err != nil {
					return false, fmt.Errorf("pgproxy: startup: %w", err)
				}
				continue
			}
			if br.Buffered() > 0 {
				// Bytes sent before the handshake would otherwise pass as if they had come
				// over TLS (CVE-2021-23214): drop the connection without a word.
				return false, ErrPipelinedTLS
			}
			if _, err := s.rawClient.Write([]byte{'S'}); err != nil {
				return false, fmt.Errorf("pgproxy: startup: %w", err)
			}
			tc := tls.Server(s.rawClient, s.cfg.ServerTLS)
			if err := tc.HandshakeContext(s.ctx); err != nil {
				return false, fmt.Errorf("pgproxy: client TLS handshake: %w", err)
			}
			s.setConns(tc, nil, nil)
			br = bufio.NewReaderSize(tc, 512)
		case gssEncRequestCode:
			if len(body) != 4 || gssDone {
				return false, s.fatal(protoErr("client", 0, "unexpected GSSENCRequest"), "08P01", "bastion: unexpected GSSENCRequest")
			}
			gssDone = true
			if _, err := s.client.Write([]byte{'N'}); err != nil {
				return false, fmt.Errorf("pgproxy: startup: %w", err)
			}
		case cancelRequestCode:
			if len(body) != 12 {
				return true, protoErr("client", 0, "invalid CancelRequest length")
			}
			s.forwardCancel(cancelKey{binary.BigEndian.Uint32(body[4:]), binary.BigEndian.Uint32(body[8:])})
			return true, nil
		default:
			if code>>16 != 3 {
				return false, s.fatal(protoErr("client", 0, fmt.Sprintf("unsupported protocol %d.%d", code>>16, code&0xffff)),
					"0A000", fmt.Sprintf("bastion: unsupported frontend protocol %d.%d: server supports 3.0", code>>16, code&0xffff))
			}
			msg, err = decodeStartup(body)
			startupBody = body
			if err != nil {
				reason := err.Error()
				if pe := (*ProtocolError)(nil); errors.As(err, &pe) {
					reason = pe.Reason
				}
				return false, s.fatal(err, "08P01", "bastion: invalid startup packet: "+clean(reason))
			}
		}
		if msg.version != 0 {
			break
		}
	}
	var fromClient io.Reader = s.client
	if br.Buffered() > 0 {
		// Keep what the client pipelined after its startup packet.
		fromClient = io.MultiReader(io.LimitReader(br, int64(br.Buffered())), s.client)
	}
	var toClient io.Writer = s.client
	if s.cfg.Wire != nil {
		// The StartupMessage is stored masked as every later client message is: a
		// card number in application_name (or a database name) is not kept.
		if s.cfg.MaskValue != nil {
			if out, masked, err := s.callMaskValue(startupBody); err != nil {
				return false, fmt.Errorf("%w: %v", ErrTranscript, err)
			} else if masked {
				startupBody = out
			}
		}
		if err := s.cfg.Wire(true, appendRawStartup(nil, startupBody)); err != nil {
			return false, fmt.Errorf("%w: %v", ErrTranscript, err)
		}
		toClient = wireWriter{toClient, s.cfg.Wire}
	}
	s.cbr = bufio.NewReaderSize(fromClient, bufSize)
	s.setConns(nil, nil, bufio.NewWriterSize(toClient, bufSize))
	s.cr = newMsgReader(s.cbr, s.cfg.Limits.MaxMessage, frontendTypes, "client")
	// A Parse carries a name and up to 65535 parameter types beside its SQL.
	s.cr.sqlMax = s.cfg.Limits.MaxSQL + parseOverhead
	if s.cfg.Wire != nil {
		s.cr.tee = s.wireFromClient
	}

	// Protocol 3.x beyond 3.0 and _pq_ extensions are declined with
	// NegotiateProtocolVersion, as PostgreSQL does. Other parameters are forwarded only
	// when allowed (see startupParamAllowed).
	var unrecognized []string
	st := Startup{Params: map[string]string{}}
	var forward [][2]string
	seen := map[string]bool{}
	for _, p := range msg.params {
		k, v := p[0], p[1]
		if strings.HasPrefix(k, "_pq_.") {
			unrecognized = append(unrecognized, k)
			continue
		}
		if err := s.startupParamAllowed(k, seen); err != nil {
			return false, s.fatal(fmt.Errorf("%w: %v", ErrRefused, err), "42501", "bastion: "+clean(err.Error()))
		}
		st.Params[k] = v
		forward = append(forward, p)
	}
	st.User = st.Params["user"]
	st.Database = st.Params["database"]
	if st.Database == "" {
		st.Database = st.User
	}
	if st.User == "" {
		return false, s.refuseStartup(errors.New("no PostgreSQL user name specified in startup packet"))
	}
	if r, ok := st.Params["replication"]; ok {
		switch strings.ToLower(r) {
		case "true", "on", "yes", "1", "database":
			st.Replication = true
		case "false", "off", "no", "0":
		default:
			return false, s.refuseStartup(fmt.Errorf("invalid value for parameter \"replication\": %q", clean(r)))
		}
	}
	s.startup = st
	s.log = s.log.With("db_user", st.User, "database", st.Database)
	if err := safely(func() error { return s.cfg.Authorize(s.ctx, st) }); err != nil {
		return false, s.refuseStartup(err)
	}

	ready, err := s.connectUpstream(forward)
	if err != nil {
		return false, err
	}
	out := make([]byte, 0, 512)
	if msg.version&0xffff != 0 || len(unrecognized) > 0 {
		out = appendNegotiateProtocolVersion(out, 0, unrecognized)
	}
	out = appendAuthOK(out)
	out = append(out, ready...)
	if err := s.sendClient(out); err != nil {
		return false, fmt.Errorf("pgproxy: startup: %w", err)
	}
	return false, nil
}

// startupParams are the startup parameters forwarded to the server: the connection's
// identity (user, database and replication, which PostgreSQL matches case-sensitively)
// and the display settings drivers send by default (libpq and psql: application_name,
// client_encoding, and datestyle and timezone from PGDATESTYLE and PGTZ; pgx:
// application_name, timezone from PGTZ; JDBC: client_encoding, DateStyle, TimeZone,
// extra_float_digits, application_name). Setting names are case-insensitive, as
// PostgreSQL's are. Anything else could change what the session may do (role,
// session_authorization, options with -c, search_path, default_transaction_read_only,
// ...): it is refused unless Config.StartupParams names it.
var startupParams = map[string]bool{
	"application_name": true, "client_encoding": true, "datestyle": true, "timezone": true,
	"intervalstyle": true, "extra_float_digits": true,
}

// startupParamAllowed checks one startup parameter against the allowlist and the
// Config's additions.
func (s *session) startupParamAllowed(name string, seen map[string]bool) error {
	return checkStartupParam(name, s.cfg.StartupParams, seen)
}

// checkStartupParam reports whether a startup parameter may be forwarded; extra are
// further allowed names, and seen collects the (lower-case) names so far, so that
// "TimeZone" and "timezone" cannot both be sent.
func checkStartupParam(name string, extra []string, seen map[string]bool) error {
	lower := strings.ToLower(name)
	if seen[lower] {
		return fmt.Errorf("startup parameter %q is given twice", name)
	}
	seen[lower] = true
	switch name {
	case "user", "database", "replication":
		return nil
	}
	if startupParams[lower] {
		return nil
	}
	for _, e := range extra {
		if strings.EqualFold(e, name) {
			return nil
		}
	}
	allowed := []string{"user", "database", "replication", "application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "extra_float_digits"}
	allowed = append(allowed, extra...)
	return fmt.Errorf("startup parameter %q is not allowed: the bastion forwards only %s", name, strings.Join(allowed, ", "))
}

// fatal sends a FATAL ErrorResponse to the client during startup and returns err.
func (s *session) fatal(err error, code, message string) error {
	if s.cw == nil {
		s.setConns(nil, nil, bufio.NewWriterSize(s.client, 512))
	}
	// The message may quote what the client sent (a database name): masked as the
	// server's own errors are, for the client and the wire capture alike.
	_ = s.sendClient(s.maskErrorFields('E', errorMsg('E', "FATAL", code, message, "", "")[5:]))
	return err
}

// refuseStartup ends a startup the bastion does not allow.
func (s *session) refuseStartup(why error) error {
	return s.fatal(fmt.Errorf("%w: %v", ErrRefused, why), "28000", "bastion: "+clean(why.Error()))
}

// connectUpstream dials the server, verifies it over TLS, authenticates with the client
// certificate (or password) and reads the startup responses up to ReadyForQuery. It
// returns those responses for the client, with the bastion's own BackendKeyData.
func (s *session) connectUpstream(params [][2]string) ([]byte, error) {
	upErr := func(format string, args ...any) error {
		err := fmt.Errorf("%w: "+format, append([]any{ErrUpstream}, args...)...)
		s.fatal(err, "08006", "bastion: cannot connect to the database: "+clean(fmt.Sprintf(format, args...)))
		return err
	}
	conn, err := s.cfg.DialUpstream(s.ctx)
	if err != nil {
		return nil, upErr("dial: %v", err)
	}
	s.setConns(nil, conn, nil)
	_ = conn.SetDeadline(s.cfg.Now().Add(s.cfg.Limits.StartupTimeout))
	var tlsOn bool
	if s.cfg.UpstreamTLS != nil {
		tc := s.cfg.UpstreamTLS.Clone()
		if s.cfg.ClientCert != nil {
			var cert *tls.Certificate
			err := safely(func() (err error) { cert, err = s.cfg.ClientCert(s.ctx, s.startup.User); return err })
			if err == nil && cert == nil {
				err = errors.New("no certificate")
			}
			if err != nil {
				return nil, upErr("client certificate for %q: %v", s.startup.User, err)
			}
			tc.Certificates = nil
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		tconn, err := startTLS(s.ctx, conn, tc)
		if err != nil {
			return nil, upErr("%v", err)
		}
		s.setConns(nil, tconn, nil)
		tlsOn = true
	}
	s.ubr = bufio.NewReaderSize(s.upstream, bufSize)
	s.uw = bufio.NewWriterSize(s.upstream, bufSize)
	s.ur = newMsgReader(s.ubr, maxStartupMessage, startupTypes, "server")
	if _, err := s.uw.Write(appendStartupPacket(nil, protocolVersion30, params)); err != nil {
		return nil, upErr("%v", err)
	}
	if err := s.uw.Flush(); err != nil {
		return nil, upErr("%v", err)
	}

	// Authentication.
	var scram *scramClient
	for round := 0; ; round++ {
		if round > 8 {
			return nil, upErr("authentication did not finish")
		}
		typ, body, err := s.ur.next()
		if err != nil {
			return nil, upErr("%v", err)
		}
		switch typ {
		case 'E':
			return nil, s.upstreamStartupError(body)
		case 'N':
			continue
		case 'v':
			return nil, upErr("server asked to negotiate the protocol version")
		case 'R':
		default:
			return nil, upErr("unexpected message %q during authentication", typ)
		}
		if len(body) < 4 {
			return nil, upErr("short authentication message")
		}
		code, data := binary.BigEndian.Uint32(body), body[4:]
		if code == 0 {
			break
		}
		resp, err := s.authResponse(code, data, tlsOn, &scram)
		if err != nil {
			return nil, upErr("authentication: %v", err)
		}
		if resp == nil {
			continue
		}
		if _, err := s.uw.Write(resp); err != nil {
			return nil, upErr("%v", err)
		}
		if err := s.uw.Flush(); err != nil {
			return nil, upErr("%v", err)
		}
	}
	if scram != nil && !scram.verified {
		return nil, upErr("authentication: server did not prove it knows the password")
	}

	// Startup responses up to ReadyForQuery.
	var out []byte
	var upPID, upSecret uint32
	haveKey := false
	for {
		typ, body, err := s.ur.next()
		if err != nil {
			return nil, upErr("%v", err)
		}
		switch typ {
		case 'S':
			name, value, err := decodeParameterStatus(body)
			if err != nil {
				return nil, upErr("%v", err)
			}
			s.noteParam(name, value)
			if v, ok := s.maskParam(name, value, false); ok {
				out = appendParameterStatus(out, name, v)
			} else {
				out = appendRaw(out, typ, body)
			}
		case 'N':
			out = append(out, s.maskErrorFields('N', body)...)
		case 'K':
			if upPID, upSecret, err = decodeBackendKeyData(body); err != nil {
				return nil, upErr("%v", err)
			}
			haveKey = true
		case 'E':
			return nil, s.upstreamStartupError(body)
		case 'Z':
			if _, err := decodeReadyForQuery(body); err != nil {
				return nil, upErr("%v", err)
			}
			pid, secret := s.registerCancel(upPID, upSecret, haveKey)
			out = appendBackendKeyData(out, pid, secret)
			out = appendRaw(out, typ, body)
			s.ur = newMsgReader(s.ubr, s.cfg.Limits.MaxMessage, backendTypes, "server")
			return out, nil
		default:
			return nil, upErr("unexpected message %q after authentication", typ)
		}
	}
}

// upstreamStartupError passes the server's startup error on to the client.
func (s *session) upstreamStartupError(body []byte) error {
	fields, err := decodeErrorFields('E', body)
	if err != nil {
		s.fatal(err, "08006", "bastion: the database sent a malformed error")
		return fmt.Errorf("%w: %v", ErrUpstream, err)
	}
	msg := fieldValue(fields, 'M')
	_ = s.sendClient(s.maskErrorFields('E', body))
	return fmt.Errorf("%w: server refused the connection: %s (SQLSTATE %s)", ErrUpstream, clean(msg), clean(fieldValue(fields, 'C')))
}

// startTLS negotiates TLS on a fresh PostgreSQL connection (SSLRequest, then the
// handshake). Exactly one byte is read before the handshake, so nothing a network
// attacker injects after the 'S' can pass as encrypted data.
func startTLS(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	if _, err := conn.Write(appendStartupPacket(nil, sslRequestCode, nil)); err != nil {
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return nil, fmt.Errorf("TLS negotiation: %w", err)
	}
	switch b[0] {
	case 'S':
	case 'N':
		return nil, errors.New("server does not support TLS")
	default:
		return nil, fmt.Errorf("TLS negotiation: unexpected response %q", b[0])
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// authResponse answers one authentication request.
func (s *session) authResponse(code uint32, data []byte, tlsOn bool, scram **scramClient) ([]byte, error) {
	password := func() (string, error) {
		if s.cfg.Password == nil {
			return "", errors.New("the server asks for a password and only certificate authentication is configured")
		}
		var pw string
		err := safely(func() (err error) { pw, err = s.cfg.Password(s.ctx, s.startup.User); return err })
		if err != nil {
			return "", fmt.Errorf("password for %q: %w", s.startup.User, err)
		}
		return pw, nil
	}
	switch code {
	case 3: // cleartext
		if !tlsOn {
			return nil, errors.New("refusing to send a cleartext password without TLS")
		}
		pw, err := password()
		if err != nil {
			return nil, err
		}
		return passwordMessage([]byte(pw + "\x00")), nil
	case 5: // MD5
		if len(data) != 4 {
			return nil, errors.New("malformed MD5 request")
		}
		pw, err := password()
		if err != nil {
			return nil, err
		}
		inner := md5.Sum([]byte(pw + s.startup.User))
		outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), data...))
		return passwordMessage([]byte("md5" + hex.EncodeToString(outer[:]) + "\x00")), nil
	case 10: // SASL: mechanisms
		c := cursor{b: data}
		found := false
		for c.fail == "" && len(c.b) > 1 {
			if string(c.cstr("mechanism")) == "SCRAM-SHA-256" {
				found = true
			}
		}
		if !found {
			return nil, errors.New("server offers no SCRAM-SHA-256")
		}
		pw, err := password()
		if err != nil {
			return nil, err
		}
		*scram = newSCRAMClient(pw)
		first := (*scram).clientFirst()
		body := appendCString(nil, "SCRAM-SHA-256")
		body = binary.BigEndian.AppendUint32(body, uint32(len(first)))
		body = append(body, first...)
		return passwordMessage(body), nil
	case 11: // SASLContinue
		if *scram == nil {
			return nil, errors.New("unexpected SASL continuation")
		}
		final, err := (*scram).clientFinal(data)
		if err != nil {
			return nil, err
		}
		return passwordMessage(final), nil
	case 12: // SASLFinal
		if *scram == nil {
			return nil, errors.New("unexpected SASL final message")
		}
		return nil, (*scram).verifyServer(data)
	}
	return nil, fmt.Errorf("unsupported authentication method %d", code)
}

func passwordMessage(body []byte) []byte {
	return appendRaw(nil, 'p', body)
}

// registerCancel gives the client a bastion-issued backend key mapped to the server's.
func (s *session) registerCancel(upPID, upSecret uint32, haveKey bool) (pid, secret uint32) {
	if haveKey {
		dial, tlsCfg := s.cfg.DialUpstream, s.cfg.UpstreamTLS
		if tlsCfg != nil {
			tlsCfg = tlsCfg.Clone()
			tlsCfg.Certificates, tlsCfg.GetClientCertificate = nil, nil
		}
		s.cancelTarget = &cancelTarget{send: func(ctx context.Context) error {
			if s.cancelHold() {
				return nil
			}
			return sendCancel(ctx, dial, tlsCfg, upPID, upSecret)
		}}
	}
	if s.cfg.Cancels == nil || s.cancelTarget == nil {
		// A key that maps to nothing: cancel requests are dropped.
		k, unregister := (&CancelRegistry{}).register(&cancelTarget{})
		unregister()
		return k.pid, k.secret
	}
	k, unregister := s.cfg.Cancels.register(s.cancelTarget)
	s.unregister = unregister
	return k.pid, k.secret
}

// forwardCancel passes a client's CancelRequest to the backend its key maps to, if any.
// Unknown keys are dropped without a word, as PostgreSQL does.
func (s *session) forwardCancel(k cancelKey) {
	if s.cfg.Cancels == nil {
		return
	}
	t := s.cfg.Cancels.lookup(k)
	if t == nil || t.send == nil {
		s.log.Debug("cancel request with unknown key dropped")
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := t.send(ctx); err != nil {
		s.log.Warn("forwarding cancel request failed", "err", err)
	}
}

// sendCancel opens a connection to the server (TLS when configured, which PostgreSQL
// accepts before a CancelRequest) and sends the CancelRequest, then waits for the server
// to close it, which is when the request has been processed.
func sendCancel(ctx context.Context, dial func(context.Context) (net.Conn, error), tlsCfg *tls.Config, pid, secret uint32) error {
	conn, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("pgproxy: cancel: dial: %w", err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	var c net.Conn = conn
	if tlsCfg != nil {
		tc, err := startTLS(ctx, conn, tlsCfg)
		if err != nil {
			return fmt.Errorf("pgproxy: cancel: %w", err)
		}
		c = tc
	}
	if _, err := c.Write(appendCancelRequest(nil, pid, secret)); err != nil {
		return fmt.Errorf("pgproxy: cancel: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<10))
	return nil
}

// appendRawStartup appends a startup packet (its length, then body) as the
// client sent it.
func appendRawStartup(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+4))
	return append(dst, body...)
}

// wireFromClient passes one whole client message to Config.Wire, masked as
// result values are (MaskValue over its body, the length fixed up if a mask
// changed it): what a client sends, a card number in a WHERE clause or in
// COPY data, is stored no more than what it receives.
func (s *session) wireFromClient(typ byte, body []byte) error {
	if s.cfg.MaskValue != nil {
		if typ == 'd' {
			return s.wireCopyData(body)
		}
		// Flush and Sync do not end a COPY (the server ignores them during one).
		if err := s.flushWireCopy(typ != 'H' && typ != 'S'); err != nil {
			return err
		}
	}
	if s.cfg.MaskValue != nil && (typ == 'B' || typ == 'F') {
		// Parameters are joined by length prefixes only, and may be binary: each is
		// masked on its own (maskWireParams); a malformed message as one text.
		if out, ok := s.maskWireParams(typ, body); ok {
			body = out
		} else if out, masked, err := s.callMaskValue(body); err != nil {
			return err
		} else if masked {
			body = out
		}
	} else if s.cfg.MaskValue != nil {
		if out, masked, err := s.callMaskValue(body); err != nil {
			return err
		} else if masked {
			body = out
		}
	}
	msg := make([]byte, 0, 5+len(body))
	msg = append(msg, typ)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(body)+4))
	msg = append(msg, body...)
	if err := s.cfg.Wire(true, msg); err != nil {
		return fmt.Errorf("%w: %v", ErrTranscript, err)
	}
	return nil
}

// copySignature begins binary COPY data.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// wireCopyMax is how much of the client's COPY data the capture holds back, at most,
// before it masks and stores what it has up to a byte no card number goes on past.
const wireCopyMax = 64 << 10

// wireCopyData takes a client's CopyData for the wire capture. The client cuts its COPY
// data into messages wherever its buffer fills (psql's \copy every 8 KiB, in the middle
// of a line), so masked message by message a card number cut in two would be stored
// whole: the data is masked as one stream instead, stored up to the last newline, tab
// or comma (which end any card number) once wireCopyMax bytes are held, the rest when
// the COPY ends. Binary COPY data (its signature) holds numbers as bytes no detector
// reads, and is stored as as many '*'s.
func (s *session) wireCopyData(body []byte) error {
	s.wireCopy = append(s.wireCopy, body...)
	if !s.wireCopyBinary && !s.wireCopyText {
		if len(s.wireCopy) < len(copySignature) && bytes.HasPrefix(copySignature, s.wireCopy) {
			return nil // not known yet
		}
		s.wireCopyBinary = bytes.HasPrefix(s.wireCopy, copySignature)
		s.wireCopyText = !s.wireCopyBinary
	}
	if s.wireCopyBinary {
		return s.storeWireCopy(len(s.wireCopy))
	}
	if len(s.wireCopy) < wireCopyMax {
		return nil
	}
	cut := bytes.LastIndexAny(s.wireCopy, "\n\t,") + 1
	if cut == 0 {
		// One long field: cut after its last byte that ends a run of
		// digits (a letter, or punctuation but a dash), so that a card
		// number near the end is not masked as two halves, neither a card
		// number, and stored whole. Only 64 KiB of digits, blanks, dashes
		// and other bytes has none: a run that long is cut near its end.
		cut = bytes.LastIndexFunc(s.wireCopy, endsDigitRun) + 1
		if cut == 0 {
			cut = len(s.wireCopy) - 64
		}
	}
	return s.storeWireCopy(cut)
}

// endsDigitRun reports whether r, in COPY text data, ends a run of digits
// for the card detector: printable ASCII but a digit, a blank or a dash.
func endsDigitRun(r rune) bool {
	return r > ' ' && r < 0x7f && r != '-' && (r < '0' || r > '9')
}

// flushWireCopy stores what is held of the client's COPY data, before a message other
// than CopyData; end says the COPY ends with it.
func (s *session) flushWireCopy(end bool) error {
	err := s.storeWireCopy(len(s.wireCopy))
	if end {
		s.wireCopyBinary, s.wireCopyText = false, false
	}
	if cap(s.wireCopy) > 2*wireCopyMax {
		s.wireCopy = nil
	}
	return err
}

// storeWireCopy masks the first n bytes of the held COPY data and stores them as one
// CopyData message.
func (s *session) storeWireCopy(n int) error {
	if n == 0 {
		return nil
	}
	data := s.wireCopy[:n]
	if s.wireCopyBinary || !s.wireCopyText && bytes.HasPrefix(copySignature, data) {
		data = bytes.Repeat([]byte{'*'}, n)
	} else if out, masked, err := s.callMaskValue(data); err != nil {
		return err
	} else if masked {
		data = out
	}
	msg := make([]byte, 0, 5+len(data))
	msg = append(msg, 'd')
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(data)+4))
	msg = append(msg, data...)
	s.wireCopy = s.wireCopy[:copy(s.wireCopy, s.wireCopy[n:])]
	if err := s.cfg.Wire(true, msg); err != nil {
		return fmt.Errorf("%w: %v", ErrTranscript, err)
	}
	return nil
}

// maskWireParams masks, for the wire capture, the parameters of a Bind or the arguments
// of a FunctionCall one by one: masked as one text, a card number next to another
// parameter of digits ("4111111111111111" then "12", their length prefixes bytes no
// terminal draws) reads as one longer run of digits, which is no card number. A text
// value goes through MaskValue; a binary one (pgx sends an int64 as int8) is replaced
// by as many '*' when its bytes, or the number they hold read as any type that can
// hold a card number (int8, float8, numeric, an array of those), would be masked in a
// result. The names (portal, statement) go through MaskValue too. ok is false for a
// malformed message.
func (s *session) maskWireParams(typ byte, body []byte) (out []byte, ok bool) {
	c := cursor{b: body}
	out = make([]byte, 0, len(body)+16)
	if typ == 'B' {
		for range 2 {
			name := c.cstr("name")
			if v, masked := s.maskValue(name); masked {
				name = v
			}
			out = append(append(out, name...), 0)
		}
	} else {
		out = binary.BigEndian.AppendUint32(out, uint32(c.i32("function OID")))
	}
	nf := c.u16("format count")
	formats := make([]int16, 0, nf)
	for i := 0; i < nf && c.fail == ""; i++ {
		formats = append(formats, c.i16("format"))
	}
	np := c.u16("parameter count")
	if c.fail != "" {
		return nil, false
	}
	out = binary.BigEndian.AppendUint16(out, uint16(nf))
	for _, f := range formats {
		out = binary.BigEndian.AppendUint16(out, uint16(f))
	}
	out = binary.BigEndian.AppendUint16(out, uint16(np))
	for i := 0; i < np && c.fail == ""; i++ {
		v, null := c.value("parameter")
		if null {
			out = binary.BigEndian.AppendUint32(out, 0xffffffff)
			continue
		}
		bin := len(formats) == 1 && formats[0] == 1 || len(formats) > 1 && i < len(formats) && formats[i] == 1
		switch {
		case !bin:
			if m, masked := s.maskValue(v); masked {
				v = m
			}
		case s.binaryParamNeedsMask(v):
			v = bytes.Repeat([]byte{'*'}, len(v))
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	if c.fail != "" {
		return nil, false
	}
	return append(out, c.b...), true // result formats
}

// binaryParamNeedsMask reports whether a binary parameter of unknown type may hold a
// card number: its bytes as text, or the number they hold read as int8, float8,
// numeric or an array of a type binaryDecodedNeedsMask takes apart.
func (s *session) binaryParamNeedsMask(v []byte) bool {
	if _, masked, err := s.callMaskValue(v); err != nil || masked {
		return true
	}
	var cands []uint32
	if len(v) == 8 {
		cands = append(cands, oidInt8, oidFloat8)
	}
	if len(v) >= 8 && len(v) == 8+2*int(binary.BigEndian.Uint16(v)) {
		cands = append(cands, oidNumeric)
	}
	if len(v) >= 12 {
		if elem := binary.BigEndian.Uint32(v[8:]); elem != 0 {
			for arr, e := range arrayElemOIDs {
				if e == elem {
					cands = append(cands, arr)
					break
				}
			}
		}
	}
	for _, oid := range cands {
		if oid == oidNumeric && numericText(v) == "" {
			continue
		}
		// A value that only looks like an array and is malformed as one is masked too:
		// this is the capture, not what the server gets.
		if masked, err := s.binaryDecodedNeedsMask(oid, v, 0); err != nil || masked {
			return true
		}
	}
	return false
}

// wireWriter passes what the proxy writes to the client (already masked)
// to Config.Wire after the client has taken it: a failed write records
// nothing the client did not get.
type wireWriter struct {
	w    io.Writer
	wire func(bool, []byte) error
}

func (w wireWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if n > 0 {
		if werr := w.wire(false, p[:n]); werr != nil && err == nil {
			err = fmt.Errorf("%w: %v", ErrTranscript, werr)
		}
	}
	return n, err
}
