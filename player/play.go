package player

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// Sentinel errors; Play wraps them.
var (
	// ErrOptions means an Options field has a value Play cannot use.
	ErrOptions = errors.New("player: invalid options")
	// ErrNotTerminal means MakeRaw was given a file descriptor that is not a terminal.
	ErrNotTerminal = errors.New("player: not a terminal")
)

// Playback constants.
const (
	// SeekStep is how far the arrow keys seek.
	SeekStep = 5 * time.Second
	// MinSpeed and MaxSpeed bound what the '+' and '-' keys reach (halving and
	// doubling). Options.Speed itself may be outside them.
	MinSpeed = 1.0 / 64
	MaxSpeed = 1024.0
	// maxMarkerRunes bounds how much of a marker label is shown.
	maxMarkerRunes = 200
	// maxMarkerList bounds how many markers the list after the replay
	// names; the rest are counted.
	maxMarkerList = 100
	// outBuffer is the size of the output buffer, flushed before every wait.
	outBuffer = 64 << 10
)

// Options controls Play. The zero value plays at real time, sanitised, without
// interactive controls.
type Options struct {
	// Speed scales time: 2 plays twice as fast. Zero means 1; it must otherwise be
	// positive and finite.
	Speed float64
	// IdleLimit caps every pause between events at this duration (after which
	// Speed applies). Zero means no cap; negative is an error.
	IdleLimit time.Duration
	// Raw passes the recorded output to the terminal unchanged. It is dangerous: a
	// recording can then set the viewer's clipboard, make the terminal type into
	// the viewer's shell, and so on. Off by default; markers are still sanitised.
	Raw bool
	// ShowMarkers shows each marker event ('m', e.g. a blocked command) as a dim
	// inline note "[bastion: LABEL]", and lists the markers shown once more
	// when the replay ends (see the package documentation). Off by default.
	ShowMarkers bool
	// Keys, when not nil, is read for interactive controls: space pauses and
	// resumes, the right and left arrows seek SeekStep forward and back, '.' steps
	// one event while paused, '+' and '-' double and halve the speed, 'q' or Ctrl-C
	// quits. The caller puts the terminal in raw mode (see MakeRaw). Play reads it
	// from a goroutine that ends when a Read returns an error; a Read that blocks
	// forever after Play returns keeps that goroutine alive.
	Keys io.Reader
	// StatusLine, with Keys, draws a status line (position, length, speed,
	// paused, the keys) on the terminal's last row while paused and for a
	// moment after each key, and ends the replay on a line of its own, so
	// the shell's prompt does not land on the replayed line.
	StatusLine bool
	// Limits bound what the asciicast decoder accepts from the recording. A zero
	// field means the decoder's default, except MaxEvents, which defaults to no
	// limit: playback streams, so memory does not grow with the number of events.
	Limits asciicast.Limits
	// Live says the source grows while it plays (a followed session, whose
	// reads wait for the next event): what is due is flushed to the output
	// before each read, not only before each pause.
	Live bool
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// After waits like time.After. Nil means time.After. With Now it lets tests
	// drive playback with a fake clock.
	After func(d time.Duration) <-chan time.Time

	// onWait, when set (by tests), is called each time Play is about to block.
	onWait func()
}

// Source is a recording that can be opened more than once, so that seeking
// backwards can replay it from the start.
type Source interface {
	// Open returns a new reader positioned at the start of the asciicast v2
	// recording. Play closes it.
	Open() (io.ReadCloser, error)
}

// SourceFunc adapts a function to the Source interface.
type SourceFunc func() (io.ReadCloser, error)

// Open calls f.
func (f SourceFunc) Open() (io.ReadCloser, error) { return f() }

// FileSource returns a Source reading the asciicast v2 file at path.
func FileSource(path string) Source {
	return SourceFunc(func() (io.ReadCloser, error) { return os.Open(path) })
}

