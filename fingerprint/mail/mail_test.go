package mail

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/ftp"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

// startTLS is a server TLS step that fails the test when the client offers
// any ALPN protocol.
func startTLS(s *grabtest.Server) error {
	cfg := grabtest.ServerTLSConfig(s.T)
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if len(h.SupportedProtos) > 0 {
			s.T.Errorf("client offered ALPN %q", h.SupportedProtos)
		}
		return nil, nil
	}
	tc := tls.Server(s.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		s.T.Errorf("server: tls handshake: %v", err)
		return err
	}
	s.Conn = tc
	return nil
}

type want struct {
	product, version string
	auth             fingerprint.Auth
	banner           string
	tls              bool
	details          map[string]string
}

func run(t *testing.T, g fingerprint.Grabber, service string, steps []grabtest.Step, w want) {
	t.Helper()
	res, _, err := grabtest.Run(t, g, grabtest.Script(steps...), 5*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Service != service || res.Product != w.product || res.Version != w.version || res.Auth != w.auth {
		t.Errorf("got %q %q %q auth %q, want %q %q %q auth %q", res.Service, res.Product, res.Version, res.Auth,
			service, w.product, w.version, w.auth)
	}
	if string(res.Banner) != w.banner {
		t.Errorf("banner %q, want %q", res.Banner, w.banner)
	}
	if (res.TLS != nil) != w.tls || (w.tls && (res.TLS.Leaf() == nil || res.TLS.Leaf().Subject != "CN=reach.test" || res.TLS.ALPN != "")) {
		t.Errorf("tls %+v, want tls %v", res.TLS, w.tls)
	}
	if len(res.Details) != len(w.details) {
		t.Errorf("details %q, want %q", res.Details, w.details)
	}
	for k, v := range w.details {
		if res.Details[k] != v {
			t.Errorf("details[%q] = %q, want %q", k, res.Details[k], v)
		}
	}
}

const (
	postfixGreet = "220 mx.example.com ESMTP Postfix (Debian/GNU)\r\n"
	// RFC 5321 §4.1.1.1 EHLO reply as Postfix 3.7 sends it
	postfixEHLO = "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n" +
		"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
	postfixExts = "PIPELINING, SIZE 10240000, VRFY, ETRN, STARTTLS, ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING"
	// RFC 5321 §4.2.1 multi-line greeting
	eximGreet = "220-mail.example.org ESMTP Exim 4.96 Mon, 03 Jun 2024 10:00:00 +0000\r\n" +
		"220-We do not authorize the use of this system to transport unsolicited,\r\n220 and/or bulk e-mail.\r\n"
	exchangeGreet = "220 EXCH01.corp.example.com Microsoft ESMTP MAIL Service ready at Mon, 3 Jun 2024 10:00:00 +0000\r\n"
)

func TestSMTP(t *testing.T) {
	ehlo := grabtest.Expect("EHLO reach.invalid\r\n")
	tests := []struct {
		name  string
		steps []grabtest.Step
		want  want
	}{
		{
			name: "postfix starttls",
			steps: []grabtest.Step{grabtest.Send(postfixGreet), ehlo, grabtest.Send(postfixEHLO),
				grabtest.Expect("STARTTLS\r\n"), grabtest.Send("220 2.0.0 Ready to start TLS\r\n"), startTLS},
			want: want{product: "Postfix", banner: postfixGreet, tls: true, details: map[string]string{
				"greeting": "mx.example.com ESMTP Postfix (Debian/GNU)", "extensions": postfixExts, "starttls": "offered"}},
		},
		{
			name: "exim",
			steps: []grabtest.Step{grabtest.Send(eximGreet), ehlo,
				grabtest.Send("250-mail.example.org Hello reach.invalid [198.18.0.9]\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 HELP\r\n")},
			want: want{product: "Exim", version: "4.96", banner: eximGreet, details: map[string]string{
				"greeting": "mail.example.org ESMTP Exim 4.96 Mon, 03 Jun 2024 10:00:00 +0000", "extensions": "SIZE 52428800, 8BITMIME, PIPELINING, HELP"}},
		},
		{
			name: "exchange, starttls refused",
			steps: []grabtest.Step{grabtest.Send(exchangeGreet), ehlo,
				grabtest.Send("250-EXCH01.corp.example.com Hello [198.18.0.9]\r\n250-SIZE 37748736\r\n250-STARTTLS\r\n250 AUTH NTLM\r\n"),
				grabtest.Expect("STARTTLS\r\n"), grabtest.Send("454 4.7.0 TLS not available due to local problem\r\n")},
			want: want{product: "Microsoft Exchange", banner: exchangeGreet, details: map[string]string{
				"greeting":   "EXCH01.corp.example.com Microsoft ESMTP MAIL Service ready at Mon, 3 Jun 2024 10:00:00 +0000",
				"extensions": "SIZE 37748736, STARTTLS, AUTH NTLM", "starttls": "offered",
				"starttls_error": "454 4.7.0 TLS not available due to local problem"}},
		},
		{
			// a greeting that hides the software; EHLO proves SMTP
			name:  "anonymous greeting",
			steps: []grabtest.Step{grabtest.Send("220 mail.example.net\r\n"), ehlo, grabtest.Send("250 mail.example.net\r\n")},
			want:  want{banner: "220 mail.example.net\r\n", details: map[string]string{"greeting": "mail.example.net", "extensions": ""}},
		},
		{
			// bytes after the 220 would be read as if they came through TLS
			name: "starttls injection",
			steps: []grabtest.Step{grabtest.Send(postfixGreet), ehlo, grabtest.Send(postfixEHLO),
				grabtest.Expect("STARTTLS\r\n"), grabtest.Send("220 2.0.0 Ready to start TLS\r\n250 injected\r\n")},
			want: want{product: "Postfix", banner: postfixGreet, details: map[string]string{
				"greeting": "mx.example.com ESMTP Postfix (Debian/GNU)", "extensions": postfixExts, "starttls": "offered",
				"starttls_error": "14 bytes after the upgrade reply"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, NewSMTP(), "smtp", tc.steps, tc.want) })
	}
}

func TestNotSMTP(t *testing.T) {
	for name, steps := range map[string][]grabtest.Step{
		"ftp":     {grabtest.Send("220 (vsFTPd 3.0.3)\r\n"), grabtest.Expect("EHLO reach.invalid\r\n"), grabtest.Send("530 Please login with USER and PASS.\r\n")},
		"ssh":     {grabtest.Send("SSH-2.0-OpenSSH_9.2p1\r\n")},
		"ssh-ish": {grabtest.Send("SSH-ending-in-hyphen-\r\n")},
		"pop3":    {grabtest.Send("+OK Dovecot ready.\r\n")},
	} {
		res, _, err := grabtest.Run(t, NewSMTP(), grabtest.Script(steps...), 2*time.Second, 0)
		if !errors.Is(err, fingerprint.ErrNotRecognised) || res.Service != "" {
			t.Errorf("%s: got %+v, %v", name, res, err)
		}
	}
}

func TestPOP3(t *testing.T) {
	capa := grabtest.Expect("CAPA\r\n")
	tests := []struct {
		name  string
		steps []grabtest.Step
		want  want
	}{
		{
			name: "dovecot stls",
			steps: []grabtest.Step{grabtest.Send("+OK Dovecot (Debian) ready.\r\n"), capa,
				// RFC 2449 §5: +OK, one capability per line, a dot
				grabtest.Send("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n"),
				grabtest.Expect("STLS\r\n"), grabtest.Send("+OK Begin TLS negotiation now.\r\n"), startTLS},
			want: want{product: "Dovecot", banner: "+OK Dovecot (Debian) ready.\r\n", tls: true, details: map[string]string{
				"greeting":     "Dovecot (Debian) ready.",
				"capabilities": "CAPA, TOP, UIDL, RESP-CODES, PIPELINING, AUTH-RESP-CODE, STLS, USER, SASL PLAIN", "starttls": "offered"}},
		},
		{
			name: "implementation",
			steps: []grabtest.Step{grabtest.Send("+OK POP3 ready <1896.697170952@mail.example.com>\r\n"), capa,
				grabtest.Send("+OK List of capabilities follows\r\nTOP\r\nIMPLEMENTATION Cyrus POP3 v2.4.17\r\n.\r\n")},
			want: want{product: "Cyrus", version: "2.4.17", banner: "+OK POP3 ready <1896.697170952@mail.example.com>\r\n", details: map[string]string{
				"greeting": "POP3 ready <1896.697170952@mail.example.com>", "capabilities": "TOP, IMPLEMENTATION Cyrus POP3 v2.4.17",
				"implementation": "Cyrus POP3 v2.4.17"}},
		},
		{
			name:  "no capa",
			steps: []grabtest.Step{grabtest.Send("+OK Qpopper (version 4.1.0) at mail starting.\r\n"), capa, grabtest.Send("-ERR Unknown command: \"CAPA\".\r\n")},
			want: want{product: "Qpopper", version: "4.1.0", banner: "+OK Qpopper (version 4.1.0) at mail starting.\r\n",
				details: map[string]string{"greeting": "Qpopper (version 4.1.0) at mail starting."}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, NewPOP3(), "pop3", tc.steps, tc.want) })
	}
}

const dovecotCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN"

func TestIMAP(t *testing.T) {
	greet := "* OK [CAPABILITY " + dovecotCaps + "] Dovecot (Debian) ready.\r\n"
	tests := []struct {
		name  string
		steps []grabtest.Step
		want  want
	}{
		{
			name: "dovecot starttls",
			steps: []grabtest.Step{grabtest.Send(greet), grabtest.Expect("a1 CAPABILITY\r\n"),
				grabtest.Send("* CAPABILITY " + dovecotCaps + "\r\na1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"),
				grabtest.Expect("a2 STARTTLS\r\n"), grabtest.Send("a2 OK Begin TLS negotiation now.\r\n"), startTLS},
			want: want{product: "Dovecot", banner: greet, tls: true, details: map[string]string{
				"greeting":     "[CAPABILITY " + dovecotCaps + "] Dovecot (Debian) ready.",
				"capabilities": strings.ReplaceAll(dovecotCaps, " ", ", "), "starttls": "offered"}},
		},
		{
			name: "preauth",
			steps: []grabtest.Step{grabtest.Send("* PREAUTH IMAP4rev1 server logged in as reach\r\n"), grabtest.Expect("a1 CAPABILITY\r\n"),
				grabtest.Send("* CAPABILITY IMAP4rev1 IDLE\r\na1 OK done\r\n")},
			want: want{auth: fingerprint.AuthNone, banner: "* PREAUTH IMAP4rev1 server logged in as reach\r\n", details: map[string]string{
				"greeting": "IMAP4rev1 server logged in as reach", "capabilities": "IMAP4rev1, IDLE"}},
		},
		{
			name: "exchange, capability fails",
			steps: []grabtest.Step{grabtest.Send("* OK The Microsoft Exchange IMAP4 service is ready.\r\n"), grabtest.Expect("a1 CAPABILITY\r\n"),
				grabtest.Send("a1 BAD Command Error. 10\r\n")},
			want: want{product: "Microsoft Exchange", banner: "* OK The Microsoft Exchange IMAP4 service is ready.\r\n", details: map[string]string{
				"greeting": "The Microsoft Exchange IMAP4 service is ready.", "capabilities": ""}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, NewIMAP(), "imap", tc.steps, tc.want) })
	}
}

