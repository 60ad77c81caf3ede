package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"

	"golang.org/x/term"

	"github.com/bastionhq/bastion/internal/duration"
	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/player"
)

func runReplay(args []string) error {
	fs := flags("replay", replayArgs,
		"Replay a recorded session in this terminal with its original timing.\n"+
			"Keys: space pauses, left/right seek 5s, +/- change speed, q quits.\n"+
			"Escape sequences that could attack your terminal (clipboard, title reports, hyperlinks) are neutralised unless --raw.")
	speed := fs.Float64("speed", 1, "playback speed (2 = twice as fast)")
	idle := fs.String("idle-limit", "", "cap pauses at this duration (e.g. 2s)")
	raw := fs.Bool("raw", false, "pass escape sequences through unchanged (dangerous)")
	file := fs.String("file", "", "play a local asciicast v2 file instead of a stored session")
	markers := fs.Bool("markers", true, "show bastion markers (blocked commands, approvals)")
	bastionURL := fs.String("bastion", "", "the bastion (default: the one you logged in to)")
	follow := fs.Bool("follow", false, "follow a live session until it ends, showing its output as it is recorded")
	from := fs.String("from", "start", "with --follow: start (play the session from its beginning, then live) or now (show the present screen, then live)")
	dataDir := fs.String("data-dir", "", "read the session from this data directory (or a backup of one), read-only, while no bastion runs (not audited)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	opt := player.Options{Speed: *speed, Raw: *raw, ShowMarkers: *markers, Live: *follow}
	if *idle != "" {
		d, err := duration.Parse(*idle)
		if err != nil {
			return fmt.Errorf("--idle-limit: %w", err)
		}
		opt.IdleLimit = d
	}
	var src player.Source
	switch {
	case *file != "" && len(pos) == 0:
		src = player.FileSource(*file)
	case *file == "" && len(pos) == 1 && *dataDir != "":
		if *follow {
			return errFollowOffline
		}
		s, closeStore, err := offlineSource(*dataDir, pos[0])
		if err != nil {
			return err
		}
		defer closeStore()
		src = s
	case *file == "" && len(pos) == 1:
		st, err := clientState(*bastionURL)
		if err != nil {
			return err
		}
		if *from != "start" && *from != "now" {
			return fmt.Errorf("--from %q: want start or now", *from)
		}
		exportArgs := []string{"export", pos[0]}
		if *follow {
			exportArgs = append(exportArgs, "--follow", "--from", *from)
		}
		sp, err := newSpool(st, exportArgs)
		if err != nil {
			return err
		}
		defer sp.close()
		src = sp
	default:
		return fs.usageErr()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())) {
		restore, err := player.MakeRaw(int(os.Stdin.Fd()))
		if err == nil {
			defer restore()
			opt.Keys, opt.StatusLine = os.Stdin, true
		}
	}
	err = player.Play(ctx, src, os.Stdout, opt)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// spool downloads a session's asciicast (via the bastion's export admin
// command) into a temporary file while it plays: playback starts with the
// first bytes, and seeking backwards reopens the file instead of fetching
// the session again.
type spool struct {
	f    *os.File
	mu   sync.Mutex
	cond *sync.Cond
	size int64
	done bool
	err  error
}

func newSpool(st *login.State, exportArgs []string) (*spool, error) {
	f, err := os.CreateTemp("", "bastion-replay-*.cast")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // unlinked: gone when we exit, whatever happens
	sp := &spool{f: f}
	sp.cond = sync.NewCond(&sp.mu)
	go func() {
		// The recording as it was (export --raw): the player here
		// neutralises it (unless --raw), and lists its markers. A bastion
		// older than export --raw refuses the flag before writing anything;
		// ask it again without.
		var errb bytes.Buffer
		err := remote(context.Background(), st, append(exportArgs, "--raw"), nil, sp, &errb, false)
		var ee exitError
		if errors.As(err, &ee) && ee.code == 2 && sp.written() == 0 && strings.Contains(errb.String(), "-raw") {
			errb.Reset()
			err = remote(context.Background(), st, exportArgs, nil, sp, &errb, false)
		}
		os.Stderr.Write(errb.Bytes())
		sp.mu.Lock()
		sp.done, sp.err = true, err
		sp.cond.Broadcast()
		sp.mu.Unlock()
	}()
	return sp, nil
}

// Write appends downloaded bytes.
func (sp *spool) Write(p []byte) (int, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	n, err := sp.f.WriteAt(p, sp.size)
	sp.size += int64(n)
	sp.cond.Broadcast()
	return n, err
}

// Open implements player.Source: a reader from the start of the spool that
// waits for more at its end until the download is complete.
func (sp *spool) Open() (io.ReadCloser, error) {
	return &spoolReader{sp: sp}, nil
}

func (sp *spool) close() { sp.f.Close() }

// written reports how many bytes were downloaded.
func (sp *spool) written() int64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.size
}

type spoolReader struct {
	sp  *spool
	off int64
}

func (r *spoolReader) Read(p []byte) (int, error) {
	sp := r.sp
	sp.mu.Lock()
	for r.off >= sp.size && !sp.done {
		sp.cond.Wait()
	}
	size, done, derr := sp.size, sp.done, sp.err
	sp.mu.Unlock()
	if r.off >= size && done {
		if derr != nil {
			return 0, derr
		}
		return 0, io.EOF
	}
	if int64(len(p)) > size-r.off {
		p = p[:size-r.off]
	}
	n, err := sp.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (r *spoolReader) Close() error { return nil }
