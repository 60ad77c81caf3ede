package pgproxy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
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
		s.maskOpenNames(run, fields, taints)
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

// maskFieldNames masks the result column names of a RowDescription in place, as the
// values: a name is any text SQL built at run time chose (a cursor opened on
// format('SELECT 1 AS %I', card), a statement prepared so), and the client and the
// transcript show it. It reports whether a name changed.
func (s *session) maskFieldNames(fields []fieldDesc) bool {
	changed := false
	for i := range fields {
		if out, masked := s.maskValue([]byte(fields[i].name)); masked {
			fields[i].name = string(out)
			changed = true
		}
	}
	return changed
}

// maskOpenNames masks, with column masks, the name of each result column whose source
// cannot be known and whose name the analysis did not see either (result.openNames): a
// DO block may open a cursor on format('SELECT 1 AS %I', v), v read from a masked column
// by SQL built at run time, whose values are masked as unknowable but whose column is
// named after v.
func (s *session) maskOpenNames(run *stmtRun, fields []fieldDesc, taints []taint) {
	var open []bool
	if run != nil && run.lin != nil && run.lin.out != nil {
		open = run.lin.out.openNames(len(fields))
	}
	for i := range fields {
		if (open == nil || open[i]) && taints[i].unknown != "" {
			fields[i].name = ColumnMask
		}
	}
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

// callMaskValue asks MaskValue, turning a panic into an error. It also masks what
// PostgreSQL's text output shows in forms the detector does not read (hiddenForms).
func (s *session) callMaskValue(v []byte) (out []byte, masked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, masked, err = nil, false, fmt.Errorf("value masking failed: %v", r)
		}
	}()
	out, masked = s.cfg.MaskValue(v)
	cur := v
	if masked {
		cur = out
	}
	if o, ok := s.maskHiddenForms(cur, 0); ok {
		out, masked = o, true
	}
	return out, masked, nil
}

// byteaHex is bytea's text output (hex format, PostgreSQL's default): a card number
// stored or cast as bytea shows as \x34313131… (in arrays, records, JSON and COPY text
// with its backslash doubled). floatExp is float4's and float8's output of a large
// value: 4111111111111111::float8 is 4.111111111111111e+15, every digit there.
var (
	byteaHex = regexp.MustCompile(`\\x((?:[0-9a-fA-F]{2})+)`)
	floatExp = regexp.MustCompile(`[0-9]+(?:\.[0-9]+)?e\+[0-9]+`)
)

// maxHiddenDepth bounds hex inside hex.
const maxHiddenDepth = 3

// maskHiddenForms masks card numbers (and what else MaskValue detects) that text output
// shows otherwise than as digits, where the binary form of the same value is masked
// (binaryNeedsMask): the bytes of a bytea's hex output, and the integer value of a
// float's exponent form. A hex run whose bytes MaskValue masks is replaced by the hex of
// the masked bytes (still a valid bytea); a float whose integer value it masks, by that
// value masked. It reports whether anything changed.
func (s *session) maskHiddenForms(v []byte, depth int) ([]byte, bool) {
	changed := false
	if bytes.Contains(v, []byte(`\x`)) && depth < maxHiddenDepth {
		v = byteaHex.ReplaceAllFunc(v, func(m []byte) []byte {
			raw, err := hex.DecodeString(string(m[2:]))
			if err != nil || len(raw) < 13 {
				return m
			}
			out, masked := s.cfg.MaskValue(raw)
			if !masked {
				out = raw
			}
			if o, ok := s.maskHiddenForms(out, depth+1); ok {
				out, masked = o, true
			}
			if !masked {
				return m
			}
			changed = true
			return append([]byte(`\x`), hex.EncodeToString(out)...)
		})
	}
	if bytes.Contains(v, []byte("e+")) {
		v = floatExp.ReplaceAllFunc(v, func(m []byte) []byte {
			f, err := strconv.ParseFloat(string(m), 64)
			if err != nil {
				return m
			}
			dec := floatInteger(f)
			if dec == "" {
				return m
			}
			out, masked := s.cfg.MaskValue([]byte(dec))
			if !masked {
				return m
			}
			changed = true
			return out
		})
	}
	return v, changed
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

// binaryNeedsMask reports whether a binary cell of type oid must be masked: the value
// detector matches its raw bytes (text-like types embed their text as is) or the decimal
// form of a number in it, at the top level or inside an array, record or range. A value
// the proxy cannot take apart, of any other type (a domain, a named composite, a type of
// an extension: its OID alone does not say how its bytes hold a number), is masked: its
// binary form can carry a card number the detector would never see ("SELECT
// ROW(card_num, 0)", "SELECT card_num::cardnum").
func (s *session) binaryNeedsMask(oid uint32, v []byte) (bool, error) {
	_, masked, err := s.callMaskValue(v)
	if err != nil || masked {
		return masked, err
	}
	return s.binaryDecodedNeedsMask(oid, v, 0)
}

// Binary type OIDs the masker takes apart (pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidJSON        = 114
	oidXML         = 142
	oidFloat4      = 700
	oidFloat8      = 701
	oidUnknown     = 705
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidTimetz      = 1266
	oidRecord      = 2249
	oidUUID        = 2950
	oidJSONB       = 3802
	oidXID8        = 5069
	oidTID         = 27
	oidXID         = 28
	oidCID         = 29
	oidMacaddr8    = 774
	oidMacaddr     = 829
	oidCIDR        = 650
	oidInet        = 869
	oidJSONPath    = 4072
)

