package pgproxy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// Strict PostgreSQL v3 framing. Every message is a type byte and a 4-byte big-endian length
// that counts itself; the type is checked against the set the sender may send and the
// length against the configured limit BEFORE anything is allocated, and large bodies are
// allocated as their bytes arrive, so a peer that announces 1 GiB and sends nothing costs
// nothing. Decoders below take a body and either return every field or an error: trailing
// bytes, missing terminators and negative lengths are all errors.

// Startup packet codes (they sit where the protocol version would).
const (
	protocolVersion30 = 3 << 16
	sslRequestCode    = 1234<<16 | 5679
	gssEncRequestCode = 1234<<16 | 5680
	cancelRequestCode = 1234<<16 | 5678
)

// Frontend (client → server) message types accepted after startup.
var frontendTypes = typeSet("BCdcfDEFHPQSX")

// Backend (server → client) message types accepted after startup.
var backendTypes = typeSet("K23CdcGHWDIEVvnNAtS1sZTR")

func typeSet(types string) *[256]bool {
	var s [256]bool
	for i := 0; i < len(types); i++ {
		s[types[i]] = true
	}
	return &s
}

// smallBody is the size up to which a body is allocated in one go.
const smallBody = 1 << 20

// keepBuffer is the largest read buffer kept between messages.
const keepBuffer = 256 << 10

// msgReader reads framed messages from one peer.
type msgReader struct {
	r     *bufio.Reader
	max   int        // largest body accepted
	types *[256]bool // types accepted
	side  string     // "client" or "server", for errors
	// sqlMax, when set, is the largest Query or Parse body accepted: their SQL is
	// refused past Limits.MaxSQL anyway, so they are not read whole first.
	sqlMax int
	hdr    [5]byte
	buf    []byte
	// tee, when set, sees each whole message as it is read (Config.Wire).
	tee func(typ byte, body []byte) error
	// skip, when set, is asked after each header whether a body of n bytes
	// is wanted at all: one it is not is read past without being kept, and
	// next returns it with a nil body.
	skip func(typ byte, n int) bool
}

func newMsgReader(r *bufio.Reader, max int, types *[256]bool, side string) *msgReader {
	return &msgReader{r: r, max: max, types: types, side: side}
}

// next returns the next message. body is valid until the following call.
func (m *msgReader) next() (typ byte, body []byte, err error) {
	if cap(m.buf) > keepBuffer {
		m.buf = nil
	}
	if _, err := io.ReadFull(m.r, m.hdr[:]); err != nil {
		return 0, nil, err
	}
	typ = m.hdr[0]
	if !m.types[typ] {
		return 0, nil, protoErr(m.side, typ, "unexpected message type")
	}
	n := int64(binary.BigEndian.Uint32(m.hdr[1:]))
	if n < 4 {
		return 0, nil, protoErr(m.side, typ, fmt.Sprintf("invalid length %d", n))
	}
	n -= 4
	if n > int64(m.max) {
		return 0, nil, &ProtocolError{Side: m.side, Type: typ, Reason: fmt.Sprintf("message of %d bytes exceeds the limit of %d", n, m.max), tooLarge: true}
	}
	if m.sqlMax > 0 && (typ == 'Q' || typ == 'P') && n > int64(m.sqlMax) {
		return 0, nil, &ProtocolError{Side: m.side, Type: typ, Reason: fmt.Sprintf("message of %d bytes exceeds the limit of %d for SQL text", n, m.sqlMax), tooLarge: true}
	}
	if m.skip != nil && m.skip(typ, int(n)) {
		if _, err := m.r.Discard(int(n)); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
		return typ, nil, nil
	}
	body, err = readBody(m.r, m.buf, int(n))
	m.buf = body
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if m.tee != nil {
		if err := m.tee(typ, body); err != nil {
			return 0, nil, err
		}
	}
	return typ, body, nil
}

