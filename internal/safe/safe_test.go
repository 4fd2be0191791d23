package safe

import (
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestTerminal(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"printable ASCII", `nginx/1.24.0 (Ubuntu) \x1b "q"`, `nginx/1.24.0 (Ubuntu) \x1b "q"`},
		{"printable UTF-8", "Überserver 日本 ✓ \ufffd", "Überserver 日本 ✓ \ufffd"},
		{"ESC sequence: clear screen, colour", "a\x1b[2J\x1b[31mred", `a\x1b[2J\x1b[31mred`},
		{"OSC title set ended by BEL", "\x1b]0;owned\a", `\x1b]0;owned\a`},
		{"line controls", "v1\r\nFAKE ROW\tx", `v1\r\nFAKE ROW\tx`},
		{"NUL and DEL", "a\x00b\x7f", `a\x00b\x7f`},
		{"C1 CSI as a rune", "a\u009b31m", `a\u009b31m`},
		{"C1 CSI as a raw byte", "a\x9b31m", `a\x9b31m`},
		{"invalid UTF-8", "\xff\xfe\xc3", `\xff\xfe\xc3`},
		{"bidi override", "abc\u202edcba", `abc\u202edcba`},
		{"zero-width space and BOM", "a\u200bb\ufeff", `a\u200bb\ufeff`},
		{"no-break space", "a\u00a0b", `a\u00a0b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Terminal(tc.in); got != tc.want {
				t.Errorf("Terminal(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTerminalNoCopyWhenClean(t *testing.T) {
	s := "redis_version:7.0.15"
	if n := testing.AllocsPerRun(100, func() { _ = Terminal(s) }); n != 0 {
		t.Errorf("Terminal of a printable string allocates %v times, want 0", n)
	}
}

// FuzzTerminal checks that the output holds nothing a terminal acts on,
// that printable input comes back unchanged and that escaping is idempotent.
func FuzzTerminal(f *testing.F) {
	for _, s := range []string{
		"SSH-2.0-OpenSSH_9.6",  // plain banner
		"\x1b[2J\x1b[H",        // clear screen, cursor home
		"\x1b]8;;http://x\x07", // OSC hyperlink ended by BEL
		"\u009b1;31m",          // C1 CSI as a rune
		"\x9b1;31m",            // C1 CSI as a raw byte
		"\xe2\x80",             // truncated UTF-8 sequence
		"abc\u202e\u2066",      // bidi overrides
		`already \x1b escaped`, // backslashes that must stay
		"Überserver 日本 \ufffd", // printable non-ASCII
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Terminal(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Terminal(%q) = %q is not valid UTF-8", s, got)
		}
		for i, r := range got {
			if !strconv.IsPrint(r) {
				t.Fatalf("Terminal(%q) = %q keeps unprintable %U at %d", s, got, r, i)
			}
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("Terminal(%q) = %q keeps control byte %#x", s, got, c)
			}
		}
		if printable(s) && got != s {
			t.Fatalf("printable %q changed to %q", s, got)
		}
		if again := Terminal(got); again != got {
			t.Fatalf("Terminal is not idempotent: %q then %q", got, again)
		}
	})
}

// printable says whether every rune of s is valid UTF-8 and printable.
func printable(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}
