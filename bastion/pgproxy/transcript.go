package pgproxy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The transcript reads like a psql session: a prompt with the statement, up to
// TranscriptRows rows of its (masked) result, and its outcome, with CRLF line ends and
// every outside string passed through clean so a replay cannot be attacked with escape
// sequences.
//
//	shop=> SELECT id, card FROM orders
//	id | card
//	1 | ********
//	(1 row, 0.412 ms)
//	shop=> DROP TABLE orders
//	BLOCKED: bastion: statement blocked by rule "no-drop"
//
// A statement's lines are collected in the backend loop's buffer and written in one
// Write when it completes (or when the buffer grows past transcriptChunk), so the
// recorder sees one event per statement.

// maxTranscriptValue bounds one value in a transcript row.
const maxTranscriptValue = 256

// transcriptChunk is the size at which buffered transcript lines are written early.
const transcriptChunk = 16 << 10

// transcript writes text (from either loop) to the Transcript writer.
func (s *session) transcript(text string) error {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if _, err := s.cfg.Transcript.Write([]byte(text)); err != nil {
		return fmt.Errorf("%w: %v", ErrTranscript, err)
	}
	return nil
}

// flushTranscript writes the backend loop's buffered lines.
func (s *session) flushTranscript() error {
	if len(s.tbuf) == 0 {
		return nil
	}
	s.tmu.Lock()
	_, err := s.cfg.Transcript.Write(s.tbuf)
	s.tmu.Unlock()
	if cap(s.tbuf) > 4*transcriptChunk {
		s.tbuf = nil
	} else {
		s.tbuf = s.tbuf[:0]
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTranscript, err)
	}
	return nil
}

// promptLine renders "db=> SQL\r\n", continuation lines with "db-> ", the SQL masked
// (a refused or held statement's too: a card number typed in SQL that does not parse).
func (s *session) promptLine(sql string) string {
	return string(s.appendPrompt(nil, s.maskedText(sql)))
}

// maskedText is text that goes to the transcript or the audit log, through MaskValue.
func (s *session) maskedText(text string) string {
	if out, masked := s.maskValue([]byte(text)); masked {
		return string(out)
	}
	return text
}

func (s *session) appendPrompt(dst []byte, sql string) []byte {
	db := clean(s.startup.Database)
	sql = strings.TrimSpace(sql)
	for first := true; ; first = false {
		line, rest, more := strings.Cut(sql, "\n")
		dst = append(dst, db...)
		if first {
			dst = append(dst, "=> "...)
		} else {
			dst = append(dst, "-> "...)
		}
		dst = appendClean(dst, strings.TrimSuffix(line, "\r"))
		dst = append(dst, '\r', '\n')
		if !more {
			return dst
		}
		sql = rest
	}
}

func (s *session) beginTranscript(r *running) {
	if r.begun {
		return
	}
	r.begun = true
	if r.run == nil {
		s.tbuf = s.appendPrompt(s.tbuf, "(statement unknown to the bastion)")
		return
	}
	// A card number in a WHERE clause is stored masked too.
	s.tbuf = s.appendPrompt(s.tbuf, s.maskedText(r.run.st.SQL))
}

// transcriptRow adds one result row (a DataRow body, already masked).
func (s *session) transcriptRow(r *running, row []byte) error {
	s.beginTranscript(r)
	d := r.desc
	if r.tRows == 0 && d != nil {
		for i, f := range d.fields {
			if i > 0 {
				s.tbuf = append(s.tbuf, " | "...)
			}
			s.tbuf = appendClean(s.tbuf, f.name)
		}
		s.tbuf = append(s.tbuf, '\r', '\n')
	}
	r.tRows++
	c := cursor{b: row}
	n := c.u16("value count")
	for i := 0; i < n && c.fail == ""; i++ {
		v, null := c.value("value")
		if i > 0 {
			s.tbuf = append(s.tbuf, " | "...)
		}
		switch {
		case null:
		case d != nil && i < len(d.formats) && d.formats[i] == 1:
			s.tbuf = append(s.tbuf, "<binary, "...)
			s.tbuf = strconv.AppendInt(s.tbuf, int64(len(v)), 10)
			s.tbuf = append(s.tbuf, " bytes>"...)
		case len(v) > maxTranscriptValue:
			s.tbuf = appendClean(s.tbuf, string(v[:maxTranscriptValue]))
			s.tbuf = append(s.tbuf, "..."...)
		default:
			s.tbuf = appendCleanBytes(s.tbuf, v)
		}
	}
	s.tbuf = append(s.tbuf, '\r', '\n')
	if len(s.tbuf) > transcriptChunk {
		return s.flushTranscript()
	}
	return nil
}

// transcriptOutcome adds a statement's outcome line and writes the statement's lines.
func (s *session) transcriptOutcome(r *running, ev Event) error {
	s.beginTranscript(r)
	b := s.tbuf
	if r.withheld > 0 {
		b = append(b, '(')
		b = strconv.AppendInt(b, int64(r.withheld), 10)
		b = append(b, " row(s) withheld: masking failed)\r\n"...)
	}
	switch {
	case ev.Outcome == OutcomeError:
		b = append(b, "ERROR:  "...)
		b = appendClean(b, ev.Message)
		b = append(b, " (SQLSTATE "...)
		b = appendClean(b, ev.SQLState)
		b = append(b, ", "...)
		b = appendDuration(b, ev.Duration)
		b = append(b, ")\r\n"...)
	case strings.HasPrefix(ev.Tag, "SELECT ") || strings.HasPrefix(ev.Tag, "FETCH "):
		b = append(b, '(')
		b = strconv.AppendInt(b, ev.Rows, 10)
		if ev.Rows == 1 {
			b = append(b, " row, "...)
		} else {
			b = append(b, " rows, "...)
		}
		b = appendDuration(b, ev.Duration)
		b = append(b, ")\r\n"...)
	case ev.Tag == "":
		b = append(b, "(done, "...)
		b = appendDuration(b, ev.Duration)
		b = append(b, ")\r\n"...)
	default:
		b = appendClean(b, ev.Tag)
		b = append(b, " ("...)
		b = appendDuration(b, ev.Duration)
		b = append(b, ")\r\n"...)
	}
	s.tbuf = b
	return s.flushTranscript()
}

func appendDuration(b []byte, d time.Duration) []byte {
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', 3, 64)
	return append(b, " ms"...)
}

func appendClean(dst []byte, s string) []byte {
	return append(dst, clean(s)...)
}

// appendCleanBytes is appendClean without converting clean input to a string.
func appendCleanBytes(dst []byte, v []byte) []byte {
	for _, c := range v {
		if c < 0x20 && c != '\t' || c >= 0x7f {
			return append(dst, clean(string(v))...)
		}
	}
	return append(dst, v...)
}