// Play plays the recording from src to out with its original timing, scaled by
// opt.Speed and with pauses capped at opt.IdleLimit. The first frame is written at
// once. Unless opt.Raw is set, the output passes through a Sanitizer, and the
// modes the recording left on are turned off at the end.
//
// Play returns nil at the end of the recording or when the viewer quits,
// context.Cause(ctx) when ctx is cancelled, and otherwise the first error from
// src, the decoder or out.
func Play(ctx context.Context, src Source, out io.Writer, opt Options) error {
	if src == nil || out == nil {
		return fmt.Errorf("%w: nil source or output", ErrOptions)
	}
	if opt.Speed == 0 {
		opt.Speed = 1
	}
	if !(opt.Speed > 0) || math.IsInf(opt.Speed, 0) {
		return fmt.Errorf("%w: speed %v is not a positive number", ErrOptions, opt.Speed)
	}
	if opt.IdleLimit < 0 {
		return fmt.Errorf("%w: negative idle limit %v", ErrOptions, opt.IdleLimit)
	}
	if opt.Limits.MaxEvents == 0 {
		opt.Limits.MaxEvents = math.MaxInt
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.After == nil {
		opt.After = time.After
	}
	p := &player{
		opt:   opt,
		src:   src,
		speed: opt.Speed,
	}
	p.buf = bufio.NewWriterSize(out, outBuffer)
	p.tail.w = p.buf
	p.w = &p.tail
	if !opt.Raw {
		p.san = NewSanitizer(&p.tail)
		p.w = p.san
	}
	var keys <-chan key
	if opt.Keys != nil {
		done := make(chan struct{})
		defer close(done)
		keys = readKeys(opt.Keys, done)
	}
	err := p.run(ctx, keys)
	quit := errors.Is(err, errQuit)
	if quit {
		err = nil
	}
	if p.rc != nil {
		p.rc.Close()
	}
	if cerr := p.finish(opt.StatusLine && opt.Keys != nil); err == nil {
		err = cerr
	}
	return err
}

// errQuit ends playback at the viewer's request.
var errQuit = errors.New("player: quit")

// pending is an event read from the recording but not yet shown.
type pending struct {
	at time.Duration // on the playback timeline: idle-capped, not speed-scaled
	ev asciicast.Event
}

type player struct {
	opt  Options
	src  Source
	buf  *bufio.Writer // the viewer's terminal, buffered
	tail lastByte      // buf, remembering the last byte of the replay written
	w    io.Writer     // san, or buf when Raw
	san  *Sanitizer

	rc   io.ReadCloser
	dec  *asciicast.Decoder
	last time.Duration // recorded time of the last event read
	pos  time.Duration // playback time of the last event read
	next *pending      // nil: read the next one
	eof  bool

	// The playback clock: the timeline stands at base when the wall clock reads
	// baseWall, and advances at speed unless paused.
	speed    float64
	paused   bool
	base     time.Duration
	baseWall time.Time

	start     time.Duration // timeline position of the first event: seeking back stops there
	length    time.Duration // the recording's length from its header; 0 when unknown
	statusOn  bool          // the status line is on the screen
	statusEnd time.Time     // when a status line shown while playing goes away

	// The markers shown, listed again at the end. emitted counts the events
	// shown since the recording was (re)opened, emittedMax the most ever, so
	// a marker shown again after seeking back is listed once.
	emitted, emittedMax int
	markers             []listedMarker
	moreMarkers         int // shown but beyond maxMarkerList
}

// listedMarker is a marker shown, for the list after the replay.
type listedMarker struct {
	at    time.Duration // on the playback timeline, as the status line shows it
	label string        // inert, cut
}

// lastByte passes the replay's output on and remembers its last byte, so the
// player knows whether the cursor is at the start of a line.
type lastByte struct {
	w    io.Writer
	last byte
}

func (l *lastByte) Write(b []byte) (int, error) {
	n, err := l.w.Write(b)
	if n > 0 {
		l.last = b[n-1]
	}
	return n, err
}

// open (re)starts reading the recording from the beginning.
func (p *player) open() error {
	if p.rc != nil {
		p.rc.Close()
		p.rc = nil
	}
	rc, err := p.src.Open()
	if err != nil {
		return fmt.Errorf("player: open: %w", err)
	}
	dec, err := asciicast.NewDecoder(rc, p.opt.Limits)
	if err != nil {
		rc.Close()
		return fmt.Errorf("player: %w", err)
	}
	p.rc, p.dec = rc, dec
	p.last, p.pos, p.next, p.eof = 0, 0, nil, false
	p.emitted = 0
	if d := dec.Header().Duration; d > 0 && p.opt.IdleLimit == 0 {
		p.length = time.Duration(d * float64(time.Second))
	}
	return nil
}

// peek returns the next event without consuming it, or nil at the end.
func (p *player) peek() (*pending, error) {
	if p.next != nil || p.eof {
		return p.next, nil
	}
	ev, err := p.dec.Next()
	if err == io.EOF {
		p.eof = true
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("player: %w", err)
	}
	gap := max(ev.Time-p.last, 0)
	if p.opt.IdleLimit > 0 {
		gap = min(gap, p.opt.IdleLimit)
	}
	p.last = ev.Time
	p.pos += gap
	p.next = &pending{at: p.pos, ev: ev}
	return p.next, nil
}

// now returns the position on the timeline.
func (p *player) now() time.Duration {
	if p.paused {
		return p.base
	}
	return p.base + time.Duration(float64(p.opt.Now().Sub(p.baseWall))*p.speed)
}

// rebase makes the timeline stand at t now.
func (p *player) rebase(t time.Duration) {
	p.base = t
	p.baseWall = p.opt.Now()
}

func (p *player) run(ctx context.Context, keys <-chan key) error {
	if err := p.open(); err != nil {
		return err
	}
	// The first frame is shown at once, however late it was recorded.
	first, err := p.peek()
	if err != nil || first == nil {
		return err
	}
	p.start = first.at
	p.rebase(first.at)
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		if p.opt.Live && p.next == nil && !p.eof {
			if err := p.flush(); err != nil { // the read may wait for the next event
				return err
			}
		}
		next, err := p.peek()
		if err != nil || next == nil {
			return err
		}
		var ahead time.Duration
		if !p.paused {
			ahead = next.at - p.now()
			if ahead <= 0 {
				if err := p.emit(); err != nil {
					return err
				}
				continue
			}
		}
		// About to wait: show what is due first.
		if err := p.flush(); err != nil {
			return err
		}
		var timer <-chan time.Time
		if !p.paused {
			wait := time.Duration(math.Ceil(float64(ahead) / p.speed))
			if p.statusOn {
				// Take the status line down when its time is up.
				wait = min(wait, max(p.statusEnd.Sub(p.opt.Now()), 0))
			}
			timer = p.opt.After(wait)
		}
		if p.opt.onWait != nil {
			p.opt.onWait()
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-timer:
			if p.statusOn && !p.opt.Now().Before(p.statusEnd) {
				p.hideStatus()
				if p.next.at > p.now() {
					continue // the status line's time was up, not the event's
				}
			}
			// Show the event even if float rounding puts now() a hair short.
			if err := p.emit(); err != nil {
				return err
			}
		case k, ok := <-keys:
			if !ok {
				keys = nil // no more input; play on
				continue
			}
			if err := p.key(k); err != nil {
				return err
			}
			p.showStatus()
		}
	}
}

