// Package safe makes strings that scanned servers chose (banners, products,
// versions, certificate names) safe to print on a terminal.
package safe

import (
	"strconv"
	"unicode/utf8"
)

// Terminal returns s with everything that is not printable escaped in Go's
// quoted form, without the quotes: C0 controls and DEL as \xNN (\t, \n, \r
// and the other single-letter escapes where Go has one), so ESC and every
// escape sequence it would start is inert; C1 controls, format characters
// (bidirectional overrides, zero-width spaces) and non-ASCII spaces as \uNNNN;
// bytes that are not valid UTF-8 (among them a raw 8-bit CSI, 0x9b) as \xNN.
// Printable UTF-8 (strconv.IsPrint, plus the ASCII space) is returned
// unchanged, backslashes included, and a string with nothing to escape is
// returned without copying.
func Terminal(s string) string {
	i := firstUnsafe(s)
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	b = append(b, s[:i]...)
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\x`...)
			b = append(b, hex[s[i]>>4], hex[s[i]&0xf])
		case strconv.IsPrint(r):
			b = append(b, s[i:i+n]...)
		default:
			b = appendEscaped(b, r)
		}
		i += n
	}
	return string(b)
}

const hex = "0123456789abcdef"

// firstUnsafe is the byte offset of the first rune Terminal escapes, -1
// when there is none.
func firstUnsafe(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
		if !strconv.IsPrint(r) {
			return i
		}
	}
	return -1
}

// appendEscaped appends Go's escape for the non-printable rune r: the
// quoted rune literal without its quotes.
func appendEscaped(b []byte, r rune) []byte {
	start := len(b)
	b = strconv.AppendQuoteRune(b, r)
	copy(b[start:], b[start+1:len(b)-1])
	return b[:len(b)-2]
}
