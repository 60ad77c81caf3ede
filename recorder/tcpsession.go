package recorder

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// A TCP session's content is recorded as the bytes each side sent
// (EventFromClient, EventFromServer) and its connection events (EventConn).
// It is exported two ways: as a capture Wireshark and tshark read
// (ExportPcap), and, for replay and the asciicast export, as a readable
// timeline (timeline).

// timelineHead and timelineTail are how much of one event's bytes the
// timeline shows; longer runs are elided in the middle.
const (
	timelineHead = 512
	timelineTail = 128
)

// timeline turns a TCP session's events into terminal text: one heading
// per event (time, direction, size) and a hex and ASCII dump of its bytes,
// with long runs elided. Only printable ASCII reaches the text.
type timeline struct {
	out func(asciicast.Event) error
}

func (tl timeline) event(e rawEvent) error {
	at := fmt.Sprintf("[%10.6fs] ", float64(e.us)/1e6)
	var b strings.Builder
	switch e.typ {
	case EventConn:
		if c, s, lost, ok := parseUnstored(e.data); ok {
			why := "the session's byte budget was spent"
			if lost {
				why = "lost with the recording gap above"
			}
			fmt.Fprintf(&b, "%sbastion: %d bytes from the client and %d from the target passed unstored (%s)\r\n", at, c, s, why)
			break
		}
		if string(e.data) == "cut" {
			b.WriteString(at + "connection cut by the bastion (the marker above says why): each side still open is shown reset\r\n")
			break
		}
		b.WriteString(at + "connection " + printableASCII(string(e.data)) + "\r\n")
	case EventFromClient, EventFromServer:
		dir := "client -> target"
		if e.typ == EventFromServer {
			dir = "target -> client"
		}
		fmt.Fprintf(&b, "%s%s  %d bytes\r\n", at, dir, len(e.data))
		hexdump(&b, e.data)
	case asciicast.Marker:
		// The bastion's own markers begin "bastion: " already.
		b.WriteString(at + "bastion: " + printableASCII(strings.TrimPrefix(string(e.data), "bastion: ")) + "\r\n")
	default:
		return nil
	}
	t := time.Duration(e.us) * time.Microsecond
	if err := tl.out(asciicast.Event{Time: t, Type: asciicast.Output, Data: b.String()}); err != nil {
		return err
	}
	if e.typ == asciicast.Marker {
		// A marker event too, so that players and the replay list it with
		// a terminal session's (the line above is for the reader).
		return tl.out(asciicast.Event{Time: t, Type: asciicast.Marker, Data: string(e.data)})
	}
	return nil
}

// hexdump writes data as hexdump -C does (offset, 16 bytes in hex, the same
// as ASCII), eliding the middle of long runs.
func hexdump(b *strings.Builder, data []byte) {
	line := func(off int, chunk []byte) {
		fmt.Fprintf(b, "  %08x ", off)
		for i := 0; i < 16; i++ {
			if i == 8 {
				b.WriteByte(' ')
			}
			if i < len(chunk) {
				fmt.Fprintf(b, " %02x", chunk[i])
			} else {
				b.WriteString("   ")
			}
		}
		b.WriteString("  |")
		for _, c := range chunk {
			if c >= 0x20 && c < 0x7f {
				b.WriteByte(c)
			} else {
				b.WriteByte('.')
			}
		}
		b.WriteString("|\r\n")
	}
	dump := func(from, to int) {
		for off := from; off < to; off += 16 {
			line(off, data[off:min(off+16, to)])
		}
	}
	if len(data) <= timelineHead+timelineTail+64 {
		dump(0, len(data))
		return
	}
	dump(0, timelineHead)
	tail := len(data) - timelineTail
	tail -= tail % 16
	fmt.Fprintf(b, "  ... %d bytes elided ...\r\n", tail-timelineHead)
	dump(tail, len(data))
}

