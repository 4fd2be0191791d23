// Package telnet identifies Telnet servers (RFC 854) from their option
// negotiation and login prompt.
//
// The grabber reads what the server sends, refuses every option it asks
// for (DO gets WONT, WILL gets DONT, RFC 854 "Telnet Option
// Negotiation"), so that the server goes on to its prompt, and keeps the
// printable text.
//
// Details keys:
//
//	prompt  the last line of text, trimmed, at most 256 bytes ("login:")
//	do      options the server asked us to enable (DO), in decimal,
//	        comma-joined in the order first asked ("24,32,35,39")
//	will    options the server offered to enable (WILL), likewise ("1,3")
//
// Auth is AuthRequired when the prompt asks for a user name or password,
// and AuthNone when it is a shell prompt (ending in '#', '$' or '>') with
// no login or password prompt before it.
package telnet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/reachscan/reach/fingerprint"
)

// Telnet command codes (RFC 854, "Telnet Command Structure").
const (
	SE   = 240 // end of subnegotiation
	SB   = 250 // start of subnegotiation (RFC 855)
	WILL = 251
	WONT = 252
	DO   = 253
	DONT = 254
	IAC  = 255 // interpret as command
)

const (
	// quiet is how long the server may pause, once it has sent some text,
	// before that text counts as all it has to say for now.
	quiet = 500 * time.Millisecond
	// maxPrompt is the most bytes of the prompt kept, in bytes.
	maxPrompt = 256
)

// Decoder splits a Telnet stream into text and option negotiation across
// reads. The zero value is ready to use.
type Decoder struct {
	state    int
	verb     byte
	answered [2][256]bool // [0]: WONT sent for option, [1]: DONT sent
	// Do and Will are the options the server asked for and offered, each
	// once, in order.
	Do, Will []byte
	// Commands is true once any IAC command (240-255) has been seen.
	Commands bool
}

// The decoder's states.
const (
	stData   = iota
	stIAC    // after IAC
	stOption // after IAC and a verb, before the option code
	stSB     // inside a subnegotiation
	stSBIAC  // inside a subnegotiation, after IAC
	stCR     // after CR in data
)

// Feed decodes p, appending its printable text (ASCII 0x20-0x7e, tab and
// newline; CR LF becomes LF) to text and the answers owed to the server to
// reply. Each option is answered once: RFC 854 forbids acknowledging a
// request for a mode already in, which also stops negotiation loops.
func (d *Decoder) Feed(p, text, reply []byte) ([]byte, []byte) {
	for _, c := range p {
		switch d.state {
		case stData, stCR:
			cr := d.state == stCR
			d.state = stData
			switch {
			case c == IAC:
				d.state = stIAC
			case c == '\r':
				d.state = stCR
			case c == '\n', c == '\t', c >= 0x20 && c < 0x7f:
				text = append(text, c)
			case cr && c == 0:
				// CR NUL is a bare carriage return (RFC 854): nothing to keep.
			}
		case stIAC:
			d.state = stData
			if c < SE {
				continue // not a command (they are 240-255): not Telnet
			}
			d.Commands = true
			switch c {
			case WILL, WONT, DO, DONT:
				d.verb, d.state = c, stOption
			case SB:
				d.state = stSB
			}
			// IAC IAC is an escaped 255, not printable; NOP, GA, AYT
			// and the rest are two-byte commands.
		case stOption:
			d.state = stData
			switch d.verb {
			case DO:
				d.Do = appendOnce(d.Do, c)
				if !d.answered[0][c] {
					d.answered[0][c] = true
					reply = append(reply, IAC, WONT, c)
				}
			case WILL:
				d.Will = appendOnce(d.Will, c)
				if !d.answered[1][c] {
					d.answered[1][c] = true
					reply = append(reply, IAC, DONT, c)
				}
			}
		case stSB:
			if c == IAC {
				d.state = stSBIAC
			}
		case stSBIAC:
			d.state = stSB
			if c == SE {
				d.state = stData
			}
		}
	}
	return text, reply
}

func appendOnce(s []byte, c byte) []byte {
	if bytes.IndexByte(s, c) >= 0 {
		return s
	}
	return append(s, c)
}

// Prompt returns the last non-empty line of text, trimmed, at most
// maxPrompt bytes.
func Prompt(text []byte) string {
	s := strings.TrimSpace(string(text))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	if len(s) > maxPrompt {
		s = s[len(s)-maxPrompt:]
	}
	return s
}