// readBody reads n bytes, reusing buf when it is big enough and otherwise growing a new
// buffer only as fast as the bytes actually arrive.
func readBody(r io.Reader, buf []byte, n int) ([]byte, error) {
	if n <= cap(buf) {
		buf = buf[:n]
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	if n <= smallBody {
		buf = make([]byte, n)
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	buf = make([]byte, 0, smallBody)
	for len(buf) < n {
		step := min(n-len(buf), max(cap(buf)-len(buf), smallBody))
		buf = slices.Grow(buf, step)
		got, err := io.ReadFull(r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+got]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// readStartup reads one startup-phase packet (no type byte): its length and body, the
// body starting with the 4-byte code. Used directly on the connection before TLS so that
// nothing is buffered past the packet.
func readStartup(r io.Reader, maxLen int) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint32(l[:]))
	if n < 8 {
		return nil, protoErr("client", 0, fmt.Sprintf("startup packet length %d is too short", n))
	}
	if n > int64(maxLen) {
		return nil, &ProtocolError{Side: "client", Reason: fmt.Sprintf("startup packet of %d bytes exceeds the limit of %d", n, maxLen), tooLarge: true}
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// cursor decodes a message body; the first failure sticks and is reported by done.
type cursor struct {
	b    []byte
	fail string
}

func (c *cursor) bad(what string) {
	if c.fail == "" {
		c.fail = what
	}
	c.b = nil
}

func (c *cursor) u8(what string) byte {
	if len(c.b) < 1 {
		c.bad("missing " + what)
		return 0
	}
	v := c.b[0]
	c.b = c.b[1:]
	return v
}

func (c *cursor) i16(what string) int16 {
	if len(c.b) < 2 {
		c.bad("missing " + what)
		return 0
	}
	v := int16(binary.BigEndian.Uint16(c.b))
	c.b = c.b[2:]
	return v
}

func (c *cursor) u16(what string) int {
	return int(uint16(c.i16(what)))
}

func (c *cursor) i32(what string) int32 {
	if len(c.b) < 4 {
		c.bad("missing " + what)
		return 0
	}
	v := int32(binary.BigEndian.Uint32(c.b))
	c.b = c.b[4:]
	return v
}

// cstr reads a NUL-terminated string (without the NUL).
func (c *cursor) cstr(what string) []byte {
	for i, b := range c.b {
		if b == 0 {
			s := c.b[:i]
			c.b = c.b[i+1:]
			return s
		}
	}
	c.bad("unterminated " + what)
	return nil
}

// bytes reads n bytes.
func (c *cursor) bytes(n int, what string) []byte {
	if n < 0 || len(c.b) < n {
		c.bad("truncated " + what)
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

// value reads an int32 length and that many bytes; -1 is NULL (nil, true).
func (c *cursor) value(what string) (v []byte, null bool) {
	n := c.i32(what + " length")
	if c.fail != "" {
		return nil, false
	}
	if n == -1 {
		return nil, true
	}
	if n < 0 {
		c.bad(fmt.Sprintf("negative %s length %d", what, n))
		return nil, false
	}
	return c.bytes(int(n), what), false
}

func (c *cursor) done(side string, typ byte) error {
	if c.fail != "" {
		return protoErr(side, typ, c.fail)
	}
	if len(c.b) != 0 {
		return protoErr(side, typ, fmt.Sprintf("%d trailing bytes", len(c.b)))
	}
	return nil
}

// --- frontend messages ---

type startupMsg struct {
	version uint32
	params  [][2]string // in order, names unique
}

func decodeStartup(body []byte) (startupMsg, error) {
	c := cursor{b: body}
	m := startupMsg{version: uint32(c.i32("protocol version"))}
	seen := map[string]bool{}
	for c.fail == "" {
		if len(c.b) == 1 && c.b[0] == 0 {
			c.b = nil
			break
		}
		k := c.cstr("parameter name")
		v := c.cstr("parameter value")
		if c.fail != "" {
			break
		}
		if len(k) == 0 {
			c.bad("empty parameter name")
			break
		}
		if seen[string(k)] {
			c.bad(fmt.Sprintf("duplicate parameter %q", k))
			break
		}
		seen[string(k)] = true
		m.params = append(m.params, [2]string{string(k), string(v)})
	}
	return m, c.done("client", 0)
}

func decodeQuery(body []byte) (string, error) {
	c := cursor{b: body}
	q := c.cstr("query string")
	return string(q), c.done("client", 'Q')
}

type parseMsg struct {
	name, query string
}

func decodeParse(body []byte) (parseMsg, error) {
	c := cursor{b: body}
	m := parseMsg{name: string(c.cstr("statement name")), query: string(c.cstr("query string"))}
	n := c.u16("parameter type count")
	c.bytes(4*n, "parameter types")
	return m, c.done("client", 'P')
}

type bindMsg struct {
	portal, stmt  string
	paramFormats  []int16
	params        []bindParam
	resultFormats []int16
}

// bindParam is one parameter value of a Bind (aliasing the message body).
type bindParam struct {
	v    []byte
	null bool
}

func decodeBind(body []byte) (bindMsg, error) {
	c := cursor{b: body}
	m := bindMsg{portal: string(c.cstr("portal name")), stmt: string(c.cstr("statement name"))}
	nf := c.u16("parameter format count")
	for i := 0; i < nf && c.fail == ""; i++ {
		f := c.i16("parameter format")
		if f != 0 && f != 1 {
			c.bad(fmt.Sprintf("invalid parameter format %d", f))
		}
		m.paramFormats = append(m.paramFormats, f)
	}
	np := c.u16("parameter count")
	for i := 0; i < np && c.fail == ""; i++ {
		v, null := c.value("parameter")
		m.params = append(m.params, bindParam{v: v, null: null})
	}
	nr := c.u16("result format count")
	if c.fail == "" && nr > 0 {
		if len(c.b) < 2*nr {
			c.bad("truncated result formats")
		} else {
			m.resultFormats = make([]int16, nr)
			for i := range m.resultFormats {
				f := c.i16("result format")
				if f != 0 && f != 1 {
					c.bad(fmt.Sprintf("invalid result format %d", f))
				}
				m.resultFormats[i] = f
			}
		}
	}
	return m, c.done("client", 'B')
}

type targetMsg struct {
	kind byte // 'S' statement or 'P' portal
	name string
}

// decodeTarget decodes Describe and Close.
func decodeTarget(typ byte, body []byte) (targetMsg, error) {
	c := cursor{b: body}
	m := targetMsg{kind: c.u8("target kind")}
	if c.fail == "" && m.kind != 'S' && m.kind != 'P' {
		c.bad(fmt.Sprintf("invalid target kind %q", m.kind))
	}
	m.name = string(c.cstr("name"))
	return m, c.done("client", typ)
}

type executeMsg struct {
	portal  string
	maxRows int32
}

func decodeExecute(body []byte) (executeMsg, error) {
	c := cursor{b: body}
	m := executeMsg{portal: string(c.cstr("portal name")), maxRows: c.i32("row limit")}
	return m, c.done("client", 'E')
}

// decodeFunctionCall checks a FunctionCall message and returns the function's OID and
// whether the result is asked for in binary.
func decodeFunctionCall(body []byte) (oid uint32, binaryResult bool, err error) {
	oid, _, binaryResult, err = decodeFunctionCallArgs(body)
	return oid, binaryResult, err
}

// decodeFunctionCallArgs is decodeFunctionCall with the call's arguments,
// as a Bind's parameters (formats and values, aliasing body).
func decodeFunctionCallArgs(body []byte) (oid uint32, args bindMsg, binaryResult bool, err error) {
	c := cursor{b: body}
	oid = uint32(c.i32("function OID"))
	nf := c.u16("argument format count")
	for i := 0; i < nf && c.fail == ""; i++ {
		args.paramFormats = append(args.paramFormats, c.i16("argument format"))
	}
	na := c.u16("argument count")
	for i := 0; i < na && c.fail == ""; i++ {
		v, null := c.value("argument")
		args.params = append(args.params, bindParam{v: v, null: null})
	}
	f := c.i16("result format")
	if f != 0 && f != 1 {
		c.bad(fmt.Sprintf("invalid result format %d", f))
	}
	return oid, args, f == 1, c.done("client", 'F')
}

// checkEmpty checks messages without a body (Sync, Flush, Terminate, CopyDone).
func checkEmpty(side string, typ byte, body []byte) error {
	if len(body) != 0 {
		return protoErr(side, typ, fmt.Sprintf("%d unexpected bytes", len(body)))
	}
	return nil
}

// --- backend messages ---

type fieldDesc struct {
	name     string
	tableOID uint32
	attnum   int16
	typeOID  uint32
	typeSize int16
	typmod   int32
	format   int16
}

func decodeRowDescription(body []byte) ([]fieldDesc, error) {
	c := cursor{b: body}
	n := c.u16("field count")
	if c.fail == "" && n > len(c.b)/19 {
		c.bad(fmt.Sprintf("%d fields cannot fit in %d bytes", n, len(c.b)))
	}
	var fields []fieldDesc
	if c.fail == "" {
		fields = make([]fieldDesc, 0, n)
	}
	for i := 0; i < n && c.fail == ""; i++ {
		f := fieldDesc{name: string(c.cstr("field name"))}
		f.tableOID = uint32(c.i32("table OID"))
		f.attnum = c.i16("column number")
		f.typeOID = uint32(c.i32("type OID"))
		f.typeSize = c.i16("type size")
		f.typmod = c.i32("type modifier")
		f.format = c.i16("format")
		if c.fail == "" && f.format != 0 && f.format != 1 {
			c.bad(fmt.Sprintf("invalid format %d", f.format))
		}
		fields = append(fields, f)
	}
	return fields, c.done("server", 'T')
}

func appendRowDescription(dst []byte, fields []fieldDesc) []byte {
	dst, start := beginMsg(dst, 'T')
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(fields)))
	for _, f := range fields {
		dst = append(dst, f.name...)
		dst = append(dst, 0)
		dst = binary.BigEndian.AppendUint32(dst, f.tableOID)
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.attnum))
		dst = binary.BigEndian.AppendUint32(dst, f.typeOID)
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.typeSize))
		dst = binary.BigEndian.AppendUint32(dst, uint32(f.typmod))
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.format))
	}
	return endMsg(dst, start)
}

