package recorder

import (
	"bytes"
	"testing"
	"unsafe"
)

// alignedAppend keeps its buffer on a directAlign boundary, with room for
// the extra bytes asked for, and keeps the bytes it holds when it moves
// them.
func TestAlignedAppend(t *testing.T) {
	aligned := func(b []byte) bool { return uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign == 0 }
	var b, want []byte
	for i, n := range []int{0, 1, 4095, 4096, 4097, 1 << 20, 3<<20 + 7, 5} {
		v := bytes.Repeat([]byte{byte(i + 1)}, n)
		b = alignedAppend(b, v, directAlign)
		want = append(want, v...)
		if !aligned(b) {
			t.Fatalf("step %d: the buffer is not aligned", i)
		}
		if cap(b)-len(b) < directAlign {
			t.Fatalf("step %d: %d bytes of room, want at least %d", i, cap(b)-len(b), directAlign)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("step %d: the bytes differ", i)
		}
	}
	if e := alignedAppend(nil, nil, 10); len(e) != 0 || cap(e) < 10 || !aligned(e) {
		t.Fatalf("empty: len %d cap %d", len(e), cap(e))
	}
}