// TestGreetsDisjoint checks that no greeting is claimed by two grabbers,
// in particular SMTP and FTP, which both greet with 220.
func TestGreetsDisjoint(t *testing.T) {
	greeters := map[string]fingerprint.Greeter{"smtp": NewSMTP(), "pop3": NewPOP3(), "imap": NewIMAP(), "ftp": ftp.New()}
	for greeting, want := range map[string]string{
		postfixGreet:                           "smtp",
		eximGreet:                              "smtp",
		exchangeGreet:                          "smtp",
		"220 mail.example.com esmtp ready\r\n": "smtp",
		"220 smtp.example.com FTP gateway, SMTP only\r\n":                                   "smtp",
		"220 (vsFTPd 3.0.3)\r\n":                                                            "ftp",
		"220-FileZilla Server 1.8.0\r\n220 Please visit https://filezilla-project.org/\r\n": "ftp",
		"220 mail.example.net\r\n":                                                          "ftp", // no SMTP in it: FTP's, and SMTP is still tried by port
		"+OK Dovecot ready.\r\n":                                                            "pop3",
		"* OK [CAPABILITY IMAP4rev1] ready\r\n":                                             "imap",
		"* ok lower-case status\r\n":                                                        "imap",
		"* PREAUTH logged in\r\n":                                                           "imap",
		"SSH-2.0-OpenSSH_9.2p1\r\n":                                                         "",
		"421 Service not available\r\n":                                                     "",
		"-ERR [SYS/PERM] server shutting down\r\n":                                          "",
	} {
		var got []string
		for name, g := range greeters {
			if g.Greets([]byte(greeting)) {
				got = append(got, name)
			}
		}
		slices.Sort(got)
		if len(got) > 1 || (want == "") != (len(got) == 0) || (want != "" && got[0] != want) {
			t.Errorf("%q is claimed by %v, want %q", greeting, got, want)
		}
	}
}

func TestHostile(t *testing.T) {
	t.Run("smtp", func(t *testing.T) { grabtest.RunHostile(t, NewSMTP(), grabtest.Hostile{Prefix: postfixGreet}) })
	t.Run("smtp in greeting", func(t *testing.T) { grabtest.RunHostile(t, NewSMTP(), grabtest.Hostile{Prefix: "220-"}) })
	t.Run("pop3", func(t *testing.T) { grabtest.RunHostile(t, NewPOP3(), grabtest.Hostile{Prefix: "+OK ready\r\n"}) })
	t.Run("imap", func(t *testing.T) { grabtest.RunHostile(t, NewIMAP(), grabtest.Hostile{Prefix: "* OK ready\r\n"}) })
}