// errField is one field of an ErrorResponse or NoticeResponse.
type errField struct {
	code  byte
	value string
}

func decodeErrorFields(typ byte, body []byte) ([]errField, error) {
	c := cursor{b: body}
	var fields []errField
	for c.fail == "" {
		code := c.u8("field code")
		if code == 0 {
			break
		}
		v := c.cstr("field value")
		fields = append(fields, errField{code: code, value: string(v)})
	}
	return fields, c.done("server", typ)
}

func fieldValue(fields []errField, code byte) string {
	for _, f := range fields {
		if f.code == code {
			return f.value
		}
	}
	return ""
}

func appendErrorFields(dst []byte, typ byte, fields []errField) []byte {
	dst, start := beginMsg(dst, typ)
	for _, f := range fields {
		dst = append(dst, f.code)
		dst = append(dst, strings.ReplaceAll(f.value, "\x00", "")...)
		dst = append(dst, 0)
	}
	dst = append(dst, 0)
	return endMsg(dst, start)
}

func decodeCommandComplete(body []byte) (string, error) {
	c := cursor{b: body}
	tag := c.cstr("command tag")
	return string(tag), c.done("server", 'C')
}

func decodeReadyForQuery(body []byte) (byte, error) {
	c := cursor{b: body}
	s := c.u8("transaction status")
	if c.fail == "" && s != 'I' && s != 'T' && s != 'E' {
		c.bad(fmt.Sprintf("invalid transaction status %q", s))
	}
	return s, c.done("server", 'Z')
}