func printableASCII(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

// ExportPcap writes a TCP session's recorded content (or a PostgreSQL
// session's client-side wire messages) as a pcap capture
// (Ethernet, IPv4 or IPv6, TCP) that Wireshark and tshark open: the real
// client and target addresses and ports from the session's "open" event,
// the three-way handshake, every byte each side sent in segments no larger
// than a real MSS with consistent sequence and acknowledgement numbers, and
// the closes (FIN or RST) as they happened. The frames are synthesized;
// their times are the events' times.
//
// A session with nothing to capture (not a tcp or postgres session, or
// recorded without its content) gets an error wrapping ErrNoCapture, and
// a damaged one (what Verify finds) one wrapping ErrBroken, before
// anything is written.
func (s *Store) ExportPcap(id string, w io.Writer) error {
	info, err := s.sessionView(id)
	if err != nil {
		return err
	}
	if info.Kind != "tcp" && info.Kind != "postgres" {
		return fmt.Errorf("recorder: export %s as pcap: %w: a %s session has no TCP content (tcp and postgres sessions do)", id, ErrNoCapture, info.Kind)
	}
	// Read and checked whole first, so a session without content, or
	// a damaged one, writes nothing: a capture is read later, apart
	// from this error, and one cut at the damage (or whose chain is
	// consistent but does not match its seal, which is found only at
	// its end) would read as the session. A tcp session's content
	// begins with its "open" event, a PostgreSQL session's wire
	// messages too.
	found := false
	err = s.rawEvents(id, func(e rawEvent) error {
		found = found || e.typ == EventConn
		return nil
	})
	switch {
	case errors.Is(err, ErrBroken):
		return fmt.Errorf("recorder: export %s as pcap: refused, nothing written: %w (bastion verify %s names the damage)", id, err, id)
	case err != nil:
		return err
	case !found && info.Kind == "postgres":
		return fmt.Errorf("recorder: export %s as pcap: %w: it was recorded as a transcript only, without its wire messages (its target has recording: transcript, or it was recorded before captures existed)", id, ErrNoCapture)
	case !found:
		return fmt.Errorf("recorder: export %s as pcap: %w: it was recorded as metadata only, without its content (its target has recording: metadata, or it was recorded before content recording existed)", id, ErrNoCapture)
	}
	// Frames are small (a record header and at most one MSS each): written
	// one by one to an SSH channel, every one was a packet of its own, and
	// 20 MiB took minutes on a loaded machine.
	bw := bufio.NewWriterSize(w, 256<<10)
	p := newPcapWriter(bw, info)
	if err := p.header(); err != nil {
		return err
	}
	err = s.rawEvents(id, func(e rawEvent) error {
		switch e.typ {
		case EventConn:
			return p.conn(e)
		case EventFromClient, EventFromServer:
			return p.data(e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if p.err != nil {
		return p.err
	}
	return bw.Flush()
}

// rawEvents calls fn with each committed event of a session, checked.
func (s *Store) rawEvents(id string, fn func(rawEvent) error) error {
	cc := newChainChecker(id)
	done, err := s.signedExtent(id, cc)
	if err != nil {
		return err
	}
	err = s.scanChunks(id, func(seq uint64, v []byte) error {
		last := cc.last
		c, err := cc.check(seq, v, nil)
		if err != nil {
			return fmt.Errorf("recorder: session %s: chunk %d: %w: %v", id, cc.next, ErrBroken, err)
		}
		return walkEvents(c, &last, func(e rawEvent) error {
			if err := fn(e); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
	if cb, ok := err.(callbackError); ok {
		return cb.err
	}
	if err == nil {
		err = done()
	}
	return err
}

// pcapWriter synthesizes the frames of one TCP connection.
type pcapWriter struct {
	w          io.Writer
	start      time.Time
	client     netip.AddrPort
	server     netip.AddrPort
	v6         bool
	cseq, sseq uint32 // the next sequence number each side sends
	opened     bool
	closed     [2]bool
	err        error
}

// ErrNoCapture is what ExportPcap's error wraps when the session has no
// content to export as a capture.
var ErrNoCapture = errors.New("the session has no capture")

// Fallback addresses (documentation ranges) when the recording has no open
// event.
var (
	pcapClient = netip.MustParseAddrPort("192.0.2.1:40000")
	pcapServer = netip.MustParseAddrPort("198.51.100.1:80")
)

func newPcapWriter(w io.Writer, info SessionInfo) *pcapWriter {
	sum := sha256.Sum256([]byte(info.ID))
	return &pcapWriter{w: w, start: info.Start, client: pcapClient, server: pcapServer,
		cseq: binary.BigEndian.Uint32(sum[0:]), sseq: binary.BigEndian.Uint32(sum[4:])}
}

func (p *pcapWriter) header() error {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4) // microsecond timestamps
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144) // snaplen
	binary.LittleEndian.PutUint32(h[20:], 1)      // LINKTYPE_ETHERNET
	_, err := p.w.Write(h[:])
	return err
}

// conn handles a connection event: the open (addresses and the handshake)
// and the closes.
func (p *pcapWriter) conn(e rawEvent) error {
	if c, s, _, ok := parseUnstored(e.data); ok {
		// Bytes that passed but were not stored: the sequence numbers
		// move past them, so the next segment shows them as missing
		// (Wireshark: previous segment not captured).
		p.open(e.us)
		p.cseq += uint32(c)
		p.sseq += uint32(s)
		return p.err
	}
	f := strings.Fields(string(e.data))
	switch {
	case len(f) == 3 && f[0] == "open":
		c, err1 := netip.ParseAddrPort(f[1])
		t, err2 := netip.ParseAddrPort(f[2])
		if err1 == nil && err2 == nil {
			p.client, p.server = c, t
		}
		p.open(e.us)
	case len(f) == 1 && f[0] == "cut":
		// The bastion ended the forward (idle timeout, a withdrawn
		// grant, a failed recording...): neither side closed it, so
		// each side still open is shown reset, the target's first.
		p.open(e.us)
		for _, fromClient := range []bool{false, true} {
			side := 1
			if fromClient {
				side = 0
			}
			if !p.closed[side] {
				p.segment(e.us, fromClient, flagRST|flagACK, nil)
			}
		}
		p.closed = [2]bool{true, true}
	case len(f) == 2 && (f[1] == "fin" || f[1] == "rst"):
		p.open(e.us)
		fromClient := f[0] == "client"
		side := 1
		if fromClient {
			side = 0
		}
		if p.closed[side] {
			return p.err
		}
		p.closed[side] = true
		if f[1] == "rst" {
			p.segment(e.us, fromClient, flagRST|flagACK, nil)
			p.closed = [2]bool{true, true}
			return p.err
		}
		p.segment(e.us, fromClient, flagFIN|flagACK, nil)
		p.segment(e.us, !fromClient, flagACK, nil)
	}
	return p.err
}

// parseUnstored reads an "unstored CLIENT SERVER" connection event: how
// many bytes each side sent that the recording did not store; lost when
// it ends in "lost" (a recording gap, not the byte budget).
func parseUnstored(data []byte) (client, server uint64, lost, ok bool) {
	f := strings.Fields(string(data))
	if len(f) < 3 || len(f) > 4 || f[0] != "unstored" || len(f) == 4 && f[3] != "lost" {
		return 0, 0, false, false
	}
	c, err1 := strconv.ParseUint(f[1], 10, 64)
	s, err2 := strconv.ParseUint(f[2], 10, 64)
	return c, s, len(f) == 4, err1 == nil && err2 == nil
}

// open writes the handshake once, at the first event.
func (p *pcapWriter) open(us int64) {
	if p.opened {
		return
	}
	p.opened = true
	p.v6 = p.client.Addr().Is6() && !p.client.Addr().Is4In6() || p.server.Addr().Is6() && !p.server.Addr().Is4In6()
	if p.v6 {
		// One connection has one address family: show v4 addresses as
		// v4-mapped v6 when the other side is v6.
		p.client = netip.AddrPortFrom(netip.AddrFrom16(p.client.Addr().As16()), p.client.Port())
		p.server = netip.AddrPortFrom(netip.AddrFrom16(p.server.Addr().As16()), p.server.Port())
	} else {
		p.client = netip.AddrPortFrom(p.client.Addr().Unmap(), p.client.Port())
		p.server = netip.AddrPortFrom(p.server.Addr().Unmap(), p.server.Port())
	}
	p.segment(us, true, flagSYN, nil)
	p.segment(us, false, flagSYN|flagACK, nil)
	p.segment(us, true, flagACK, nil)
}

func (p *pcapWriter) data(e rawEvent) error {
	p.open(e.us)
	fromClient := e.typ == EventFromClient
	mss := 1460
	if p.v6 {
		mss = 1440
	}
	for d := e.data; len(d) > 0; {
		n := min(len(d), mss)
		flags := uint8(flagACK)
		if n == len(d) {
			flags |= flagPSH
		}
		p.segment(e.us, fromClient, flags, d[:n])
		d = d[n:]
	}
	return p.err
}

const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
)

// segment writes one frame from the client (or the server) and advances
// that side's sequence number by what it consumes.
func (p *pcapWriter) segment(us int64, fromClient bool, flags uint8, payload []byte) {
	if p.err != nil {
		return
	}
	src, dst := p.client, p.server
	seq, ack := p.cseq, p.sseq
	srcMAC, dstMAC := [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}
	if !fromClient {
		src, dst = dst, src
		seq, ack = ack, seq
		srcMAC, dstMAC = dstMAC, srcMAC
	}
	if flags&flagACK == 0 {
		ack = 0
	}
	tcp := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	tcp = append(tcp, payload...)

	frame := make([]byte, 0, 14+40+len(tcp))
	frame = append(frame, dstMAC[:]...)
	frame = append(frame, srcMAC[:]...)
	var pseudo []byte
	if p.v6 {
		frame = append(frame, 0x86, 0xdd)
		ip := make([]byte, 40)
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6], ip[7] = 6, 64
		s16, d16 := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s16[:])
		copy(ip[24:], d16[:])
		frame = append(frame, ip...)
		pseudo = append(append(append(pseudo, s16[:]...), d16[:]...), 0, 0, byte(len(tcp)>>8), byte(len(tcp)), 0, 0, 0, 6)
	} else {
		frame = append(frame, 0x08, 0x00)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[6] = 0x40 // don't fragment
		ip[8], ip[9] = 64, 6
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
		frame = append(frame, ip...)
		pseudo = append(append(append(pseudo, s4[:]...), d4[:]...), 0, 6, byte(len(tcp)>>8), byte(len(tcp)))
	}
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, sum16(pseudo)))
	frame = append(frame, tcp...)

	ts := p.start.Add(time.Duration(us) * time.Microsecond)
	var rec [16]byte
	binary.LittleEndian.PutUint32(rec[0:], uint32(ts.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(ts.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(frame)))
	if _, err := p.w.Write(rec[:]); err != nil {
		p.err = err
		return
	}
	if _, err := p.w.Write(frame); err != nil {
		p.err = err
		return
	}
	consumed := uint32(len(payload))
	if flags&(flagSYN|flagFIN) != 0 {
		consumed++
	}
	if fromClient {
		p.cseq += consumed
	} else {
		p.sseq += consumed
	}
}

// sum16 is the one's-complement sum of b as big-endian 16-bit words.
func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

// checksum is the Internet checksum of b with an initial sum.
func checksum(b []byte, initial uint32) uint16 {
	s := initial + sum16(b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
