package recorder

import "strconv"

// appendSessionJSON appends info as json.Marshal encodes it, byte for byte,
// without reflection: the flusher stores every moving session's record at
// every flush (its byte counts change), and at a thousand busy sessions
// json.Marshal was a twelfth of the flush. FuzzSessionJSON holds it to
// json.Marshal.
func appendSessionJSON(dst []byte, info *SessionInfo) ([]byte, error) {
	start, err := info.Start.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var end []byte
	if !info.End.IsZero() {
		if end, err = info.End.MarshalJSON(); err != nil {
			return nil, err
		}
	}
	str := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		dst = append(dst, name...)
		dst = appendJSONString(dst, v)
	}
	num := func(name string, v int64, omitEmpty bool) {
		if omitEmpty && v == 0 {
			return
		}
		dst = append(dst, name...)
		dst = strconv.AppendInt(dst, v, 10)
	}
	dst = append(dst, '{')
	str(`"id":`, info.ID, false)
	str(`,"kind":`, info.Kind, false)
	str(`,"user":`, info.User, false)
	str(`,"issuer":`, info.Issuer, true)
	str(`,"subject":`, info.Subject, true)
	str(`,"actor":`, info.Actor, true)
	str(`,"target":`, info.Target, false)
	str(`,"login":`, info.Login, true)
	str(`,"command":`, info.Command, true)
	str(`,"client_addr":`, info.ClientAddr, true)
	if info.CertSerial != 0 {
		dst = append(dst, `,"cert_serial":`...)
		dst = strconv.AppendUint(dst, info.CertSerial, 10)
	}
	num(`,"width":`, int64(info.Width), true)
	num(`,"height":`, int64(info.Height), true)
	str(`,"term":`, info.Term, true)
	dst = append(dst, `,"start":`...)
	dst = append(dst, start...)
	if end != nil {
		dst = append(dst, `,"end":`...)
		dst = append(dst, end...)
	}
	num(`,"exit_status":`, int64(info.ExitStatus), false)
	str(`,"exit_signal":`, info.ExitSignal, true)
	str(`,"reason":`, info.Reason, true)
	str(`,"status":`, info.Status, false)
	num(`,"bytes_in":`, info.BytesIn, false)
	num(`,"bytes_out":`, info.BytesOut, false)
	num(`,"events":`, info.Events, false)
	num(`,"chunks":`, info.Chunks, false)
	if info.Truncated {
		dst = append(dst, `,"truncated":true`...)
	}
	num(`,"stored_bytes":`, info.Stored, true)
	num(`,"compressed_bytes":`, info.Compressed, true)
	str(`,"error":`, info.Error, true)
	str(`,"replica":`, info.Replica, true)
	str(`,"replica_name":`, info.ReplicaName, true)
	str(`,"database":`, info.Database, true)
	num(`,"statements":`, info.Statements, true)
	num(`,"blocked":`, int64(info.Blocked), true)
	num(`,"approved":`, int64(info.Approved), true)
	num(`,"denied":`, int64(info.Denied), true)
	return append(dst, '}'), nil
}
