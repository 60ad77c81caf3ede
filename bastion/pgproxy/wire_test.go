package pgproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// msg builds a framed message.
func msg(typ byte, body ...[]byte) []byte {
	return appendRaw(nil, typ, bytes.Join(body, nil))
}

func u16(v int) []byte   { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func i32(v int) []byte   { return binary.BigEndian.AppendUint32(nil, uint32(int32(v))) }
func cs(s string) []byte { return append([]byte(s), 0) }

func TestMsgReaderMalformed(t *testing.T) {
	huge := []byte{'Q', 0x7f, 0xff, 0xff, 0xff}
	tests := []struct {
		name    string
		in      []byte
		types   *[256]bool
		max     int
		wantErr error
		want    string
	}{
		{"unknown client type", msg('Z', []byte{'I'}), frontendTypes, 1 << 20, ErrProtocol, "unexpected message type"},
		{"unknown server type", msg('Q', cs("x")), backendTypes, 1 << 20, ErrProtocol, "unexpected message type"},
		{"length below 4", []byte{'Q', 0, 0, 0, 3}, frontendTypes, 1 << 20, ErrProtocol, "invalid length 3"},
		{"negative length", []byte{'Q', 0xff, 0xff, 0xff, 0xff}, frontendTypes, 1 << 20, ErrMessageTooLarge, "exceeds"},
		{"over the limit, nothing allocated", huge, frontendTypes, 1 << 20, ErrMessageTooLarge, "exceeds the limit"},
		{"truncated body", []byte{'Q', 0, 0, 0, 10, 'a'}, frontendTypes, 1 << 20, io.ErrUnexpectedEOF, ""},
		{"truncated header", []byte{'Q', 0, 0}, frontendTypes, 1 << 20, io.ErrUnexpectedEOF, ""},
		{"nul type", msg(0), frontendTypes, 1 << 20, ErrProtocol, "unexpected message type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newMsgReader(bufio.NewReader(bytes.NewReader(tc.in)), tc.max, tc.types, "client")
			_, _, err := r.next()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestMsgReaderLargeBodyGrowsWithData(t *testing.T) {
	// A 3 MiB body arrives whole; a 3 MiB announcement with 10 bytes behind it fails
	// without the reader having allocated the announced size.
	body := bytes.Repeat([]byte("x"), 3<<20)
	r := newMsgReader(bufio.NewReader(bytes.NewReader(msg('d', body))), 8<<20, frontendTypes, "client")
	typ, got, err := r.next()
	if err != nil || typ != 'd' || !bytes.Equal(got, body) {
		t.Fatalf("got %q, %d bytes, %v", typ, len(got), err)
	}
	short := append([]byte{'d'}, i32(4+3<<20)...)
	short = append(short, "0123456789"...)
	got, err = readBody(bytes.NewReader(short[5:]), nil, 3<<20)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want unexpected EOF", err)
	}
	if cap(got) > 2*smallBody {
		t.Errorf("allocated %d bytes for 10 received", cap(got))
	}
}

// malformedMessages are message bodies every decoder must refuse; they also seed
// FuzzFraming.
var malformedMessages = []struct {
	name string
	typ  byte
	body []byte
	want string
}{
	{"query without terminator", 'Q', []byte("SELECT 1"), "unterminated"},
	{"query with trailing bytes", 'Q', append(cs("SELECT 1"), 'x'), "trailing"},
	{"query with embedded NUL", 'Q', append(cs("SELECT 1"), cs("DROP TABLE t")...), "trailing"},
	{"parse without query", 'P', cs("s"), "unterminated query string"},
	{"parse parameter types truncated", 'P', bytes.Join([][]byte{cs("s"), cs("SELECT $1"), u16(2), i32(23)}, nil), "truncated parameter types"},
	{"parse trailing", 'P', bytes.Join([][]byte{cs("s"), cs("SELECT 1"), u16(0), {1}}, nil), "trailing"},
	{"bind negative parameter length", 'B', bytes.Join([][]byte{cs(""), cs(""), u16(0), u16(1), i32(-2), u16(0)}, nil), "negative parameter length"},
	{"bind parameter overruns", 'B', bytes.Join([][]byte{cs(""), cs(""), u16(0), u16(1), i32(100), {1, 2}}, nil), "truncated parameter"},
	{"bind bad result format", 'B', bytes.Join([][]byte{cs(""), cs(""), u16(0), u16(0), u16(1), u16(7)}, nil), "invalid result format 7"},
	{"bind result formats truncated", 'B', bytes.Join([][]byte{cs(""), cs(""), u16(0), u16(0), u16(3), u16(0)}, nil), "truncated result formats"},
	{"describe bad kind", 'D', append([]byte{'X'}, cs("")...), "invalid target kind"},
	{"describe empty", 'D', nil, "missing target kind"},
	{"close trailing", 'C', append(append([]byte{'S'}, cs("a")...), 'b'), "trailing"},
	{"execute short", 'E', append(cs("p"), 0, 0), "missing row limit"},
	{"function call bad format", 'F', bytes.Join([][]byte{i32(1), u16(0), u16(0), u16(9)}, nil), "invalid result format 9"},
	{"sync with body", 'S', []byte{1}, "unexpected bytes"},
	{"row description too many fields", 'T', u16(1000), "cannot fit"},
	{"row description bad format", 'T', bytes.Join([][]byte{u16(1), cs("a"), i32(0), u16(0), i32(23), u16(4), i32(-1), u16(3)}, nil), "invalid format 3"},
	{"ready bad status", 'Z', []byte{'X'}, "invalid transaction status"},
	{"error fields unterminated", 'E', []byte{'M', 'x'}, "unterminated field value"},
	{"error fields missing end", 'E', append([]byte{'M'}, cs("x")...), "missing field code"},
	{"parameter status trailing", 'S', append(append(cs("a"), cs("b")...), 'c'), "trailing"},
	{"backend key short", 'K', i32(1), "missing secret key"},
	{"copy response bad format", 'G', []byte{2, 0, 0}, "invalid overall format"},
	{"notification unterminated", 'A', append(i32(1), 'c'), "unterminated channel"},
	{"startup unterminated", 0, append(i32(protocolVersion30), "user"...), "unterminated parameter name"},
	{"startup duplicate", 0, bytes.Join([][]byte{i32(protocolVersion30), cs("user"), cs("a"), cs("user"), cs("b"), {0}}, nil), "duplicate parameter"},
	{"startup empty name", 0, bytes.Join([][]byte{i32(protocolVersion30), cs(""), cs("a"), {0}}, nil), "empty parameter name"},
	{"startup missing terminator", 0, bytes.Join([][]byte{i32(protocolVersion30), cs("user"), cs("a")}, nil), "unterminated parameter name"},
}

func TestDecodersMalformed(t *testing.T) {
	for _, tc := range malformedMessages {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeAny(tc.typ, tc.body, serverMessage(tc.name))
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want a protocol error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// serverMessage tells the server's messages in malformedMessages by their names.
func serverMessage(name string) bool {
	for _, p := range []string{"row", "ready", "error", "parameter status", "backend", "copy", "notification"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func TestDecodersWellFormed(t *testing.T) {
	b, err := decodeBind(bytes.Join([][]byte{cs("p"), cs("s"), u16(1), u16(1), u16(2), i32(-1), i32(2), []byte("hi"), u16(2), u16(0), u16(1)}, nil))
	if err != nil || b.portal != "p" || b.stmt != "s" || len(b.resultFormats) != 2 || b.resultFormats[1] != 1 {
		t.Errorf("got %+v, %v", b, err)
	}
	st, err := decodeStartup(bytes.Join([][]byte{i32(protocolVersion30), cs("user"), cs("app"), cs("database"), cs("shop"), {0}}, nil))
	if err != nil || len(st.params) != 2 || st.params[1] != [2]string{"database", "shop"} {
		t.Errorf("got %+v, %v", st, err)
	}
	fields := []fieldDesc{{name: "a", tableOID: 1, attnum: 2, typeOID: 23, typeSize: 4, typmod: -1, format: 1}}
	got, err := decodeRowDescription(appendRowDescription(nil, fields)[5:])
	if err != nil || len(got) != 1 || got[0] != fields[0] {
		t.Errorf("got %+v, %v", got, err)
	}
}

// decodeAny decodes body as a message of typ from the client (or, with server set, from
// the server); typ 0 is a startup packet.
func decodeAny(typ byte, body []byte, server bool) error {
	var err error
	if typ == 0 {
		_, err = decodeStartup(body)
		return err
	}
	if server {
		switch typ {
		case 'T':
			_, err = decodeRowDescription(body)
		case 'E', 'N':
			_, err = decodeErrorFields(typ, body)
		case 'C':
			_, err = decodeCommandComplete(body)
		case 'Z':
			_, err = decodeReadyForQuery(body)
		case 'S':
			_, _, err = decodeParameterStatus(body)
		case 'K':
			_, _, err = decodeBackendKeyData(body)
		case 'A':
			_, _, _, err = decodeNotification(body)
		case 'G', 'H', 'W':
			err = checkCopyResponse(typ, body)
		case 'D':
			c := cursor{b: body}
			n := c.u16("count")
			for i := 0; i < n && c.fail == ""; i++ {
				c.value("value")
			}
			err = c.done("server", typ)
		}
		return err
	}
	switch typ {
	case 'Q':
		_, err = decodeQuery(body)
	case 'P':
		_, err = decodeParse(body)
	case 'B':
		_, err = decodeBind(body)
	case 'D', 'C':
		_, err = decodeTarget(typ, body)
	case 'E':
		_, err = decodeExecute(body)
	case 'F':
		_, _, err = decodeFunctionCall(body)
	case 'S', 'H', 'X', 'c':
		err = checkEmpty("client", typ, body)
	}
	return err
}

// FuzzFraming feeds arbitrary bytes to the framing and every decoder, from both sides,
// and to the row masker: they may fail, never panic, and never accept a message whose
// length lies.
func FuzzFraming(f *testing.F) {
	f.Add(false, msg('Q', cs("SELECT 1")))
	f.Add(false, bytes.Join([][]byte{msg('P', cs(""), cs("SELECT $1"), u16(1), i32(23)), msg('B', cs(""), cs(""), u16(0), u16(1), i32(1), []byte("1"), u16(1), u16(1)), msg('E', cs(""), i32(0)), msg('S')}, nil))
	f.Add(true, bytes.Join([][]byte{msg('T', u16(1), cs("a"), i32(0), u16(0), i32(25), u16(0xffff), i32(-1), u16(0)), msg('D', u16(1), i32(19), []byte("4111 1111 1111 1111")), msg('C', cs("SELECT 1")), msg('Z', []byte{'I'})}, nil))
	f.Add(true, msg('E', []byte{'S'}, cs("ERROR"), []byte{'M'}, cs("boom"), []byte{0}))
	f.Add(false, []byte{'Q', 0x7f, 0xff, 0xff, 0xff})
	f.Add(true, msg('D', u16(2), i32(-1), i32(-5)))
	f.Add(false, bytes.Join([][]byte{i32(protocolVersion30), cs("user"), cs("app"), {0}}, nil))
	for _, tc := range malformedMessages {
		if tc.typ == 0 {
			f.Add(false, tc.body)
		} else {
			f.Add(serverMessage(tc.name), msg(tc.typ, tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, server bool, data []byte) {
		_, _ = decodeStartup(data)
		types, side := frontendTypes, "client"
		if server {
			types, side = backendTypes, "server"
		}
		r := newMsgReader(bufio.NewReader(bytes.NewReader(data)), 1<<16, types, side)
		s := &session{cfg: &Config{MaskValue: luhnMask, MaskColumn: func(c string) bool { return c == "a" }}}
		for {
			typ, body, err := r.next()
			if err != nil {
				return
			}
			if len(body) > 1<<16 {
				t.Fatalf("body of %d bytes over the limit", len(body))
			}
			_ = decodeAny(typ, body, server)
			if server && typ == 'D' {
				d := s.newDesc([]fieldDesc{{name: "a"}, {name: "b", format: 1, typeOID: oidNumeric}, {name: "c"}}, nil, nil)
				run := &running{desc: d}
				if out, err := s.maskRow(run, body); err == nil && out != nil {
					if err := decodeAny('D', out[5:], true); err != nil {
						t.Fatalf("masked row is malformed: %v", err)
					}
				}
			}
			if server && (typ == 'E' || typ == 'N') {
				out := s.maskErrorFields(typ, body)
				if err := decodeAny(typ, out[5:], true); err != nil {
					t.Fatalf("masked %c is malformed: %v", typ, err)
				}
			}
		}
	})
}
