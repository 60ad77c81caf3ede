package recorder

import (
	"slices"
	"unicode/utf8"
)

// appendEventJSON appends ev as json.Marshal encodes it, byte for byte (the audit
// chain hashes these bytes), without reflection: the audit log encodes one event per
// SQL statement and per command, and json.Marshal was most of that work.
// FuzzAuditEventJSON holds it to json.Marshal.
func appendEventJSON(dst []byte, ev *AuditEvent) ([]byte, error) {
	t, err := ev.Time.MarshalJSON()
	if err != nil {
		return nil, err
	}
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, ev.ID)
	dst = append(dst, `,"time":`...)
	dst = append(dst, t...)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, ev.Type)
	for _, f := range [...]struct{ name, v string }{
		{`,"user":`, ev.User}, {`,"issuer":`, ev.Issuer}, {`,"subject":`, ev.Subject},
		{`,"session_id":`, ev.SessionID}, {`,"target":`, ev.Target}, {`,"outcome":`, ev.Outcome},
		{`,"reason":`, ev.Reason},
	} {
		if f.v != "" {
			dst = append(dst, f.name...)
			dst = appendJSONString(dst, f.v)
		}
	}
	if len(ev.Fields) > 0 {
		keys := make([]string, 0, len(ev.Fields))
		for k := range ev.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, `,"fields":{`...)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, ev.Fields[k])
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

// appendJSONString quotes s as encoding/json does: HTML-safe (<, > and & escaped),
// invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