// loginWords end a prompt that asks for credentials.
var loginWords = []string{"login:", "username:", "user name:", "user:", "password:", "passwd:", "passcode:"}

// isLogin reports whether prompt asks for a user name or password.
func isLogin(prompt string) bool {
	p := strings.ToLower(prompt)
	for _, w := range loginWords {
		if strings.HasSuffix(p, w) {
			return true
		}
	}
	return false
}

// isShell reports whether prompt looks like a command prompt.
func isShell(prompt string) bool {
	return strings.HasSuffix(prompt, "#") || strings.HasSuffix(prompt, "$") || strings.HasSuffix(prompt, ">")
}

// waiting reports whether text ends in what looks like a prompt: the
// server now waits for input.
func waiting(text []byte) bool {
	t := bytes.TrimRight(text, " \t")
	if len(t) == 0 {
		return false
	}
	switch t[len(t)-1] {
	case ':', '#', '$', '>':
		return true
	}
	return false
}

// Grabber is the Telnet grabber. The zero value is ready to use.
type Grabber struct{}

// New returns a Telnet grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "telnet".
func (*Grabber) Name() string { return "telnet" }

// Ports returns 23 and 2323.
func (*Grabber) Ports() []uint16 { return []uint16{23, 2323} }

// Greets reports whether banner starts with an option negotiation: IAC
// then WILL, WONT, DO or DONT.
func (*Grabber) Greets(banner []byte) bool {
	switch len(banner) {
	case 0:
		return false
	case 1:
		return banner[0] == IAC
	}
	return banner[0] == IAC && banner[1] >= WILL && banner[1] <= DONT
}

// Grab reads and answers the server's negotiation until it shows a prompt,
// falls quiet after sending text, or t.Limit() bytes have come in.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	stop, err := fingerprint.Bind(ctx, conn)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("telnet: set deadline: %w", err)
	}
	defer stop()

	limit := t.Limit()
	buf := make([]byte, min(limit, 4096))
	var d Decoder
	var text []byte
	var readErr error
	total := 0
	for total < limit {
		if err := ctx.Err(); err != nil {
			readErr = err
			break
		}
		// Wait for the server until ctx's deadline; once it has sent some
		// text, only for a quiet pause more.
		dl, _ := ctx.Deadline()
		hasText := len(bytes.TrimSpace(text)) > 0
		if q := time.Now().Add(quiet); hasText && (dl.IsZero() || q.Before(dl)) {
			dl = q
		}
		if err := conn.SetReadDeadline(dl); err != nil {
			readErr = err
			break
		}
		n, err := conn.Read(buf[:min(len(buf), limit-total)])
		total += n
		var reply []byte
		text, reply = d.Feed(buf[:n], text, nil)
		if len(reply) > 0 {
			if _, werr := conn.Write(reply); werr != nil && err == nil {
				err = werr
			}
		}
		if err != nil {
			readErr = err
			break
		}
		if waiting(text) {
			break
		}
	}

	prompt := Prompt(text)
	login := isLogin(prompt)
	if !d.Commands && !login {
		if total == 0 && readErr != nil {
			return fingerprint.Result{}, fmt.Errorf("telnet: read: %w", readErr)
		}
		return fingerprint.Result{}, fmt.Errorf("telnet: no negotiation or login prompt: %w", fingerprint.ErrNotRecognised)
	}
	res := fingerprint.Result{
		Service: "telnet",
		Banner:  text,
		Details: map[string]string{},
	}
	if prompt != "" {
		res.Details["prompt"] = prompt
	}
	if len(d.Do) > 0 {
		res.Details["do"] = join(d.Do)
	}
	if len(d.Will) > 0 {
		res.Details["will"] = join(d.Will)
	}
	lower := strings.ToLower(string(text))
	switch {
	case login:
		res.Auth = fingerprint.AuthRequired
	case isShell(prompt) && !strings.Contains(lower, "login") && !strings.Contains(lower, "password"):
		res.Auth = fingerprint.AuthNone
	}
	// A pause or close after text is the end of what the server had to
	// say; one before any text leaves the grab unfinished.
	if readErr != nil && len(bytes.TrimSpace(text)) == 0 {
		return res, fmt.Errorf("telnet: read: %w", readErr)
	}
	return res, nil
}

func join(opts []byte) string {
	s := make([]string, len(opts))
	for i, o := range opts {
		s[i] = strconv.Itoa(int(o))
	}
	return strings.Join(s, ",")
}
