package sshid

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
	"golang.org/x/crypto/ssh"
)

var target = fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:22")}

func ed25519Signer(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ecdsaSigner(t *testing.T) ssh.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sshServer returns a server that sends pre (lines before the
// identification, RFC 4253 §4.2) and then runs a real SSH server with the
// given version and host key, offering kex.
func sshServer(version, pre string, key ssh.Signer, kex []string) func(testing.TB, net.Conn) {
	return func(_ testing.TB, c net.Conn) {
		if pre != "" {
			if _, err := io.WriteString(c, pre); err != nil {
				return
			}
		}
		cfg := &ssh.ServerConfig{
			ServerVersion: version,
			Config:        ssh.Config{KeyExchanges: kex},
			PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) {
				return nil, errors.New("denied")
			},
		}
		cfg.AddHostKey(key)
		// The client aborts once it has the host key: the error is expected.
		_, _, _, _ = ssh.NewServerConn(c, cfg)
	}
}

func TestGrab(t *testing.T) {
	ed, ec := ed25519Signer(t), ecdsaSigner(t)
	tests := []struct {
		name     string
		version  string
		pre      string
		key      ssh.Signer
		kex      []string
		wantKex  string // the server's list as sent
		product  string
		ver      string
		comments string
		keyType  string
	}{
		{
			name: "openssh on debian", version: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", key: ed,
			kex: []string{"curve25519-sha256", "ecdh-sha2-nistp256"},
			// The server adds the pre-RFC name of curve25519-sha256 and
			// the strict key exchange marker (OpenSSH PROTOCOL).
			wantKex: "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,kex-strict-s-v00@openssh.com",
			product: "OpenSSH", ver: "9.2p1", comments: "Debian-2+deb12u3", keyType: "ssh-ed25519",
		},
		{
			name: "dropbear after banner lines", version: "SSH-2.0-dropbear_2022.83",
			pre: "Welcome to the router\r\nauthorised use only\r\n", key: ec,
			kex:     []string{"ecdh-sha2-nistp256", "diffie-hellman-group14-sha256"},
			wantKex: "ecdh-sha2-nistp256,diffie-hellman-group14-sha256,kex-strict-s-v00@openssh.com",
			product: "Dropbear", ver: "2022.83", keyType: "ecdsa-sha2-nistp256",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := grabtest.RunTarget(t, New(), sshServer(tc.version, tc.pre, tc.key, tc.kex), 5*time.Second, target)
			if err != nil {
				t.Fatalf("Grab: %v", err)
			}
			if res.Service != "ssh" || res.Product != tc.product || res.Version != tc.ver || res.Auth != "" {
				t.Errorf("got %q %q %q auth %q, want ssh %q %q and no auth", res.Service, res.Product, res.Version, res.Auth, tc.product, tc.ver)
			}
			if want := tc.pre + tc.version + "\r\n"; string(res.Banner) != want {
				t.Errorf("banner %q, want %q", res.Banner, want)
			}
			want := map[string]string{
				"proto":              "2.0",
				"hostkey_type":       tc.keyType,
				"hostkey_sha256":     ssh.FingerprintSHA256(tc.key.PublicKey()),
				"kex":                tc.wantKex,
				"hostkey_algorithms": tc.keyType,
			}
			if tc.comments != "" {
				want["comments"] = tc.comments
			}
			for k, v := range want {
				if res.Details[k] != v {
					t.Errorf("Details[%s] = %q, want %q", k, res.Details[k], v)
				}
			}
			if len(res.Details) != len(want) {
				t.Errorf("details %v, want %v", res.Details, want)
			}
		})
	}
}

// TestGrabPartial checks that a server which identifies itself and then
// falls silent is still reported as SSH, with the deadline's error.
func TestGrabPartial(t *testing.T) {
	server := grabtest.Script(grabtest.Send("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n")) // and then nothing
	res, _, err := grabtest.RunTarget(t, New(), server, 300*time.Millisecond, target)
	if fingerprint.StatusOf(err) != fingerprint.StatusTimeout {
		t.Errorf("status %s (%v), want timeout", fingerprint.StatusOf(err), err)
	}
	if res.Service != "ssh" || res.Product != "OpenSSH" || res.Version != "8.9p1" || res.Details["comments"] != "Ubuntu-3ubuntu0.6" {
		t.Errorf("got %+v", res)
	}
}