func decodeParameterStatus(body []byte) (name, value string, err error) {
	c := cursor{b: body}
	name = string(c.cstr("parameter name"))
	value = string(c.cstr("parameter value"))
	return name, value, c.done("server", 'S')
}

func decodeBackendKeyData(body []byte) (pid, secret uint32, err error) {
	c := cursor{b: body}
	pid = uint32(c.i32("process ID"))
	secret = uint32(c.i32("secret key"))
	return pid, secret, c.done("server", 'K')
}

func decodeNotification(body []byte) (pid int32, channel, payload []byte, err error) {
	c := cursor{b: body}
	pid = c.i32("process ID")
	channel = c.cstr("channel")
	payload = c.cstr("payload")
	return pid, channel, payload, c.done("server", 'A')
}

func appendNotification(dst []byte, pid int32, channel, payload []byte) []byte {
	dst, start := beginMsg(dst, 'A')
	dst = binary.BigEndian.AppendUint32(dst, uint32(pid))
	dst = append(dst, channel...)
	dst = append(dst, 0)
	dst = append(dst, payload...)
	dst = append(dst, 0)
	return endMsg(dst, start)
}

// checkCopyResponse checks CopyInResponse, CopyOutResponse and CopyBothResponse.
func checkCopyResponse(typ byte, body []byte) error {
	c := cursor{b: body}
	if f := c.u8("overall format"); f > 1 {
		c.bad(fmt.Sprintf("invalid overall format %d", f))
	}
	n := c.u16("column count")
	c.bytes(2*n, "column formats")
	return c.done("server", typ)
}

