package pgproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ColumnMask replaces every text value of a masked column.
const ColumnMask = "********"

const (
	oidInt8    = 20
	oidText    = 25
	oidNumeric = 1700
)

// resultDesc is a result's columns as the masker needs them.
type resultDesc struct {
	fields    []fieldDesc
	formats   []int16 // 0 text, 1 binary
	masked    []bool  // MaskColumn said so
	anyMasked bool
}

// newDesc builds a result description for run's statement; bindFormats, when not nil,
// are a Bind's result formats (one for all columns, or one per column), which apply to
// a statement's description (whose own formats are unknown).
func (s *session) newDesc(fields []fieldDesc, bindFormats []int16, run *stmtRun) *resultDesc {
	d := &resultDesc{fields: fields, formats: make([]int16, len(fields)), masked: make([]bool, len(fields))}
	var taints []taint
	if s.cfg.Masks != nil {
		taints = s.columnTaints(run, fields)
	}
	for i, f := range fields {
		switch {
		case bindFormats == nil:
			d.formats[i] = f.format
		case len(bindFormats) == 1:
			d.formats[i] = bindFormats[0]
		case i < len(bindFormats):
			d.formats[i] = bindFormats[i]
		}
		if s.cfg.MaskColumn != nil && s.maskColumn(f.name) || taints != nil && taints[i].dirty() {
			d.masked[i], d.anyMasked = true, true
		}
	}
	return d
}

// clientFields is the description the client sees: masked columns become text, so that
// the mask string decodes.
func (d *resultDesc) clientFields() []fieldDesc {
	out := make([]fieldDesc, len(d.fields))
	copy(out, d.fields)
	for i := range out {
		if d.masked[i] {
			out[i].typeOID, out[i].typeSize, out[i].typmod = oidText, -1, -1
		}
	}
	return out
}

// maskColumn asks MaskColumn; a panic masks the column.
func (s *session) maskColumn(name string) (masked bool) {
	defer func() {
		if r := recover(); r != nil {
			masked = true
		}
	}()
	return s.cfg.MaskColumn(name)
}

// callMaskValue asks MaskValue, turning a panic into an error.
func (s *session) callMaskValue(v []byte) (out []byte, masked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, masked, err = nil, false, fmt.Errorf("value masking failed: %v", r)
		}
	}()
	out, masked = s.cfg.MaskValue(v)
	return out, masked, nil
}

// maskValue masks a standalone value (notification payload, COPY data, function result);
// when masking fails the whole value is masked.
func (s *session) maskValue(v []byte) ([]byte, bool) {
	if s.cfg.MaskValue == nil {
		return nil, false
	}
	out, masked, err := s.callMaskValue(v)
	if err != nil {
		return []byte(ColumnMask), true
	}
	return out, masked
}

type cellRepl struct {
	i    int
	v    []byte
	null bool
}