// TestGrabSSH1 checks that an SSH-1 only server is identified without a
// key exchange.
func TestGrabSSH1(t *testing.T) {
	res, _, err := grabtest.RunTarget(t, New(), grabtest.Script(grabtest.Send("SSH-1.5-Cisco-1.25\n")), 2*time.Second, target)
	if err != nil {
		t.Fatalf("Grab: %v", err)
	}
	if res.Product != "Cisco" || res.Version != "1.25" || res.Details["proto"] != "1.5" || res.Details["kex"] != "" {
		t.Errorf("got %+v", res)
	}
}

func TestParseIdent(t *testing.T) {
	tests := []struct {
		line string
		want Ident
		ok   bool
	}{
		{"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", Ident{"2.0", "OpenSSH_9.2p1", "Debian-2+deb12u3", "OpenSSH", "9.2p1"}, true},
		{"SSH-2.0-dropbear_2022.83\r\n", Ident{"2.0", "dropbear_2022.83", "", "Dropbear", "2022.83"}, true},
		{"SSH-2.0-OpenSSH_for_Windows_8.1\r\n", Ident{"2.0", "OpenSSH_for_Windows_8.1", "", "OpenSSH_for_Windows", "8.1"}, true},
		{"SSH-1.99-Cisco-1.25\n", Ident{"1.99", "Cisco-1.25", "", "Cisco", "1.25"}, true},
		{"SSH-2.0-libssh_0.9.6", Ident{"2.0", "libssh_0.9.6", "", "libssh", "0.9.6"}, true},
		{"SSH-2.0-mod_sftp\r\n", Ident{"2.0", "mod_sftp", "", "mod_sftp", ""}, true},
		{"SSH-2.0-Go\r\n", Ident{"2.0", "Go", "", "Go", ""}, true},
		{"SSH-2.0-\r\n", Ident{"2.0", "", "", "", ""}, true},
		{"SSH-2.0\r\n", Ident{}, false},
		{"HTTP/1.1 400 Bad Request\r\n", Ident{}, false},
	}
	for _, tc := range tests {
		got, err := ParseIdent([]byte(tc.line))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseIdent(%q) = %+v, %v; want %+v, ok %v", tc.line, got, err, tc.want, tc.ok)
		}
	}
}

// kexInitPacket builds an unencrypted binary packet (RFC 4253 §6) holding
// an SSH_MSG_KEXINIT (§7.1) with the given kex and host key name-lists and
// fixed lists for the rest.
func kexInitPacket(kex, hostKey string) []byte {
	var p []byte
	p = append(p, msgKexInit)
	p = append(p, bytes.Repeat([]byte{0xAA}, 16)...) // cookie
	for _, l := range []string{kex, hostKey, "aes128-ctr", "aes128-ctr", "hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""} {
		p = binary.BigEndian.AppendUint32(p, uint32(len(l)))
		p = append(p, l...)
	}
	p = append(p, 0)                        // first_kex_packet_follows
	p = binary.BigEndian.AppendUint32(p, 0) // reserved
	pad := 8 - (5+len(p))%8
	if pad < 4 {
		pad += 8
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(1+len(p)+pad))
	out = append(out, byte(pad))
	out = append(out, p...)
	return append(out, make([]byte, pad)...)
}

func TestParseKexInit(t *testing.T) {
	good := kexInitPacket("curve25519-sha256,diffie-hellman-group14-sha256", "ssh-ed25519,rsa-sha2-512")
	tests := []struct {
		name    string
		in      []byte
		kex     []string
		hostKey []string
		ok      bool
	}{
		{"kexinit", good, []string{"curve25519-sha256", "diffie-hellman-group14-sha256"}, []string{"ssh-ed25519", "rsa-sha2-512"}, true},
		{"followed by another packet", append(slices.Clone(good), 0, 0, 0, 12, 10), []string{"curve25519-sha256", "diffie-hellman-group14-sha256"}, []string{"ssh-ed25519", "rsa-sha2-512"}, true},
		{"empty lists", kexInitPacket("", ""), nil, nil, true},
		{"cut short", good[:40], nil, nil, false},
		{"length past maxPacket", append([]byte{0, 1, 0, 0, 4}, good[5:]...), nil, nil, false},
		{"padding past length", append([]byte{0, 0, 0, 2, 9}, good[5:]...), nil, nil, false},
		{"not KEXINIT", func() []byte { b := slices.Clone(good); b[5] = 21; return b }(), nil, nil, false},
		{"name-list past payload", func() []byte { b := slices.Clone(good); b[5+17] = 0x7f; return b }(), nil, nil, false},
		{"empty", nil, nil, nil, false},
	}
	for _, tc := range tests {
		got, err := ParseKexInit(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got.Kex, tc.kex) || !slices.Equal(got.HostKey, tc.hostKey) {
			t.Errorf("%s: got %+v, %v; want %q %q ok %v", tc.name, got, err, tc.kex, tc.hostKey, tc.ok)
		}
	}
}