// --- encoding ---

func beginMsg(dst []byte, typ byte) ([]byte, int) {
	dst = append(dst, typ, 0, 0, 0, 0)
	return dst, len(dst) - 4
}

func endMsg(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}

func appendRaw(dst []byte, typ byte, body []byte) []byte {
	dst, start := beginMsg(dst, typ)
	dst = append(dst, body...)
	return endMsg(dst, start)
}

func appendCString(dst []byte, s string) []byte {
	dst = append(dst, s...)
	return append(dst, 0)
}

func appendQuery(dst []byte, sql string) []byte {
	dst, start := beginMsg(dst, 'Q')
	dst = appendCString(dst, sql)
	return endMsg(dst, start)
}

func appendParse(dst []byte, name, sql string) []byte {
	dst, start := beginMsg(dst, 'P')
	dst = appendCString(dst, name)
	dst = appendCString(dst, sql)
	dst = append(dst, 0, 0)
	return endMsg(dst, start)
}

func appendReadyForQuery(dst []byte, status byte) []byte {
	dst, start := beginMsg(dst, 'Z')
	dst = append(dst, status)
	return endMsg(dst, start)
}

func appendAuthOK(dst []byte) []byte {
	dst, start := beginMsg(dst, 'R')
	dst = binary.BigEndian.AppendUint32(dst, 0)
	return endMsg(dst, start)
}

func appendBackendKeyData(dst []byte, pid, secret uint32) []byte {
	dst, start := beginMsg(dst, 'K')
	dst = binary.BigEndian.AppendUint32(dst, pid)
	dst = binary.BigEndian.AppendUint32(dst, secret)
	return endMsg(dst, start)
}

func appendParameterStatus(dst []byte, name, value string) []byte {
	dst, start := beginMsg(dst, 'S')
	dst = appendCString(dst, name)
	dst = appendCString(dst, value)
	return endMsg(dst, start)
}

func appendNegotiateProtocolVersion(dst []byte, minor uint32, unrecognized []string) []byte {
	dst, start := beginMsg(dst, 'v')
	dst = binary.BigEndian.AppendUint32(dst, minor)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(unrecognized)))
	for _, o := range unrecognized {
		dst = appendCString(dst, o)
	}
	return endMsg(dst, start)
}

// appendStartupPacket encodes a startup-phase packet (no type byte).
func appendStartupPacket(dst []byte, code uint32, params [][2]string) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, code)
	for _, p := range params {
		dst = appendCString(dst, p[0])
		dst = appendCString(dst, p[1])
	}
	if code>>16 == 3 {
		dst = append(dst, 0)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}

func appendCancelRequest(dst []byte, pid, secret uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 16)
	dst = binary.BigEndian.AppendUint32(dst, cancelRequestCode)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return binary.BigEndian.AppendUint32(dst, secret)
}

// errorMsg builds an ErrorResponse (or, with typ 'N', a NoticeResponse).
func errorMsg(typ byte, severity, code, message, detail, hint string) []byte {
	fields := []errField{{'S', severity}, {'V', severity}, {'C', code}, {'M', message}}
	if detail != "" {
		fields = append(fields, errField{'D', detail})
	}
	if hint != "" {
		fields = append(fields, errField{'H', hint})
	}
	return appendErrorFields(nil, typ, fields)
}

// clean makes an outside string safe to show in a client's terminal or a transcript line:
// invalid UTF-8 and control characters (except tab) become visible escapes.
func clean(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 && b != '\t' || b == 0x7f || b >= 0x80 {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
