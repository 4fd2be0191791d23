package ftp

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

const (
	// RFC 2389 §3.2 FEAT reply as vsftpd 3.0.3 sends it
	featVsftpd = "211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End\r\n"
	// with AUTH TLS (RFC 4217 §6) as ProFTPD mod_tls lists it
	featProftpd = "211-Features:\r\n AUTH TLS\r\n CCC\r\n EPRT\r\n EPSV\r\n MDTM\r\n MLST modify*;perm*;size*;type*;unique*;\r\n PBSZ\r\n PROT\r\n SIZE\r\n UTF8\r\n211 End\r\n"
	// RFC 959 §4.2 multi-line greeting in Pure-FTPd's style
	greetPure = "220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n220-You are user number 1 of 50 allowed.\r\n" +
		"220-Local time is now 10:00. Server port: 21.\r\n220 You will be disconnected after 15 minutes of inactivity.\r\n"
)

func TestGrab(t *testing.T) {
	tests := []struct {
		name  string
		steps []grabtest.Step
		want  fingerprint.Result
	}{
		{
			name: "vsftpd anonymous",
			steps: []grabtest.Step{grabtest.Send("220 (vsFTPd 3.0.3)\r\n"),
				grabtest.Expect("FEAT\r\n"), grabtest.Send(featVsftpd),
				grabtest.Expect("USER anonymous\r\n"), grabtest.Send("331 Please specify the password.\r\n"),
				grabtest.Expect("PASS reach@\r\n"), grabtest.Send("230 Login successful.\r\n")},
			want: fingerprint.Result{Product: "vsftpd", Version: "3.0.3", Auth: fingerprint.AuthNone, Banner: []byte("220 (vsFTPd 3.0.3)\r\n"),
				Details: map[string]string{"features": "EPRT, EPSV, MDTM, PASV, REST STREAM, SIZE, TVFS, UTF8", "login": "230 Login successful."}},
		},
		{
			name: "proftpd refuses",
			steps: []grabtest.Step{grabtest.Send("220 ProFTPD 1.3.8 Server (Debian) [::ffff:198.18.0.2]\r\n"),
				grabtest.Expect("FEAT\r\n"), grabtest.Send(featProftpd),
				grabtest.Expect("USER anonymous\r\n"), grabtest.Send("331 Anonymous login ok, send your complete email address as your password\r\n"),
				grabtest.Expect("PASS reach@\r\n"), grabtest.Send("530 Login incorrect.\r\n")},
			want: fingerprint.Result{Product: "ProFTPD", Version: "1.3.8", Auth: fingerprint.AuthRequired,
				Banner: []byte("220 ProFTPD 1.3.8 Server (Debian) [::ffff:198.18.0.2]\r\n"),
				Details: map[string]string{"features": "AUTH TLS, CCC, EPRT, EPSV, MDTM, MLST modify*;perm*;size*;type*;unique*;, PBSZ, PROT, SIZE, UTF8",
					"tls": "offered", "login": "530 Login incorrect."}},
		},
		{
			name: "pure-ftpd, no feat",
			steps: []grabtest.Step{grabtest.Send(greetPure),
				grabtest.Expect("FEAT\r\n"), grabtest.Send("500 Unknown command\r\n"),
				grabtest.Expect("USER anonymous\r\n"), grabtest.Send("530 This is a private system - No anonymous login\r\n")},
			want: fingerprint.Result{Product: "Pure-FTPd", Auth: fingerprint.AuthRequired, Banner: []byte(greetPure),
				Details: map[string]string{"login": "530 This is a private system - No anonymous login"}},
		},
		{
			// RFC 959 §4.2: inner lines of a multi-line reply need not start with the code
			name: "continuation lines, no password",
			steps: []grabtest.Step{grabtest.Send("220-Welcome\r\n to the archive\r\n220 ready\r\n"),
				grabtest.Expect("FEAT\r\n"), grabtest.Send("502 Command not implemented.\r\n"),
				grabtest.Expect("USER anonymous\r\n"), grabtest.Send("230 Anonymous access granted.\r\n")},
			want: fingerprint.Result{Auth: fingerprint.AuthNone, Banner: []byte("220-Welcome\r\n to the archive\r\n220 ready\r\n"),
				Details: map[string]string{"login": "230 Anonymous access granted."}},
		},
		{
			name: "microsoft, too busy",
			steps: []grabtest.Step{grabtest.Send("220 Microsoft FTP Service\r\n"),
				grabtest.Expect("FEAT\r\n"), grabtest.Send("211-Extended features supported:\r\n LANG EN*\r\n UTF8\r\n211 END\r\n"),
				grabtest.Expect("USER anonymous\r\n"), grabtest.Send("421 Too many users\r\n")},
			want: fingerprint.Result{Product: "Microsoft FTP Service", Banner: []byte("220 Microsoft FTP Service\r\n"),
				Details: map[string]string{"features": "LANG EN*, UTF8", "login": "421 Too many users"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := grabtest.Run(t, New(), grabtest.Script(tc.steps...), 2*time.Second, 0)
			if err != nil {
				t.Fatal(err)
			}
			if res.Service != "ftp" || res.Product != tc.want.Product || res.Version != tc.want.Version || res.Auth != tc.want.Auth {
				t.Errorf("got %q %q %q auth %q, want ftp %q %q auth %q", res.Service, res.Product, res.Version, res.Auth,
					tc.want.Product, tc.want.Version, tc.want.Auth)
			}
			if string(res.Banner) != string(tc.want.Banner) {
				t.Errorf("banner %q, want %q", res.Banner, tc.want.Banner)
			}
			if len(res.Details) != len(tc.want.Details) {
				t.Errorf("details %q, want %q", res.Details, tc.want.Details)
			}
			for k, v := range tc.want.Details {
				if res.Details[k] != v {
					t.Errorf("details[%q] = %q, want %q", k, res.Details[k], v)
				}
			}
		})
	}
}

func TestNotFTP(t *testing.T) {
	for _, greet := range []string{
		"220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n",
		"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
		"421 Service not available\r\n",
		"+OK Dovecot ready.\r\n",
	} {
		res, _, err := grabtest.Run(t, New(), grabtest.Script(grabtest.Send(greet)), 2*time.Second, 0)
		if !errors.Is(err, fingerprint.ErrNotRecognised) || res.Service != "" {
			t.Errorf("greeting %q: got %+v, %v", greet, res, err)
		}
	}
}

func TestGreets(t *testing.T) {
	for _, tc := range []struct {
		banner string
		want   bool
	}{
		{"220 (vsFTPd 3.0.3)\r\n", true},
		{greetPure, true},
		{"220 ready\r\n", true},
		{"220 mail.example.com ESMTP Postfix\r\n", false},
		{"220-mx.example.com Microsoft ESMTP MAIL Service ready\r\n", false},
		{"220 smtp.example.com FTP-like esmtp\r\n", false},
		{"230 logged in\r\n", false},
		{"220", false},
	} {
		if got := New().Greets([]byte(tc.banner)); got != tc.want {
			t.Errorf("Greets(%q) = %v, want %v", tc.banner, got, tc.want)
		}
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{Prefix: "220 (vsFTPd 3.0.3)\r\n"})
}

// FuzzParseGreeting checks that Product returns a known name and a version
// copied from the greeting, and that Features returns trimmed lines copied
// from the reply.
func FuzzParseGreeting(f *testing.F) {
	f.Add("(vsFTPd 3.0.3)")                       // vsftpd with version
	f.Add("ProFTPD 1.3.5e Server (Debian)")       // ProFTPD letter suffix
	f.Add("ProFTPD Server")                       // ProFTPD without version
	f.Add("FileZilla Server version 0.9.60 beta") // FileZilla 0.9
	f.Add("Features:\n EPSV\n \n AUTH TLS\nEnd")  // FEAT with an empty line
	f.Add("")                                     // nothing
	f.Fuzz(func(t *testing.T, s string) {
		name, v := Product(s)
		if name == "" && v != "" || !strings.Contains(s, v) {
			t.Errorf("Product(%q) = %q, %q", s, name, v)
		}
		if name != "" && !slices.ContainsFunc(products, func(p struct {
			re   *regexp.Regexp
			name string
		}) bool {
			return p.name == name
		}) {
			t.Errorf("unknown product %q", name)
		}
		for _, feat := range Features(s) {
			if feat == "" || feat != strings.TrimSpace(feat) || !strings.Contains(s, feat) {
				t.Errorf("feature %q from %q", feat, s)
			}
		}
	})
}