// textLikeOIDs send their text (jsonb after a version byte): the raw bytes are the
// detector's input.
var textLikeOIDs = map[uint32]bool{
	oidBytea: true, oidChar: true, oidName: true, oidText: true, oidJSON: true, oidXML: true,
	oidUnknown: true, oidBpchar: true, oidVarchar: true, oidJSONB: true, oidJSONPath: true,
}

// opaqueSafeOIDs are fixed-size types whose text form cannot hold a card number's digits
// (booleans, dates and times, intervals, 32-bit ids, a MAC address's 12 hex digits):
// their binary form shows no more.
var opaqueSafeOIDs = map[uint32]bool{
	oidBool: true, oidDate: true, oidTime: true, oidTimetz: true, oidTimestamp: true,
	oidTimestamptz: true, oidInterval: true, oidTID: true, oidXID: true, oidCID: true, oidMacaddr: true,
}

// arrayElemOIDs are the array types of the types above and their element types. An
// array's binary form names its element type too; the two must agree.
var arrayElemOIDs = map[uint32]uint32{
	1000: oidBool, 1001: oidBytea, 1002: oidChar, 1003: oidName, 1005: oidInt2, 1007: oidInt4,
	1009: oidText, 1014: oidBpchar, 1015: oidVarchar, 1016: oidInt8, 1021: oidFloat4,
	1022: oidFloat8, 1028: oidOID, 1115: oidTimestamp, 1182: oidDate, 1183: oidTime,
	1185: oidTimestamptz, 1187: oidInterval, 1231: oidNumeric, 1270: oidTimetz, 143: oidXML,
	199: oidJSON, 2287: oidRecord, 2951: oidUUID, 3807: oidJSONB, 271: oidXID8, 1010: oidTID,
	1011: oidXID, 1012: oidCID, 1040: oidMacaddr, 775: oidMacaddr8, 651: oidCIDR, 1041: oidInet,
	4073: oidJSONPath,
}

// rangeSubOIDs are the built-in range types and their subtypes; multirangeOIDs the
// built-in multirange types and their range types.
var (
	rangeSubOIDs = map[uint32]uint32{
		3904: oidInt4, 3926: oidInt8, 3906: oidNumeric, 3908: oidTimestamp, 3910: oidTimestamptz, 3912: oidDate,
	}
	multirangeOIDs = map[uint32]uint32{
		4451: 3904, 4536: 3926, 4532: 3906, 4533: 3908, 4534: 3910, 4535: 3912,
	}
)

// maxBinaryDepth bounds arrays of records of ranges...
const maxBinaryDepth = 8