// statusShown is how long the status line stays after a key while playing;
// while paused it stays until playback resumes.
const statusShown = 2 * time.Second

// showStatus draws the status line on the terminal's last row: position,
// length, speed, paused, and the keys. It is drawn over the replay (the
// cursor and attributes are saved and restored around it) and taken down
// when playback goes on; the row it covered is redrawn by the next output
// that touches it.
func (p *player) showStatus() {
	if p.opt.Keys == nil || !p.opt.StatusLine {
		return
	}
	state := "playing"
	if p.paused {
		state = "paused"
	}
	pos := fmtClock(min(max(p.now(), 0), max(p.length, p.now())))
	if p.length > 0 {
		pos += " / " + fmtClock(p.length)
	}
	speed := strconv.FormatFloat(p.speed, 'g', 4, 64) + "x"
	line := fmt.Sprintf(" %s %s  %s  speed %s  |  space pause/play  <-/-> 5s  +/- speed  . step  q quit ", map[bool]string{true: "||", false: ">"}[p.paused], state, pos, speed)
	p.buf.WriteString("\x1b7\x1b[999;1H\x1b[2K\x1b[7m" + line + "\x1b[27m\x1b8")
	p.statusOn = true
	p.statusEnd = p.opt.Now().Add(statusShown)
	p.flush()
}