func known(table []product, name string) bool {
	return slices.ContainsFunc(table, func(p product) bool { return p.name == name })
}

// FuzzParseSMTP checks that a product comes from the table with a version
// copied from the greeting, and that extensions are trimmed, non-empty
// lines of the reply.
func FuzzParseSMTP(f *testing.F) {
	f.Add("mx.example.com ESMTP Postfix (Debian/GNU)")           // Postfix, no version
	f.Add("mail.example.org ESMTP Exim 4.96 Mon, 03 Jun 2024")   // Exim with version
	f.Add("host ESMTP Sendmail 8.15.2/8.15.2; Mon, 3 Jun 2024")  // Sendmail with version
	f.Add("mx.example.com\nPIPELINING\n SIZE 10240000 \n\nHELP") // EHLO lines, one blank
	f.Add("")                                                    // nothing
	f.Fuzz(func(t *testing.T, s string) {
		name, v := SMTPProduct(s)
		if (name == "" && v != "") || (name != "" && !known(smtpProducts, name)) || !strings.Contains(s, v) {
			t.Errorf("SMTPProduct(%q) = %q, %q", s, name, v)
		}
		for _, e := range Extensions(s) {
			if e == "" || e != strings.TrimSpace(e) || !strings.Contains(s, e) {
				t.Errorf("extension %q from %q", e, s)
			}
		}
	})
}

// FuzzParseIMAP checks that capabilities are non-empty words copied from
// the line and that a product comes from the table.
func FuzzParseIMAP(f *testing.F) {
	f.Add("* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN")     // untagged response
	f.Add("[CAPABILITY IMAP4rev1 LITERAL+] Dovecot ready.") // response code in a greeting
	f.Add("[CAPABILITY IMAP4rev1")                          // unterminated response code
	f.Add("* capability imap4rev1")                         // lower case
	f.Add("Cyrus IMAP v3.4.3 server ready")                 // Cyrus with version
	f.Fuzz(func(t *testing.T, s string) {
		caps, ok := Capability(s)
		if !ok && caps != nil {
			t.Errorf("capabilities %q without ok", caps)
		}
		for _, c := range caps {
			if c == "" || strings.ContainsAny(c, " \t\r\n") || !strings.Contains(s, c) {
				t.Errorf("capability %q from %q", c, s)
			}
		}
		name, v := IMAPProduct(s)
		if (name == "" && v != "") || (name != "" && !known(imapProducts, name)) || !strings.Contains(s, v) {
			t.Errorf("IMAPProduct(%q) = %q, %q", s, name, v)
		}
	})
}

// FuzzParsePOP3 checks CAPA lines and the POP3 product table.
func FuzzParsePOP3(f *testing.F) {
	f.Add("TOP\nUSER\n\n  SASL PLAIN  ")       // lines with blanks and padding
	f.Add("IMPLEMENTATION Cyrus POP3 v2.4.17") // Cyrus with version
	f.Add("Qpopper (version 4.1.0) at mail")   // Qpopper with version
	f.Add("Dovecot (Ubuntu) ready.")           // Dovecot
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range Capabilities(strings.Split(s, "\n")) {
			if c == "" || c != strings.TrimSpace(c) || !strings.Contains(s, c) {
				t.Errorf("capability %q from %q", c, s)
			}
		}
		name, v := POP3Product(s)
		if (name == "" && v != "") || (name != "" && !known(pop3Products, name)) || !strings.Contains(s, v) {
			t.Errorf("POP3Product(%q) = %q, %q", s, name, v)
		}
	})
}

// TestBannerLimit keeps the first limit bytes of a long greeting, and only
// the greeting when more follows in the same read.
func TestBannerLimit(t *testing.T) {
	res, _, err := grabtest.Run(t, NewSMTP(), grabtest.Script(grabtest.Send(eximGreet), grabtest.Expect("EHLO"), grabtest.Send("250 ok\r\n")), 2*time.Second, 32)
	if err != nil || string(res.Banner) != eximGreet[:32] || res.Details["greeting"] != "mail.example.org ESMTP Exim 4.96"[:32] {
		t.Errorf("got banner %q greeting %q, %v; want the first 32 bytes", res.Banner, res.Details["greeting"], err)
	}
	// a server that answers CAPA before it is asked
	res, _, err = grabtest.Run(t, NewPOP3(), grabtest.Script(grabtest.Send("+OK ready\r\n+OK\r\nTOP\r\n.\r\n")), 2*time.Second, 0)
	if err != nil || string(res.Banner) != "+OK ready\r\n" || res.Details["capabilities"] != "TOP" {
		t.Errorf("got banner %q details %q, %v", res.Banner, res.Details, err)
	}
}
