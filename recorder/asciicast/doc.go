// Package asciicast reads and writes asciicast v2 recordings, the format of
// the asciinema terminal recorder and player.
//
// # Basics
//
// A recording is newline-delimited JSON: one header object, then one event
// per line as a three-element array:
//
//	{"version":2,"width":80,"height":24,"timestamp":1700000000,"x_bastion":{"session_id":"01J..."}}
//	[0.104501,"o","$ "]
//	[1.250000,"r","120x40"]
//	[2.000010,"m","command blocked: rm -rf /"]
//
// Times are seconds since the start of the recording with microsecond
// precision; [Event.Time] holds them as a [time.Duration]. Event types are
// output ('o'), input ('i'), resize ('r', data "COLSxROWS") and marker ('m').
// bastion's own metadata travels in the namespaced "x_bastion" header object,
// which players ignore.
//
// [Encoder] writes a recording with encoding/json. [Decoder] reads one and
// treats it as untrusted: every line is bounded by [Limits], and malformed
// JSON, a wrong version, absurd geometry, times that go backwards, unknown
// event types and over-long lines are refused with a [*LineError] that names
// the line. The decoder never panics on bad input (it is fuzzed).
//
// [UTF8Carry] sits in front of an encoder when the bytes come from a terminal:
// a multi-byte character split across two reads is carried to the next write
// instead of being turned into U+FFFD, and bytes that can never become valid
// UTF-8 are replaced only once they are definitely invalid.
//
// # Concurrency
//
// An Encoder, Decoder or UTF8Carry is used by one goroutine at a time.
//
// # Caveats
//
// JSON strings hold UTF-8 text, so an event's data is text: invalid bytes are
// replaced with U+FFFD when encoded (use UTF8Carry to avoid splitting valid
// characters). The decoder accepts the header fields asciinema writes and
// ignores unknown ones, but refuses unknown event types.
package asciicast