// hideStatus clears the status line's row.
func (p *player) hideStatus() {
	if !p.statusOn {
		return
	}
	p.buf.WriteString("\x1b7\x1b[999;1H\x1b[2K\x1b8")
	p.statusOn = false
}

// fmtClock writes d as m:ss (or h:mm:ss).
func fmtClock(d time.Duration) string {
	s := int64(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// key applies one interactive control.
func (p *player) key(k key) error {
	switch k {
	case keyQuit:
		return errQuit
	case keyPause:
		if p.paused {
			p.paused = false
			p.rebase(p.base)
		} else {
			p.base = p.now()
			p.paused = true
		}
	case keyStep:
		if !p.paused {
			return nil
		}
		next, err := p.peek()
		if err != nil || next == nil {
			return err
		}
		p.base = max(p.base, next.at)
		return p.emit()
	case keyFaster, keySlower:
		t := p.now()
		if k == keyFaster && p.speed*2 <= MaxSpeed {
			p.speed *= 2
		} else if k == keySlower && p.speed/2 >= MinSpeed {
			p.speed /= 2
		}
		p.rebase(t)
	case keyForward:
		return p.seek(p.now() + SeekStep)
	case keyBack:
		// Never before the first event: the screen would be blank.
		target := max(p.now()-SeekStep, p.start)
		if err := p.reset(); err != nil {
			return err
		}
		return p.seek(target)
	}
	return nil
}

// seek shows every event up to target without delay and moves the timeline there.
// A paused player stays paused.
func (p *player) seek(target time.Duration) error {
	for {
		next, err := p.peek()
		if err != nil {
			return err
		}
		if next == nil || next.at > target {
			break
		}
		if err := p.emit(); err != nil {
			return err
		}
	}
	p.rebase(target)
	return nil
}

// reset clears the viewer's screen, undoes the modes the replay turned on, and
// reopens the recording at its start.
func (p *player) reset() error {
	p.statusOn = false // cleared with the screen
	if p.san != nil {
		if err := p.san.Close(); err != nil {
			return fmt.Errorf("player: write: %w", err)
		}
	} else {
		// Raw output: the modes are unknown, so reset the usual suspects.
		p.buf.WriteString("\x1b[0m\x1b(B\x1b[r\x1b[?1049l\x1b[?25h\x1b[?7h")
	}
	p.buf.WriteString("\x1b[H\x1b[2J")
	return p.open()
}

// emit shows the next event and consumes it.
func (p *player) emit() error {
	n := p.next
	p.next = nil
	p.emitted++
	fresh := p.emitted > p.emittedMax
	p.emittedMax = max(p.emittedMax, p.emitted)
	switch n.ev.Type {
	case asciicast.Output:
		if _, err := io.WriteString(p.w, n.ev.Data); err != nil {
			return fmt.Errorf("player: write: %w", err)
		}
	case asciicast.Marker:
		if !p.opt.ShowMarkers {
			return nil
		}
		// Finish what the sanitiser holds first, so the note is not swallowed by
		// an unfinished sequence. It goes to the terminal directly, made inert.
		if p.san != nil {
			if err := p.san.Flush(); err != nil {
				return fmt.Errorf("player: write: %w", err)
			}
		}
		// On a line of its own, and without the "bastion: " the recorded
		// labels already start with.
		if p.tail.last != '\n' && p.tail.last != 0 {
			p.buf.WriteString("\r\n")
		}
		// Drawn with the default attributes and ASCII, whatever the
		// recording left (concealed, black on black, line drawing, which
		// would turn the note's letters into box glyphs); the recording's
		// charset is put back after it, its colours are not (its next SGR
		// sets them again).
		label := inert(strings.TrimPrefix(n.ev.Data, "bastion: "), maxMarkerRunes)
		lineDrawing := p.san == nil || p.san.modes.lineDrawing
		p.buf.WriteString("\x1b[0m")
		if lineDrawing {
			p.buf.WriteString("\x1b(B")
		}
		p.buf.WriteString("\x1b[2m[bastion: ")
		p.buf.WriteString(label)
		if lineDrawing && p.san != nil {
			p.buf.WriteString("]\x1b[0m\r\n\x1b(0")
		} else if _, err := p.buf.WriteString("]\x1b[0m\r\n"); err != nil {
			return fmt.Errorf("player: write: %w", err)
		}
		if fresh {
			if len(p.markers) < maxMarkerList {
				p.markers = append(p.markers, listedMarker{at: n.at, label: label})
			} else {
				p.moreMarkers++
			}
		}
	}
	// Resize events change nothing on the viewer's terminal; input events are
	// already visible as the echo in the output.
	return nil
}

func (p *player) flush() error {
	if err := p.buf.Flush(); err != nil {
		return fmt.Errorf("player: write: %w", err)
	}
	return nil
}

// finish leaves the viewer's terminal as it found it; newLine (the viewer
// quit, or played interactively) also takes the status line down and ends
// the replay's last line, so the shell's prompt starts on a line of its own.
func (p *player) finish(newLine bool) error {
	if p.san != nil {
		if err := p.san.Close(); err != nil {
			return fmt.Errorf("player: write: %w", err)
		}
	}
	p.hideStatus()
	if p.san == nil && p.opt.ShowMarkers {
		// Raw output may have ended inside a string (OSC, DCS) that would
		// swallow the list: CAN ends it.
		p.buf.WriteString("\x18")
	}
	if (newLine || p.opt.ShowMarkers) && p.tail.last != '\n' && p.tail.last != 0 {
		p.buf.WriteString("\r\n")
	}
	if p.opt.ShowMarkers {
		p.listMarkers()
	}
	return p.flush()
}

// listMarkers writes the markers shown, after the replay: the recording's
// output can draw over an inline note the moment it is shown, and can print
// notes that look like bastion's, but it cannot draw here, after its last
// byte and with its modes undone (Sanitizer.Close). So the list is what the
// auditor trusts: a note in the replay that is not in it was printed by the
// session. Each line is erased to its end, so nothing of the recording's
// screen is left beside it.
func (p *player) listMarkers() {
	p.buf.WriteString(markerList(p.markers, p.moreMarkers))
}

// markerList is the list of markers written after a replay (and after a
// sanitised export): a heading, then each marker's time and label, each line
// erased to its end.
func markerList(markers []listedMarker, more int) string {
	const dim, end = "\x1b[0m\x1b[2m[bastion: ", "]\x1b[22m\x1b[K\r\n"
	var b strings.Builder
	switch n := len(markers) + more; n {
	case 0:
		b.WriteString(dim + "end of the replay; no markers" + end)
		return b.String()
	case 1:
		b.WriteString(dim + "end of the replay; its 1 marker (a note not listed here was printed by the session):" + end)
	default:
		b.WriteString(dim + "end of the replay; its " + strconv.Itoa(n) + " markers (a note not listed here was printed by the session):" + end)
	}
	for _, m := range markers {
		b.WriteString(dim + fmtClock(m.at) + " " + m.label + end)
	}
	if more > 0 {
		b.WriteString(dim + "and " + strconv.Itoa(more) + " more: the web console lists them all" + end)
	}
	return b.String()
}

// inert returns s with everything but printable characters replaced by '?',
// truncated to at most n runes.
func inert(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			b.WriteString("...")
			break
		}
		n--
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