// maskRow masks one DataRow. It returns the rewritten message, or nil when the row goes
// through unchanged. An error means the row must be withheld.
func (s *session) maskRow(r *running, body []byte) ([]byte, error) {
	if s.cfg.MaskColumn == nil && s.cfg.MaskValue == nil {
		return nil, nil
	}
	d := r.desc
	if d == nil {
		return nil, errors.New("the row's columns are unknown")
	}
	c := cursor{b: body}
	n := c.u16("value count")
	if c.fail == "" && n != len(d.fields) {
		return nil, fmt.Errorf("the row has %d values, its description %d columns", n, len(d.fields))
	}
	var repls []cellRepl
	nulled := 0
	for i := 0; i < n && c.fail == ""; i++ {
		v, null := c.value("value")
		if null || c.fail != "" {
			continue
		}
		text := d.formats[i] == 0
		switch {
		case d.masked[i] && text:
			repls = append(repls, cellRepl{i: i, v: []byte(ColumnMask)})
		case d.masked[i]:
			repls = append(repls, cellRepl{i: i, null: true})
			nulled++
		case s.cfg.MaskValue == nil:
		case text:
			out, masked, err := s.callMaskValue(v)
			if err != nil {
				return nil, err
			}
			if masked {
				repls = append(repls, cellRepl{i: i, v: out})
			}
		default:
			masked, err := s.binaryNeedsMask(d.fields[i].typeOID, v)
			if err != nil {
				return nil, err
			}
			if masked {
				repls = append(repls, cellRepl{i: i, null: true})
				nulled++
			}
		}
	}
	if err := c.done("server", 'D'); err != nil {
		return nil, err
	}
	if len(repls) == 0 {
		return nil, nil
	}
	r.nulled += nulled
	out, start := beginMsg(make([]byte, 0, len(body)+16), 'D')
	out = binary.BigEndian.AppendUint16(out, uint16(n))
	c = cursor{b: body}
	c.u16("value count")
	for i := 0; i < n; i++ {
		v, null := c.value("value")
		if len(repls) > 0 && repls[0].i == i {
			v, null = repls[0].v, repls[0].null
			repls = repls[1:]
		}
		if null {
			out = binary.BigEndian.AppendUint32(out, 0xffffffff)
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	return endMsg(out, start), nil
}

// binaryNeedsMask runs the value detector over a binary cell: its raw bytes (text-like
// types, bytea, json, arrays and records embed their text as is) and, for int8 and
// numeric, its decimal form.
func (s *session) binaryNeedsMask(oid uint32, v []byte) (bool, error) {
	_, masked, err := s.callMaskValue(v)
	if err != nil || masked {
		return masked, err
	}
	var dec string
	switch oid {
	case oidInt8:
		if len(v) == 8 {
			dec = strconv.FormatInt(int64(binary.BigEndian.Uint64(v)), 10)
		}
	case oidNumeric:
		dec = numericText(v)
	}
	if dec == "" {
		return false, nil
	}
	_, masked, err = s.callMaskValue([]byte(dec))
	return masked, err
}

// numericText renders a binary numeric's integer part (enough for the value detector);
// "" when malformed.
func numericText(v []byte) string {
	c := cursor{b: v}
	ndigits := c.u16("ndigits")
	weight := int(c.i16("weight"))
	sign := c.u16("sign")
	c.u16("dscale")
	if c.fail != "" || len(c.b) != 2*ndigits || ndigits > 1000 || weight > 1000 {
		return ""
	}
	if sign == 0xC000 {
		return "NaN"
	}
	var b strings.Builder
	if sign == 0x4000 {
		b.WriteByte('-')
	}
	if weight < 0 {
		b.WriteByte('0')
	}
	for i := 0; i <= weight; i++ {
		d := 0
		if i < ndigits {
			d = int(binary.BigEndian.Uint16(c.b[2*i:]))
		}
		if i == 0 {
			b.WriteString(strconv.Itoa(d))
		} else {
			fmt.Fprintf(&b, "%04d", d)
		}
	}
	return b.String()
}

// structuralErrorField reports whether an ErrorResponse/NoticeResponse field is one the
// server fills from its own code, never from data: severity, SQLSTATE, positions, and
// the server's source file, line and routine. Every other field can carry a value:
// details quote values ("Key (card)=(4111...) already exists"), and RAISE ... USING
// sets schema, table, column, datatype and constraint names (s, t, c, d, n) to any
// text, as it does the message, detail and hint.
func structuralErrorField(code byte) bool {
	switch code {
	case 'S', 'V', 'C', 'P', 'p', 'F', 'L', 'R':
		return true
	}
	return false
}

// protocolParams are the reported settings whose values drivers act on (decoding,
// quoting, dates) and the server accepts only from a fixed grammar; a masked value
// there would break the client, and cannot carry a value of free text.
var protocolParams = map[string]bool{
	"client_encoding": true, "server_encoding": true, "DateStyle": true, "IntervalStyle": true,
	"TimeZone": true, "standard_conforming_strings": true, "integer_datetimes": true,
	"server_version": true, "is_superuser": true, "in_hot_standby": true,
	"default_transaction_read_only": true, "scram_iterations": true,
}

// maskParam masks a ParameterStatus value: set_config('application_name', card, false)
// reports any value there. With withheld (the statement behind it has its messages
// withheld), a setting of free text is masked whatever its value; otherwise it goes
// through MaskValue. It returns false when the value goes out as is.
func (s *session) maskParam(name, value string, withheld bool) (string, bool) {
	if withheld && !protocolParams[name] {
		return ColumnMask, value != ColumnMask
	}
	if out, masked := s.maskValue([]byte(value)); masked {
		return string(out), true
	}
	return "", false
}

// maskErrorFields masks every field of an ErrorResponse or NoticeResponse that can carry
// a value, field codes PostgreSQL may add later included.
func (s *session) maskErrorFields(typ byte, body []byte) []byte {
	fields, err := decodeErrorFields(typ, body)
	if err != nil {
		return errorMsg(typ, "ERROR", "XX000", "bastion: the server sent a malformed message", "", "")
	}
	if s.cfg.MaskValue == nil {
		return appendRaw(nil, typ, body)
	}
	for i, f := range fields {
		if structuralErrorField(f.code) {
			continue
		}
		if out, masked := s.maskValue([]byte(f.value)); masked {
			fields[i].value = string(out)
		}
	}
	return appendErrorFields(nil, typ, fields)
}
