package asciicast

import "unicode/utf8"

// UTF8Carry turns a stream of terminal bytes, cut at arbitrary points, into
// valid UTF-8 pieces. A character split across two writes is carried to the
// next write whole; a byte that can never start or continue a valid character
// becomes U+FFFD, and only once that is certain. The zero value is ready to use.
type UTF8Carry struct {
	carry [utf8.UTFMax]byte
	n     int    // bytes in carry: an incomplete but possibly valid prefix
	buf   []byte // output when p cannot be returned as is, reused
}

// Write returns the longest valid UTF-8 text available after p: any carried
// bytes followed by p, minus an incomplete character at its end, which is
// carried to the next call. The result aliases p or the carry's own buffer and
// is valid only until the next call; copy it to keep it. When p is valid
// UTF-8 and nothing is carried, Write returns p itself and does not allocate.
func (c *UTF8Carry) Write(p []byte) []byte {
	if c.n == 0 {
		// Fast path: p is valid, perhaps but for a split character at its end.
		cut := incompleteTail(p)
		if utf8.Valid(p[:cut]) {
			c.n = copy(c.carry[:], p[cut:])
			return p[:cut]
		}
	}
	c.buf = c.buf[:0]
	// Finish the carried character with the first bytes of p.
	for c.n > 0 {
		if len(p) == 0 {
			return c.buf
		}
		c.carry[c.n] = p[0]
		c.n++
		p = p[1:]
		head := c.carry[:c.n]
		if !utf8.FullRune(head) {
			continue // still incomplete (c.n < UTFMax here)
		}
		r, size := utf8.DecodeRune(head)
		if r == utf8.RuneError && size == 1 {
			// The first byte can never be valid: replace it, and rescan the
			// rest of the carried bytes as fresh input.
			c.buf = utf8.AppendRune(c.buf, utf8.RuneError)
			rest := append([]byte(nil), head[1:]...) // at most 3 bytes
			c.n = 0
			c.buf = c.appendValid(c.buf, rest)
			if c.n > 0 {
				// rest ended incomplete; it is carried now and p continues it.
				continue
			}
			break
		}
		c.buf = append(c.buf, head[:size]...)
		c.n = 0
	}
	c.buf = c.appendValid(c.buf, p)
	return c.buf
}

// Flush returns the carried bytes at the end of the stream, each replaced by
// U+FFFD since no later byte can complete them, and resets the carry.
func (c *UTF8Carry) Flush() []byte {
	c.buf = c.buf[:0]
	for i := 0; i < c.n; i++ {
		c.buf = utf8.AppendRune(c.buf, utf8.RuneError)
	}
	c.n = 0
	return c.buf
}

// Pending returns how many bytes are carried.
func (c *UTF8Carry) Pending() int { return c.n }

// appendValid appends p to dst with invalid bytes replaced by U+FFFD,
// carrying an incomplete character at its end. c.n must be 0.
func (c *UTF8Carry) appendValid(dst, p []byte) []byte {
	for len(p) > 0 {
		// Copy the longest valid run at once.
		i := validPrefix(p)
		dst = append(dst, p[:i]...)
		p = p[i:]
		if len(p) == 0 {
			break
		}
		if !utf8.FullRune(p) {
			c.n = copy(c.carry[:], p) // an incomplete tail, at most 3 bytes
			break
		}
		dst = utf8.AppendRune(dst, utf8.RuneError)
		p = p[1:]
	}
	return dst
}

// validPrefix returns the length of the longest prefix of p made of complete,
// valid characters.
func validPrefix(p []byte) int {
	i := 0
	for i < len(p) {
		if p[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return i
}

// incompleteTail returns the index where an incomplete but possibly valid
// character at the end of p starts, or len(p) if p does not end with one.
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				return i
			}
			return len(p)
		}
	}
	return len(p)
}
