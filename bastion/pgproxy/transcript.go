package pgproxy

import (
	"fmt"
	"io"
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

// maxTranscriptValue bounds one value in a transcript row.
const maxTranscriptValue = 256

func (s *session) transcript(text string) error {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if _, err := io.WriteString(s.cfg.Transcript, text); err != nil {
		return fmt.Errorf("%w: %v", ErrTranscript, err)
	}
	return nil
}

// promptLine renders "db=> SQL\r\n", continuation lines with "db-> ".
func (s *session) promptLine(sql string) string {
	db := clean(s.startup.Database)
	lines := strings.Split(strings.ReplaceAll(strings.TrimSpace(sql), "\r\n", "\n"), "\n")
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			b.WriteString(db + "=> ")
		} else {
			b.WriteString(db + "-> ")
		}
		b.WriteString(clean(strings.TrimRight(l, "\r")))
		b.WriteString("\r\n")
	}
	return b.String()
}

func (s *session) beginTranscript(r *running) string {
	if r.begun {
		return ""
	}
	r.begun = true
	if r.run == nil {
		return s.promptLine("(statement unknown to the bastion)")
	}
	return s.promptLine(r.run.st.SQL)
}

// transcriptRow writes one result row (a DataRow body, already masked).
func (s *session) transcriptRow(r *running, row []byte) error {
	var b strings.Builder
	b.WriteString(s.beginTranscript(r))
	d := r.desc
	if r.tRows == 0 && d != nil {
		for i, f := range d.fields {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(clean(f.name))
		}
		b.WriteString("\r\n")
	}
	r.tRows++
	c := cursor{b: row}
	n := c.u16("value count")
	for i := 0; i < n && c.fail == ""; i++ {
		v, null := c.value("value")
		if i > 0 {
			b.WriteString(" | ")
		}
		switch {
		case null:
		case d != nil && i < len(d.formats) && d.formats[i] == 1:
			fmt.Fprintf(&b, "<binary, %d bytes>", len(v))
		default:
			t := string(v)
			if len(t) > maxTranscriptValue {
				t = t[:maxTranscriptValue] + "..."
			}
			b.WriteString(clean(t))
		}
	}
	b.WriteString("\r\n")
	return s.transcript(b.String())
}

// transcriptOutcome writes a statement's outcome line.
func (s *session) transcriptOutcome(r *running, ev Event) error {
	var b strings.Builder
	b.WriteString(s.beginTranscript(r))
	if r.withheld > 0 {
		fmt.Fprintf(&b, "(%d row(s) withheld: masking failed)\r\n", r.withheld)
	}
	dur := formatDuration(ev.Duration)
	switch {
	case ev.Outcome == OutcomeError:
		fmt.Fprintf(&b, "ERROR:  %s (SQLSTATE %s, %s)\r\n", clean(ev.Message), clean(ev.SQLState), dur)
	case strings.HasPrefix(ev.Tag, "SELECT ") || strings.HasPrefix(ev.Tag, "FETCH "):
		plural := "s"
		if ev.Rows == 1 {
			plural = ""
		}
		fmt.Fprintf(&b, "(%d row%s, %s)\r\n", ev.Rows, plural, dur)
	case ev.Tag == "":
		fmt.Fprintf(&b, "(done, %s)\r\n", dur)
	default:
		fmt.Fprintf(&b, "%s (%s)\r\n", clean(ev.Tag), dur)
	}
	return s.transcript(b.String())
}

func formatDuration(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000)
}
