package testnet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Server is a real service from Debian running in the net namespace on one
// address of Internet.
type Server struct {
	Name  string     // nginx, sshd, redis, postgresql, mariadb
	Addr  netip.Addr // where it listens
	Ports []uint16   // where it listens itself
	// Forwarded are more ports of Addr that nftables forwards (DNAT) to
	// Ports[0]: the service on a port it cannot listen on twice.
	Forwarded []uint16
	Service   string // what a banner grab should identify
}

// AllPorts returns Ports and Forwarded.
func (s Server) AllPorts() []uint16 { return append(slices.Clone(s.Ports), s.Forwarded...) }

// Servers is the ground truth of StartServers: which service listens
// where, on its usual ports and on unusual ones (nginx HTTP on 10080 and
// HTTPS on 9444, sshd on 2200, redis forwarded from 7000). Every other pair
// of Internet is closed (the kernel answers RST) when the network has AnyIP.
// PostgreSQL trusts every client (no password): an exposure to find.
var Servers = []Server{
	{Name: "nginx", Addr: netip.MustParseAddr("198.19.1.1"), Ports: []uint16{80, 443, 8443, 9444, 10080}, Service: "http"},
	{Name: "sshd", Addr: netip.MustParseAddr("198.19.1.2"), Ports: []uint16{22, 2200}, Service: "ssh"},
	{Name: "redis", Addr: netip.MustParseAddr("198.19.1.3"), Ports: []uint16{6379}, Forwarded: []uint16{7000}, Service: "redis"},
	{Name: "postgresql", Addr: netip.MustParseAddr("198.19.1.4"), Ports: []uint16{5432}, Service: "postgresql"},
	{Name: "mariadb", Addr: netip.MustParseAddr("198.19.1.5"), Ports: []uint16{3306}, Service: "mysql"},
}

// ServerAt returns the real server listening on port at addr (host order),
// if any.
func ServerAt(addr uint32, port uint16) (Server, bool) {
	for _, s := range Servers {
		b := s.Addr.As4()
		if uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]) == addr && slices.Contains(s.AllPorts(), port) {
			return s, true
		}
	}
	return Server{}, false
}

// ServerBlock is the /24 of Internet the servers live in.
var ServerBlock = netip.MustParsePrefix("198.19.1.0/24")

// ServerBinaries are the programs StartServers needs (Debian packages
// nginx, openssh-server, redis-server, postgresql, mariadb-server).
var ServerBinaries = map[string]string{
	"nginx": "/usr/sbin/nginx", "sshd": "/usr/sbin/sshd", "redis": "/usr/bin/redis-server",
	"postgresql": "/usr/lib/postgresql/15/bin/postgres", "mariadb": "/usr/sbin/mariadbd",
}

