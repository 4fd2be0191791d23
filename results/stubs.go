package results

import (
	"strconv"
	"strings"
	"unicode"
)

// statusLocalError is the grab status of a failure on this host.
const statusLocalError = "local-error"

// Terminal escapes what a server chose (control characters, escape
// sequences) for a terminal.
func Terminal(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0 {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}
