package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
)

// installedVersion runs a server binary's version command inside the
// simulated network's far namespace (never on the host: a server that
// ignores the flag would listen there) and returns the first match of re
// in its output: what the grab must report.
func installedVersion(t *testing.T, nw *testnet.Network, re string, name string, args ...string) string {
	t.Helper()
	out, _ := nw.Command(t.Context(), nw.Net, name, args...).CombinedOutput()
	m := regexp.MustCompile(re).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("%s %v: no version in %q", name, args, out)
	}
	return m[1]
}

// TestScanBannersIdentifiesRealServers scans the real servers of the
// simulated network with --banners, on their usual ports and on unusual
// ones, and checks each identification against the installed packages and
// the certificate nginx serves.
func TestScanBannersIdentifiesRealServers(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{AnyIP: true, GRO: true}, 3*time.Minute)
	if err := nw.StartServers(ctx); err != nil {
		t.Fatal(err)
	}
	cert, err := nw.NginxCertificate()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	nginx := installedVersion(t, nw, `nginx/(\S+)`, "nginx", "-v")
	ssh := installedVersion(t, nw, `OpenSSH_(\S+?),`, "sshd", "-V")
	redis := installedVersion(t, nw, `v=(\S+)`, "redis-server", "--version")
	pg := installedVersion(t, nw, `\(PostgreSQL\) (\S+)`, testnet.ServerBinaries["postgresql"], "--version")
	maria := installedVersion(t, nw, `Ver (\d+\.\d+\.\d+)-MariaDB`, testnet.ServerBinaries["mariadb"], "--version")

	out := filepath.Join(t.TempDir(), "grab.jsonl")
	log, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "--seed", "4", "--rate", "2000", "--cooldown", "1s", "-q",
		"-p", "22,80,443,2200,3306,5432,6379,7000,8443,9444,10080", "--banners", "--grab-timeout", "8s", "-o", out, "198.19.1.0/29")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	rows, err := export.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]export.Row{}
	for _, r := range rows {
		got[target.Addr(r.Addr).String()+":"+strconv.Itoa(int(r.Port))] = r
	}
	for _, tc := range []struct {
		at, service, product, version string // version: a prefix of what the grab reports
		tls                           bool
		auth                          string
	}{
		{"198.19.1.1:80", "http", "nginx", nginx, false, ""},
		{"198.19.1.1:443", "http", "nginx", nginx, true, ""},
		{"198.19.1.1:8443", "http", "nginx", nginx, true, ""},
		{"198.19.1.1:9444", "http", "nginx", nginx, true, ""},   // HTTPS on an unusual port
		{"198.19.1.1:10080", "http", "nginx", nginx, false, ""}, // HTTP on an unusual port
		{"198.19.1.2:22", "ssh", "OpenSSH", ssh, false, ""},
		{"198.19.1.2:2200", "ssh", "OpenSSH", ssh, false, ""}, // SSH on an unusual port
		{"198.19.1.3:6379", "redis", "Redis", redis, false, "none"},
		{"198.19.1.3:7000", "redis", "Redis", redis, false, "none"}, // Redis on an unusual port
		{"198.19.1.4:5432", "postgresql", "PostgreSQL", pg, false, "none"},
		{"198.19.1.5:3306", "mysql", "MariaDB", maria, false, ""},
	} {
		r, ok := got[tc.at]
		if !ok {
			t.Errorf("%s: not reported", tc.at)
			continue
		}
		if r.GrabStatus != "success" || r.Service != tc.service || r.Product != tc.product || !strings.HasPrefix(r.Version, tc.version) || r.Auth != tc.auth {
			t.Errorf("%s: %s %q %q %q auth %q (%s); want %q %q %q… auth %q", tc.at, r.GrabStatus, r.Service, r.Product, r.Version, r.Auth, r.GrabError,
				tc.service, tc.product, tc.version, tc.auth)
		}
		if !tc.tls {
			if r.TLS.SHA256 != "" {
				t.Errorf("%s: TLS %+v on a plain port", tc.at, r.TLS)
			}
			continue
		}
		if r.TLS.SHA256 != hex.EncodeToString(sum[:]) || r.TLS.Subject != cert.Subject.String() || r.TLS.SANs != "reach-demo.test,198.19.1.1" ||
			!r.TLS.SelfSigned || r.TLS.Expired || !r.TLS.NotAfter.Equal(cert.NotAfter.UTC()) {
			t.Errorf("%s: TLS %+v; want the certificate nginx serves (%s, sha256 %x)", tc.at, r.TLS, cert.Subject, sum)
		}
		var chain []map[string]any
		if err := json.Unmarshal([]byte(r.TLS.Chain), &chain); err != nil || len(chain) != 1 {
			t.Errorf("%s: chain %q", tc.at, r.TLS.Chain)
		}
	}
	if r := got["198.19.1.2:22"]; !strings.Contains(r.Details, `"hostkey_type":"ssh-ed25519"`) {
		t.Errorf("ssh details %s: want the ed25519 host key", r.Details)
	}
	if len(rows) != 11 {
		t.Errorf("%d rows, want the 11 open pairs", len(rows))
	}
}