// binaryDecodedNeedsMask is binaryNeedsMask after the raw bytes were checked: it takes
// the value apart by its type. Malformed values are masked.
func (s *session) binaryDecodedNeedsMask(oid uint32, v []byte, depth int) (bool, error) {
	if depth > maxBinaryDepth {
		return true, nil
	}
	check := func(text string) (bool, error) {
		_, masked, err := s.callMaskValue([]byte(text))
		return masked, err
	}
	switch {
	case textLikeOIDs[oid] || opaqueSafeOIDs[oid]:
		return false, nil
	case oid == oidInt2 && len(v) == 2:
		return false, nil
	case (oid == oidInt4 || oid == oidOID) && len(v) == 4:
		return check(strconv.FormatInt(int64(binary.BigEndian.Uint32(v)), 10))
	case oid == oidInt8 && len(v) == 8:
		return check(strconv.FormatInt(int64(binary.BigEndian.Uint64(v)), 10))
	case oid == oidXID8 && len(v) == 8:
		return check(strconv.FormatUint(binary.BigEndian.Uint64(v), 10))
	case oid == oidNumeric:
		dec := numericText(v)
		if dec == "" {
			return true, nil
		}
		return check(dec)
	case oid == oidFloat4 && len(v) == 4:
		return check(floatInteger(float64(math.Float32frombits(binary.BigEndian.Uint32(v)))))
	case oid == oidFloat8 && len(v) == 8:
		return check(floatInteger(math.Float64frombits(binary.BigEndian.Uint64(v))))
	case oid == oidUUID && len(v) == 16:
		h := hex.EncodeToString(v)
		return check(h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:])
	case oid == oidMacaddr8 && len(v) == 8:
		h := hex.EncodeToString(v)
		parts := make([]string, 8)
		for i := range parts {
			parts[i] = h[2*i : 2*i+2]
		}
		return check(strings.Join(parts, ":"))
	case oid == oidInet || oid == oidCIDR:
		// inet_send: family, prefix bits, is_cidr, address length, address.
		if len(v) < 4 || int(v[3]) != len(v)-4 {
			return true, nil
		}
		addr, ok := netip.AddrFromSlice(v[4:])
		if !ok {
			return true, nil
		}
		return check(addr.String() + "/" + strconv.Itoa(int(v[1])))
	case oid == oidRecord:
		return s.recordNeedsMask(v, depth)
	}
	if elem, ok := arrayElemOIDs[oid]; ok {
		return s.arrayNeedsMask(elem, v, depth)
	}
	if sub, ok := rangeSubOIDs[oid]; ok {
		return s.rangeNeedsMask(sub, v, depth)
	}
	if rng, ok := multirangeOIDs[oid]; ok {
		c := cursor{b: v}
		n := c.i32("range count")
		for i := int32(0); i < n && c.fail == ""; i++ {
			r, null := c.value("range")
			if null || c.fail != "" {
				return true, nil
			}
			if masked, err := s.binaryDecodedNeedsMask(rng, r, depth+1); masked || err != nil {
				return masked, err
			}
		}
		return c.fail != "" || len(c.b) != 0, nil
	}
	return true, nil
}

// floatInteger is the decimal form of a float's integer value ("" when it has none a
// card number could be): 4111111111111111::float8 reads as 4.111111111111111e+15.
func floatInteger(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) < 1e9 || math.Abs(f) >= 1e20 {
		return ""
	}
	return strconv.FormatFloat(math.Trunc(f), 'f', 0, 64)
}

// arrayNeedsMask checks each element of a binary array (array_send: dimensions, flags,
// element type, each dimension's size and lower bound, then the elements).
func (s *session) arrayNeedsMask(elem uint32, v []byte, depth int) (bool, error) {
	c := cursor{b: v}
	ndim := c.i32("dimensions")
	c.i32("flags")
	if got := uint32(c.i32("element type")); c.fail != "" || got != elem || ndim < 0 || ndim > 6 {
		return true, nil
	}
	n := int64(1)
	for i := int32(0); i < ndim; i++ {
		size := c.i32("dimension size")
		c.i32("lower bound")
		if size < 0 {
			return true, nil
		}
		n *= int64(size)
		if n > int64(len(v)) {
			return true, nil
		}
	}
	if ndim == 0 {
		n = 0
	}
	for i := int64(0); i < n && c.fail == ""; i++ {
		e, null := c.value("element")
		if null || c.fail != "" {
			continue
		}
		if _, masked, err := s.callMaskValue(e); masked || err != nil {
			return masked, err
		}
		if masked, err := s.binaryDecodedNeedsMask(elem, e, depth+1); masked || err != nil {
			return masked, err
		}
	}
	return c.fail != "" || len(c.b) != 0, nil
}

// recordNeedsMask checks each field of a binary record (record_send: the field count,
// then each field's type and value).
func (s *session) recordNeedsMask(v []byte, depth int) (bool, error) {
	c := cursor{b: v}
	n := c.i32("field count")
	if n < 0 {
		return true, nil
	}
	for i := int32(0); i < n && c.fail == ""; i++ {
		oid := uint32(c.i32("field type"))
		f, null := c.value("field")
		if null || c.fail != "" {
			continue
		}
		if _, masked, err := s.callMaskValue(f); masked || err != nil {
			return masked, err
		}
		if masked, err := s.binaryDecodedNeedsMask(oid, f, depth+1); masked || err != nil {
			return masked, err
		}
	}
	return c.fail != "" || len(c.b) != 0, nil
}

// rangeNeedsMask checks the bounds of a binary range (range_send: flags, then each bound
// present as a length and value).
func (s *session) rangeNeedsMask(sub uint32, v []byte, depth int) (bool, error) {
	const empty, lbInf, ubInf, lbNull, ubNull = 0x01, 0x08, 0x10, 0x20, 0x40
	c := cursor{b: v}
	flags := c.u8("range flags")
	for _, absent := range []byte{empty | lbInf | lbNull, empty | ubInf | ubNull} {
		if flags&absent != 0 || c.fail != "" {
			continue
		}
		b, null := c.value("range bound")
		if null || c.fail != "" {
			return true, nil
		}
		if masked, err := s.binaryDecodedNeedsMask(sub, b, depth+1); masked || err != nil {
			return masked, err
		}
	}
	return c.fail != "" || len(c.b) != 0, nil
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