func TestGreets(t *testing.T) {
	for in, want := range map[string]bool{
		"SSH-2.0-OpenSSH_9.6\r\n":    true,
		"banner line\r\nSSH-2.0-x":   true,
		"220 mail ESMTP Postfix\r\n": false,
		"":                           false,
	} {
		if got := New().Greets([]byte(in)); got != want {
			t.Errorf("Greets(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{
		// An identification, then garbage where the key exchange belongs.
		Prefix:        "SSH-2.0-OpenSSH_9.2p1\r\n",
		Trickle:       "x",
		Flood:         "pre-identification line\r\n",
		Target:        target,
		NotRecognised: []string{"junk", "flood"},
		Timeout:       []string{"silent"},
		Check: func(t *testing.T, name string, res fingerprint.Result, err error) {
			if name == "prefix junk" && (res.Service != "ssh" || res.Product != "OpenSSH" || res.Details["kex"] != "") {
				t.Errorf("got %+v, %v", res, err)
			}
		},
	})
}

func FuzzParseIdent(f *testing.F) {
	// The common OpenSSH form with comments.
	f.Add([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"))
	// A canonicalised product name, LF only.
	f.Add([]byte("SSH-2.0-dropbear_2022.83\n"))
	// A version after '-' and the SSH-1 compatibility protocol.
	f.Add([]byte("SSH-1.99-Cisco-1.25"))
	// No version, underscore not followed by a digit.
	f.Add([]byte("SSH-2.0-mod_sftp"))
	// Missing software version separator.
	f.Add([]byte("SSH-2.0"))
	// Several spaces in comments.
	f.Add([]byte("SSH-2.0-x_1 a b  c\r\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		id, err := ParseIdent(line)
		if err != nil {
			return
		}
		// Round trip: the fields rebuild the line.
		back := "SSH-" + id.Proto + "-" + id.Software
		if id.Comments != "" {
			back += " " + id.Comments
		}
		trimmed := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if back != trimmed && back+" " != trimmed { // a lone space: empty comments

			t.Errorf("rebuilt %q from %q", back, trimmed)
		}
		// Product and version come from the software version.
		if id.Version != "" && !strings.HasSuffix(id.Software, id.Version) {
			t.Errorf("version %q not at the end of %q", id.Version, id.Software)
		}
		if !strings.HasPrefix(strings.ToLower(id.Software), strings.ToLower(id.Product)) {
			t.Errorf("product %q not at the start of %q", id.Product, id.Software)
		}
	})
}

func FuzzParseKexInit(f *testing.F) {
	// A well-formed KEXINIT.
	f.Add(kexInitPacket("curve25519-sha256,ecdh-sha2-nistp256", "ssh-ed25519"))
	// Empty name-lists.
	f.Add(kexInitPacket("", ""))
	// A KEXINIT with trailing bytes of the next packet.
	f.Add(append(kexInitPacket("a", "b"), 0, 0, 0, 1))
	// A header with no payload.
	f.Add([]byte{0, 0, 0, 1, 0})
	// A huge packet length.
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 4, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKexInit(b)
		if err != nil {
			return
		}
		kex, hk := strings.Join(k.Kex, ","), strings.Join(k.HostKey, ",")
		if !bytes.Contains(b, []byte(kex)) || !bytes.Contains(b, []byte(hk)) {
			t.Errorf("lists %q %q are not in the input", kex, hk)
		}
		// Round trip: the lists packed again parse to the same lists.
		k2, err := ParseKexInit(kexInitPacket(kex, hk))
		if err != nil || !slices.Equal(k2.Kex, k.Kex) || !slices.Equal(k2.HostKey, k.HostKey) {
			t.Errorf("round trip of %q %q gave %+v, %v", kex, hk, k2, err)
		}
	})
}
