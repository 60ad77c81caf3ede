package player

import "io"

// key is one interactive control.
type key int

const (
	keyPause   key = iota + 1 // space
	keyForward                // right arrow
	keyBack                   // left arrow
	keyStep                   // '.'
	keyFaster                 // '+' (or '=', its unshifted key)
	keySlower                 // '-'
	keyQuit                   // 'q' or Ctrl-C
)

// keyParser turns the bytes a terminal in raw mode sends into keys. Arrow keys
// come as ESC [ C or, in application cursor mode, ESC O C, possibly with modifier
// parameters (ESC [ 1 ; 2 C); other sequences are ignored.
type keyParser struct{ state int }

// feed consumes b and returns the key it completes, or 0.
func (k *keyParser) feed(b byte) key {
	switch k.state {
	case 1: // after ESC
		switch b {
		case '[', 'O':
			k.state = 2
			return 0
		case 0x1b:
			return 0
		}
		k.state = 0
	case 2: // inside ESC [ or ESC O
		switch {
		case b >= '0' && b <= '9' || b == ';':
			return 0
		case b == 'C':
			k.state = 0
			return keyForward
		case b == 'D':
			k.state = 0
			return keyBack
		case b >= 0x40 && b <= 0x7e: // the final byte of another sequence
			k.state = 0
			return 0
		}
		k.state = 0
	}
	switch b {
	case 0x1b:
		k.state = 1
	case ' ':
		return keyPause
	case '.':
		return keyStep
	case '+', '=':
		return keyFaster
	case '-':
		return keySlower
	case 'q', 'Q', 0x03:
		return keyQuit
	}
	return 0
}

// readKeys reads r in a goroutine and sends the keys it finds until a Read fails
// (the channel is then closed) or done is closed.
func readKeys(r io.Reader, done <-chan struct{}) <-chan key {
	ch := make(chan key)
	go func() {
		defer close(ch)
		var kp keyParser
		buf := make([]byte, 64)
		for {
			n, err := r.Read(buf)
			for _, b := range buf[:n] {
				if k := kp.feed(b); k != 0 {
					select {
					case ch <- k:
					case <-done:
						return
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}
