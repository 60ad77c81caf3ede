package shellcmd

import (
	"errors"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// maxClosers bounds the closers CloseHereDocs appends.
const maxClosers = 64

// CloseHereDocs reads src, a text that holds a here-document operator
// (<<), as bash may once one of its lines ended a here-document that the
// parser here still reads as open. bash ends a here-document where this
// parser does not: at an empty line for an empty delimiter (<<”), at a
// delimiter joined from lines by a backslash-newline (E\ then OF), at
// `EOF)` inside $( ... ), at the delimiter even inside a $( that the body
// opened. The lines after that are commands to bash, and the commands
// before it run at once.
//
// open reports whether src is unfinished with a here-document still open.
// closed is src with each open here-document ended and the constructs
// around it closed (`)`, `"`, `fi`, ...): what bash would run now had it
// taken the last line for the end; ok is false when src cannot be closed
// that way (an empty delimiter, a construct the closers do not know): with
// open set, nothing then says what bash runs.
func CloseHereDocs(src string) (closed string, open, ok bool) {
	if !strings.Contains(src, "<<") {
		return "", false, false
	}
	text := src
	for range maxClosers {
		if len(text) > MaxInputBytes || checkComplexity(text) != nil {
			return "", open, false
		}
		_, err := parse(text)
		if err == nil {
			return text, open, true
		}
		var pe syntax.ParseError
		if !errors.As(err, &pe) {
			return "", open, false
		}
		msg := pe.Text
		switch {
		case strings.HasPrefix(msg, "unclosed here-document `") && strings.HasSuffix(msg, "`"):
			d := msg[len("unclosed here-document `") : len(msg)-1]
			open = true
			if d == "" || strings.ContainsAny(d, "\n") {
				// This parser never ends it; bash ends it at an empty line.
				return "", true, false
			}
			text += "\n" + d
		case !syntax.IsIncomplete(err):
			return "", open, false
		case strings.Contains(msg, "without closing quote `\"`"):
			text += `"`
		case strings.Contains(msg, "without closing quote \"`\""):
			text += "`"
		case strings.Contains(msg, "without closing quote `'`"):
			text += "'"
		case strings.Contains(msg, "` with `"):
			// reached EOF without matching `$(` with `)`
			i := strings.LastIndex(msg, "` with `")
			text += "\n" + strings.TrimSuffix(msg[i+len("` with `"):], "`")
		case strings.Contains(msg, " must end with `"):
			i := strings.LastIndex(msg, " must end with `")
			text += "\n" + strings.TrimSuffix(msg[i+len(" must end with `"):], "`")
		case strings.Contains(msg, "must be followed by `"):
			i := strings.LastIndex(msg, "must be followed by `")
			text += "\n" + strings.TrimSuffix(msg[i+len("must be followed by `"):], "`") + " :"
		case strings.Contains(msg, "must be followed by"):
			text += "\n:"
		default:
			return "", open, false
		}
	}
	return "", open, false
}
