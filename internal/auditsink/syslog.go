package auditsink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// SyslogConfig configures a syslog sink.
type SyslogConfig struct {
	// Address is "tcp://HOST:PORT", "udp://HOST:PORT" or "unix:///dev/log"
	// (a datagram socket, as journald and rsyslog's imuxsock listen on).
	Address string
	// Facility is the syslog facility code; default 10 (authpriv).
	Facility int
	// AppName is the APP-NAME field; default "bastion".
	AppName string
	// Hostname is the HOSTNAME field; default os.Hostname.
	Hostname string
}

// Syslog sends each line as one RFC 5424 message: MSGID "audit", "checkpoint"
// or "gap", no structured data, and the line as the message. Over TCP the
// messages are octet-counted (RFC 6587), so a line is never split.
type Syslog struct {
	cfg     SyslogConfig
	network string
	addr    string
	conn    net.Conn
}

// NewSyslog checks cfg.
func NewSyslog(cfg SyslogConfig) (*Syslog, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("auditsink: syslog address %q: %w", cfg.Address, err)
	}
	s := &Syslog{cfg: cfg}
	switch u.Scheme {
	case "tcp", "udp":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("auditsink: syslog address %q: want %s://HOST:PORT", cfg.Address, u.Scheme)
		}
		s.network, s.addr = u.Scheme, u.Host
	case "unix":
		if u.Path == "" {
			return nil, fmt.Errorf("auditsink: syslog address %q: want unix:///PATH", cfg.Address)
		}
		s.network, s.addr = "unixgram", u.Path
	default:
		return nil, fmt.Errorf("auditsink: syslog address %q: the scheme must be tcp, udp or unix", cfg.Address)
	}
	if s.cfg.Facility == 0 {
		s.cfg.Facility = 10
	}
	if s.cfg.Facility < 0 || s.cfg.Facility > 23 {
		return nil, fmt.Errorf("auditsink: syslog facility %d: want 0 to 23", s.cfg.Facility)
	}
	if s.cfg.AppName == "" {
		s.cfg.AppName = "bastion"
	}
	if s.cfg.Hostname == "" {
		s.cfg.Hostname, _ = os.Hostname()
		if s.cfg.Hostname == "" {
			s.cfg.Hostname = "-"
		}
	}
	return s, nil
}

func (s *Syslog) Name() string { return "syslog" }

// Send writes the lines on one connection, reconnecting first when the last
// send failed.
func (s *Syslog) Send(ctx context.Context, lines [][]byte) error {
	if s.conn != nil && s.network == "tcp" && peerClosed(s.conn) {
		// The receiver went away (restarted, stopped): a write would
		// still succeed into the socket buffer and be lost.
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err := d.DialContext(ctx, s.network, s.addr)
		if err != nil {
			return fmt.Errorf("syslog %s: %w", s.cfg.Address, err)
		}
		s.conn = c
	}
	s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	var buf []byte
	for _, line := range lines {
		msg := s.format(line)
		if s.network == "tcp" {
			buf = strconv.AppendInt(buf[:0], int64(len(msg)), 10)
			buf = append(buf, ' ')
			buf = append(buf, msg...)
		} else {
			buf = append(buf[:0], msg...)
		}
		if _, err := s.conn.Write(buf); err != nil {
			s.conn.Close()
			s.conn = nil
			return fmt.Errorf("syslog %s: %w", s.cfg.Address, err)
		}
	}
	return nil
}

// format makes one RFC 5424 message: PRI VERSION TIMESTAMP HOSTNAME
// APP-NAME PROCID MSGID STRUCTURED-DATA MSG.
func (s *Syslog) format(line []byte) []byte {
	msgid := "audit"
	switch {
	case strings.HasPrefix(string(line), `{"checkpoint"`):
		msgid = "checkpoint"
	case strings.HasPrefix(string(line), `{"gap"`):
		msgid = "gap"
	}
	pri := s.cfg.Facility*8 + 6 // informational
	hdr := fmt.Sprintf("<%d>1 %s %s %s %d %s - ", pri, time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		s.cfg.Hostname, s.cfg.AppName, os.Getpid(), msgid)
	return append([]byte(hdr), line...)
}

func (s *Syslog) Close() error {
	if s.conn != nil {
		return s.conn.Close()
	}
	return nil
}

// peerClosed reports whether the receiver closed its end: a syslog receiver
// never sends, so anything readable (EOF, a reset) means it is gone.
func peerClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}
