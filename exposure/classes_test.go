package exposure

import (
	"net/netip"
	"testing"
	"time"

	"github.com/reachscan/reach/export"
)

// ip converts a dotted IPv4 address to host order.
func ip(s string) uint32 { return u32(netip.MustParseAddr(s)) }

// open builds an open row.
func open(addr string, port uint16, service, product, version, auth string) export.Row {
	return export.Row{Addr: ip(addr), Port: port, Status: export.StatusOpen, Service: service, Product: product, Version: version, Auth: auth}
}

func withTLS(r export.Row, sha string) export.Row {
	r.TLS.SHA256 = sha
	return r
}

func TestClassify(t *testing.T) {
	expired := withTLS(open("198.19.1.1", 443, "http", "nginx", "", ""), "ab")
	expired.TLS.Expired, expired.TLS.NotAfter = true, time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		row    export.Row
		class  Class
		sev    Severity
		unauth bool
		reason string // exact when set
	}{
		{"redis without auth", open("198.19.1.3", 6379, "redis", "Redis", "7.0.15", "none"), DataService, Critical, true,
			"Redis 7.0.15 answers without authentication on 198.19.1.3:6379: anyone who reaches it can read its data."},
		{"postgres asks for a password", open("198.19.1.4", 5432, "postgresql", "PostgreSQL", "", "required"), DataService, Critical, false,
			"PostgreSQL on 198.19.1.4:5432 is reachable; it asks for a password."},
		{"mariadb, auth unknown", open("198.19.1.5", 3306, "mysql", "MariaDB", "10.11.6", ""), DataService, Critical, false,
			"MariaDB 10.11.6 on 198.19.1.5:3306 is reachable; whether it asks for a password is unknown."},
		{"mongodb on an odd port", open("10.0.0.1", 1234, "mongodb", "MongoDB", "7.0.2", "none"), DataService, Critical, true, ""},
		{"elasticsearch", open("10.0.0.1", 9200, "elasticsearch", "Elasticsearch", "8.13.0", "none"), DataService, Critical, true, ""},
		{"opensearch", open("10.0.0.1", 9200, "opensearch", "OpenSearch", "2.13.0", "required"), DataService, Critical, false, ""},
		{"memcached, no product name", open("10.0.0.1", 11211, "memcached", "", "1.6.21", "none"), DataService, Critical, true,
			"memcached 1.6.21 answers without authentication on 10.0.0.1:11211: anyone who reaches it can read its data."},
		{"unidentified on 5432", open("10.0.0.1", 5432, "", "", "", ""), DataService, Critical, false,
			"An unidentified service answers on 10.0.0.1:5432, the usual port of PostgreSQL."},
		{"unidentified on 27017", open("10.0.0.1", 27017, "", "", "", ""), DataService, Critical, false, ""},
		{"unidentified on 6379", open("10.0.0.1", 6379, "banner", "", "", ""), DataService, Critical, false,
			"An unidentified service that sent a banner answers on 10.0.0.1:6379, the usual port of Redis."},
		{"unidentified on 9200", open("10.0.0.1", 9200, "", "", "", ""), DataService, Critical, false, ""},
		{"unidentified on 11211", open("10.0.0.1", 11211, "", "", "", ""), DataService, Critical, false, ""},
		{"unidentified on 5984", open("10.0.0.1", 5984, "", "", "", ""), DataService, Critical, false, ""},
		{"unidentified on 9042", open("10.0.0.1", 9042, "", "", "", ""), DataService, Critical, false, ""},
		{"unidentified on 3306", open("10.0.0.1", 3306, "", "", "", ""), DataService, Critical, false, ""},
		{"ssh", open("198.19.1.2", 22, "ssh", "OpenSSH", "9.6p1", "required"), RemoteAdmin, High, false,
			"OpenSSH 9.6p1 on 198.19.1.2:22 offers remote administration to anyone who reaches it."},
		{"rdp", open("10.0.0.1", 3389, "rdp", "", "", ""), RemoteAdmin, High, false, ""},
		{"vnc with a password", open("10.0.0.1", 5900, "vnc", "", "", "required"), RemoteAdmin, High, false, ""},
		{"vnc without a password", open("10.0.0.1", 5901, "vnc", "", "", "none"), RemoteAdmin, Critical, true,
			"VNC on 10.0.0.1:5901 lets anyone in without a password."},
		{"telnet", open("10.0.0.1", 23, "telnet", "", "", ""), RemoteAdmin, High, false,
			"Telnet on 10.0.0.1:23 offers a remote login in clear text."},
		{"unidentified on 22", open("10.0.0.1", 22, "", "", "", ""), RemoteAdmin, High, false, ""},
		{"unidentified on 3389", open("10.0.0.1", 3389, "", "", "", ""), RemoteAdmin, High, false, ""},
		{"unidentified on 23", open("10.0.0.1", 23, "", "", "", ""), RemoteAdmin, High, false, ""},
		{"webmin console", open("10.0.0.1", 10000, "http", "MiniServ", "2.105", ""), RemoteAdmin, High, false,
			"MiniServ 2.105 serves HTTP on 10.0.0.1:10000, the port of the Webmin console."},
		{"proxmox console over TLS", withTLS(open("10.0.0.1", 8006, "http", "", "", ""), "ab"), RemoteAdmin, High, false,
			"A web server serves HTTPS on 10.0.0.1:8006, the port of the Proxmox VE console."},
		{"cockpit, unidentified", open("10.0.0.1", 9090, "tls", "", "", ""), RemoteAdmin, High, false,
			"An unidentified service behind TLS answers on 10.0.0.1:9090, the usual port of the Cockpit console."},
		{"docker API", open("10.0.0.1", 2375, "", "", "", ""), RemoteAdmin, Critical, false, ""},
		{"http on 80", open("198.19.1.1", 80, "http", "nginx", "1.24.0", ""), Web, Info, false,
			"nginx 1.24.0 serves HTTP on 198.19.1.1:80."},
		{"https on 443", withTLS(open("198.19.1.1", 443, "http", "nginx", "1.24.0", ""), "ab"), Web, Info, false,
			"nginx 1.24.0 serves HTTPS on 198.19.1.1:443."},
		{"https on 8443", withTLS(open("198.19.1.1", 8443, "http", "nginx", "1.24.0", ""), "ab"), Web, Medium, false,
			"nginx 1.24.0 serves HTTPS on 198.19.1.1:8443, outside the usual web ports 80 and 443: review what it is."},
		{"http on 8080", open("10.0.0.1", 8080, "http", "Jetty", "", ""), Web, Medium, false, ""},
		{"unidentified TLS on 443", open("10.0.0.1", 443, "tls", "", "", ""), Web, Info, false,
			"An unidentified service behind TLS answers on 10.0.0.1:443, a web port."},
		{"expired certificate", expired, Web, Info, false,
			"nginx serves HTTPS on 198.19.1.1:443. Its certificate expired on 2024-01-31."},
		{"ftp with a login", open("10.0.0.1", 21, "ftp", "vsftpd", "3.0.5", "required"), FileTransfer, Medium, false,
			"vsftpd 3.0.5 on 10.0.0.1:21 is reachable; FTP sends passwords in clear text."},
		{"ftp anonymous", open("10.0.0.1", 21, "ftp", "ProFTPD", "1.3.8", "none"), FileTransfer, High, true,
			"ProFTPD 1.3.8 on 10.0.0.1:21 allows anonymous login."},
		{"unidentified on 445", open("10.0.0.1", 445, "", "", "", ""), FileTransfer, High, false, ""},
		{"smtp", open("10.0.0.1", 25, "smtp", "Postfix", "", ""), Mail, Low, false,
			"Postfix on 10.0.0.1:25 is reachable; mail servers often are on purpose."},
		{"pop3", open("10.0.0.1", 110, "pop3", "Dovecot", "", ""), Mail, Low, false, ""},
		{"imap", open("10.0.0.1", 993, "imap", "Dovecot", "", ""), Mail, Low, false, ""},
		{"unidentified on 587", open("10.0.0.1", 587, "", "", "", ""), Mail, Low, false, ""},
		{"unknown port", open("10.0.0.1", 31337, "", "", "", ""), Unknown, Medium, false,
			"An unidentified service answers on 10.0.0.1:31337; review what it is."},
		{"banner on unknown port", open("10.0.0.1", 4444, "banner", "", "", ""), Unknown, Medium, false, ""},
		{"service not in the table", open("10.0.0.1", 1883, "mqtt", "Mosquitto", "2.0", ""), Unknown, Medium, false,
			"Mosquitto 2.0 on 10.0.0.1:1883 answers; it is not in the risk table, so review what it is."},
		{"closed port", export.Row{Addr: ip("10.0.0.1"), Port: 6379, Status: export.StatusClosed}, "", Info, false,
			"10.0.0.1:6379 is closed."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Classify(tt.row)
			if a.Class != tt.class || a.Severity != tt.sev || a.Unauthenticated != tt.unauth {
				t.Errorf("Classify = %s/%s unauth=%v, want %s/%s unauth=%v (%s)", a.Class, a.Severity, a.Unauthenticated, tt.class, tt.sev, tt.unauth, a.Reason)
			}
			if tt.reason != "" && a.Reason != tt.reason {
				t.Errorf("reason\n got %q\nwant %q", a.Reason, tt.reason)
			}
			if a.Reason == "" {
				t.Error("empty reason")
			}
		})
	}
}

func TestSeverity(t *testing.T) {
	order := []Severity{Info, Low, Medium, High, Critical}
	for i, s := range order {
		if s.Rank() != i {
			t.Errorf("%s.Rank() = %d, want %d", s, s.Rank(), i)
		}
		for _, in := range []string{s.String(), " " + s.String() + " "} {
			got, err := ParseSeverity(in)
			if err != nil || got != s {
				t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, err, s)
			}
		}
	}
	if got, err := ParseSeverity("HIGH"); err != nil || got != High {
		t.Errorf("ParseSeverity(HIGH) = %v, %v", got, err)
	}
	_, err := ParseSeverity("severe")
	if err == nil || err.Error() != `severity "severe": want one of info, low, medium, high, critical` {
		t.Errorf("ParseSeverity(severe) error = %v", err)
	}
	if got := Severity(9).String(); got != "severity(9)" {
		t.Errorf("Severity(9) = %q", got)
	}
}