// StartServers starts every server of Servers in the net namespace (which
// must have AnyIP) and waits until each listens. They are stopped by Close.
func (n *Network) StartServers(ctx context.Context) error {
	for name, bin := range ServerBinaries {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("server %s: %s missing (apt-get install nginx openssh-server redis-server postgresql mariadb-server)", name, bin)
		}
	}
	dir, err := os.MkdirTemp("", "reach-servers-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	n.serverDir = dir
	n.cleanup = append(n.cleanup, func() { os.RemoveAll(dir) })
	for _, s := range Servers {
		sd := filepath.Join(dir, s.Name)
		if err := os.MkdirAll(sd, 0o755); err != nil {
			return err
		}
		cmd, err := n.serverCommand(ctx, s, sd)
		if err != nil {
			return fmt.Errorf("server %s: %w", s.Name, err)
		}
		logf, _ := os.Create(filepath.Join(sd, "out.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("server %s: %w", s.Name, err)
		}
		n.procs = append(n.procs, cmd)
		if err := n.waitListening(ctx, s, 30*time.Second); err != nil {
			log, _ := os.ReadFile(filepath.Join(sd, "out.log"))
			return fmt.Errorf("server %s: %w\n%s", s.Name, err, log)
		}
		if err := n.forward(ctx, s); err != nil {
			return fmt.Errorf("server %s: %w", s.Name, err)
		}
	}
	return nil
}

// forward adds an nftables DNAT rule in the net namespace for each of s's
// Forwarded ports, to s.Addr:s.Ports[0].
func (n *Network) forward(ctx context.Context, s Server) error {
	if len(s.Forwarded) == 0 {
		return nil
	}
	var rules strings.Builder
	rules.WriteString("table ip reach_fwd {\n chain pre {\n  type nat hook prerouting priority dstnat;\n")
	for _, p := range s.Forwarded {
		fmt.Fprintf(&rules, "  ip daddr %s tcp dport %d dnat to %s:%d\n", s.Addr, p, s.Addr, s.Ports[0])
	}
	rules.WriteString(" }\n}\n")
	cmd := n.Command(ctx, n.Net, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft (apt-get install nftables): %w: %s", err, out)
	}
	return nil
}

func (n *Network) serverCommand(ctx context.Context, s Server, dir string) (*exec.Cmd, error) {
	addr := s.Addr.String()
	switch s.Name {
	case "nginx":
		if err := selfSignedCert(dir, addr); err != nil {
			return nil, err
		}
		for _, d := range []string{"tmp", "logs"} {
			os.MkdirAll(filepath.Join(dir, d), 0o777)
		}
		conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp/body; proxy_temp_path %[1]s/tmp/proxy; fastcgi_temp_path %[1]s/tmp/fcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi; scgi_temp_path %[1]s/tmp/scgi;
  server {
    listen %[2]s:80; listen %[2]s:443 ssl; listen %[2]s:8443 ssl; listen %[2]s:9444 ssl; listen %[2]s:10080;
    ssl_certificate %[1]s/cert.pem; ssl_certificate_key %[1]s/key.pem;
    location / { default_type text/html; return 200 "<html><head><title>reach demo</title></head><body>simulated</body></html>\n"; }
  }
}
`, dir, addr)
		if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
			return nil, err
		}
		return n.Command(ctx, n.Net, ServerBinaries["nginx"], "-c", filepath.Join(dir, "nginx.conf"), "-p", dir), nil
	case "sshd":
		key := filepath.Join(dir, "host_ed25519")
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %w: %s", err, out)
		}
		os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
		conf := fmt.Sprintf("Port 22\nPort 2200\nListenAddress %s\nHostKey %s\nPidFile %s/sshd.pid\nUsePAM no\nPasswordAuthentication no\n", addr, key, dir)
		if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o644); err != nil {
			return nil, err
		}
		return n.Command(ctx, n.Net, ServerBinaries["sshd"], "-D", "-e", "-f", filepath.Join(dir, "sshd_config")), nil
	case "redis":
		return n.Command(ctx, n.Net, ServerBinaries["redis"], "--bind", addr, "--port", "6379", "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--protected-mode", "no", "--dir", dir), nil
	case "postgresql":
		data := filepath.Join(dir, "data")
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, err
		}
		if out, err := exec.CommandContext(ctx, "chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown: %w: %s", err, out)
		}
		initdb := filepath.Join(filepath.Dir(ServerBinaries["postgresql"]), "initdb")
		if out, err := exec.CommandContext(ctx, "runuser", "-u", "postgres", "--", initdb, "-D", data, "-A", "trust", "-U", "postgres").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb: %w: %s", err, out)
		}
		// trust every client, from anywhere: an exposure for the review
		hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		_, err = hba.WriteString("host all all 0.0.0.0/0 trust\n")
		if err = errors.Join(err, hba.Close()); err != nil {
			return nil, err
		}
		return n.Command(ctx, n.Net, "runuser", "-u", "postgres", "--", ServerBinaries["postgresql"], "-D", data,
			"-c", "listen_addresses="+addr, "-c", "port=5432", "-c", "unix_socket_directories="+dir), nil
	case "mariadb":
		data := filepath.Join(dir, "data")
		if out, err := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=mysql", "--auth-root-authentication-method=socket").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mariadb-install-db: %w: %s", err, out)
		}
		exec.CommandContext(ctx, "chown", "-R", "mysql:mysql", dir).Run()
		// an account for any host, so the server greets remote clients
		// instead of refusing them (error 1130) before the handshake
		boot := exec.CommandContext(ctx, ServerBinaries["mariadb"], "--no-defaults", "--datadir="+data, "--user=mysql", "--bootstrap")
		boot.Stdin = strings.NewReader("FLUSH PRIVILEGES;\nCREATE USER 'app'@'%' IDENTIFIED BY 'not-the-password';\n")
		if out, err := boot.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mariadbd --bootstrap: %w: %s", err, out)
		}
		return n.Command(ctx, n.Net, ServerBinaries["mariadb"], "--no-defaults", "--datadir="+data, "--user=mysql",
			"--bind-address="+addr, "--port=3306", "--socket="+filepath.Join(dir, "mysqld.sock"), "--pid-file="+filepath.Join(dir, "mysqld.pid"),
			"--skip-log-bin", "--log-error="+filepath.Join(dir, "error.log")), nil
	}
	return nil, errors.New("unknown server")
}

// waitListening polls the net namespace's sockets until s listens on all
// its ports.
func (n *Network) waitListening(ctx context.Context, s Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, _ := n.Command(ctx, n.Net, "ss", "-Htln").Output()
		missing := 0
		for _, p := range s.Ports {
			if !strings.Contains(string(out), fmt.Sprintf("%s:%d ", s.Addr, p)) {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %s", s.Addr, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// NginxCertificate returns the self-signed certificate nginx serves on its
// TLS ports (generated by StartServers).
func (n *Network) NginxCertificate() (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(n.serverDir, "nginx", "cert.pem"))
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("nginx cert.pem: no PEM block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// selfSignedCert writes cert.pem and key.pem for host into dir.
func selfSignedCert(dir, host string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reach-demo.test", Organization: []string{"reach simulated network"}},
		DNSNames: []string{"reach-demo.test"}, IPAddresses: []net.IP{net.ParseIP(host)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}
