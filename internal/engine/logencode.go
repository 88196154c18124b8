package engine

import (
	"bytes"
	"time"
	"unicode/utf8"
)

// lineOverhead is about what encoding adds to a console line.
const lineOverhead = 56

// splitLines cuts b into lines, each with its newline, none longer than maxLogLine.
func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := bytes.IndexByte(b, '\n') + 1
		if n == 0 || n > maxLogLine {
			n = min(len(b), maxLogLine)
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// appendLogLine appends the JSON encoding of one LogLine, as encoding/json writes
// it, without reflection: a flood of console lines is encoded in bulk.
func appendLogLine(out []byte, ts time.Time, line []byte) []byte {
	out = append(out, `{"ts":"`...)
	out = ts.AppendFormat(out, time.RFC3339Nano)
	out = append(out, `","line":`...)
	out = appendJSONString(out, line)
	return append(out, "}\n"...)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(out, s []byte) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c == '\n':
				out = append(out, '\\', 'n')
			case c == '\r':
				out = append(out, '\\', 'r')
			case c == '\t':
				out = append(out, '\\', 't')
			case c == '\b':
				out = append(out, '\\', 'b')
			case c == '\f':
				out = append(out, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, "\\ufffd"...)
		case r == '\u2028' || r == '\u2029':
			out = append(out, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return append(out, '"')
}

// encodeLines encodes lines for a log file, with their level when set.
func encodeLines(lines []LogLine) []byte {
	var out []byte
	for _, ln := range lines {
		out = appendLogLine(out, ln.Time, []byte(ln.Line))
		if ln.Level != "" {
			out = append(out[:len(out)-len("}\n")], `,"level":`...)
			out = appendJSONString(out, []byte(ln.Level))
			out = append(out, "}\n"...)
		}
	}
	return out
}
