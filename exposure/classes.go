package exposure

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
)

// Severity orders how urgently an exposure needs a look:
// info < low < medium < high < critical.
type Severity uint8

// The severities, lowest first. The zero value is info.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// String is the severity's lowercase name ("high").
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// Rank is the severity's position in the order, 0 (info) to 4 (critical).
func (s Severity) Rank() int { return int(s) }

// ParseSeverity reads a severity name, case-insensitively ("high").
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Severity(i), nil
		}
	}
	return Info, fmt.Errorf("severity %q: want one of %s", s, strings.Join(severityNames[:], ", "))
}

// Class names what kind of exposure an open port is.
type Class string

// The risk classes.
const (
	DataService  Class = "data-service"  // databases, caches, search engines, key-value stores
	RemoteAdmin  Class = "remote-admin"  // remote logins and management consoles
	Web          Class = "web"           // HTTP and HTTPS
	Mail         Class = "mail"          // SMTP, POP3, IMAP
	FileTransfer Class = "file-transfer" // FTP, SMB, NFS, rsync
	Unknown      Class = "unknown"       // nothing identified it
)

// Assessment is the risk of one open port on its own, before any policy.
type Assessment struct {
	Class    Class
	Severity Severity
	// Unauthenticated is set when the service answered a real command or
	// query without credentials (Row.Auth "none").
	Unauthenticated bool
	Reason          string // a sentence a reviewer understands
}

// kind is one line of the risk table: a service, its display name, its
// class and severity, and the ports it usually listens on (used when the
// service was not identified).
type kind struct {
	service  string // grabber service name; "" for port-only entries
	name     string // how a reviewer calls it
	class    Class
	severity Severity
	ports    []uint16 // IANA-registered or customary ports
}

// table is the risk table, the one place classes and severities are
// decided. Ports follow the IANA Service Name and Transport Protocol Port
// Number Registry, or the vendor's documented default where IANA has none.
//
// Mail is low: mail servers are usually meant to be reachable, and SMTP,
// POP3 and IMAP all ask for credentials before giving anything away. FTP is
// medium (passwords cross in clear text) and high when it allows anonymous
// login; SMB and NFS are high.
var table = []kind{
	// data services: critical, whether or not they ask for a password
	{"postgresql", "PostgreSQL", DataService, Critical, []uint16{5432}},
	{"mysql", "MySQL", DataService, Critical, []uint16{3306}},
	{"mongodb", "MongoDB", DataService, Critical, []uint16{27017, 27018}},
	{"redis", "Redis", DataService, Critical, []uint16{6379}},
	{"elasticsearch", "Elasticsearch", DataService, Critical, []uint16{9200}},
	{"opensearch", "OpenSearch", DataService, Critical, nil}, // shares 9200 with Elasticsearch
	{"memcached", "memcached", DataService, Critical, []uint16{11211}},
	{"couchdb", "CouchDB", DataService, Critical, []uint16{5984}},
	{"cassandra", "Cassandra", DataService, Critical, []uint16{9042}},
	{"mssql", "Microsoft SQL Server", DataService, Critical, []uint16{1433}},
	{"oracle", "Oracle Database", DataService, Critical, []uint16{1521}},
	{"etcd", "etcd", DataService, Critical, []uint16{2379}},
	{"zookeeper", "ZooKeeper", DataService, Critical, []uint16{2181}},
	// remote administration: high
	{"ssh", "SSH", RemoteAdmin, High, []uint16{22}},
	{"rdp", "RDP", RemoteAdmin, High, []uint16{3389}},
	{"vnc", "VNC", RemoteAdmin, High, []uint16{5900, 5901}},
	{"telnet", "Telnet", RemoteAdmin, High, []uint16{23}},
	{"winrm", "WinRM", RemoteAdmin, High, []uint16{5985, 5986}},
	{"", "the Webmin console", RemoteAdmin, High, []uint16{10000}},
	{"", "the Proxmox VE console", RemoteAdmin, High, []uint16{8006}},
	{"", "the Cockpit console", RemoteAdmin, High, []uint16{9090}},
	{"", "the Docker Engine API without TLS", RemoteAdmin, Critical, []uint16{2375}},
	// file transfer
	{"ftp", "FTP", FileTransfer, Medium, []uint16{21}},
	{"smb", "SMB", FileTransfer, High, []uint16{445}},
	{"nfs", "NFS", FileTransfer, High, []uint16{2049}},
	{"rsync", "rsync", FileTransfer, Medium, []uint16{873}},
	// mail
	{"smtp", "SMTP", Mail, Low, []uint16{25, 465, 587}},
	{"pop3", "POP3", Mail, Low, []uint16{110, 995}},
	{"imap", "IMAP", Mail, Low, []uint16{143, 993}},
	// web: info on its usual ports, medium elsewhere (see classifyWeb)
	{"http", "HTTP", Web, Info, []uint16{80, 443}},
}

// webPorts are where web servers are meant to be (RFC 9110 §4.2: 80 for
// http, 443 for https).
var webPorts = []uint16{80, 443}

func byService(s string) (kind, bool) {
	for _, k := range table {
		if k.service != "" && k.service == s {
			return k, true
		}
	}
	return kind{}, false
}

func byPort(p uint16) (kind, bool) {
	for _, k := range table {
		for _, q := range k.ports {
			if q == p {
				return k, true
			}
		}
	}
	return kind{}, false
}

// consolePort reports the management console customarily on port p.
func consolePort(p uint16) (kind, bool) {
	k, ok := byPort(p)
	return k, ok && k.class == RemoteAdmin && k.service == ""
}

// KnownServices lists the service names the risk table knows, for policy
// validation; "https" is accepted too (HTTP over TLS).
func KnownServices() []string {
	var out []string
	for _, k := range table {
		if k.service != "" {
			out = append(out, k.service)
		}
	}
	return append(out, "https", "tls")
}

// Endpoint formats a row's address and port as "198.19.1.3:6379".
func Endpoint(r export.Row) string {
	return netip.AddrPortFrom(target.Addr(r.Addr), r.Port).String()
}

// label names what answered: "Redis 7.0.15", or the table's name when no
// product was identified.
func label(r export.Row, fallback string) string {
	name := r.Product
	if name == "" {
		name = fallback
	}
	if r.Version != "" {
		name += " " + r.Version
	}
	return name
}

// Classify assesses one row on its own. Closed ports are not exposures:
// they get class "" and severity info. A service the grabbers identified
// decides the class; when none was identified (service "", "banner" or
// "tls"), the port's customary service does, and the reason says so.
func Classify(r export.Row) Assessment {
	ep := Endpoint(r)
	if r.Status != export.StatusOpen {
		return Assessment{Severity: Info, Reason: fmt.Sprintf("%s is closed.", ep)}
	}
	switch r.Service {
	case "http":
		return classifyWeb(r, ep)
	case "", "banner", "tls":
		return classifyByPort(r, ep)
	}
	if k, ok := byService(r.Service); ok {
		return classifyKind(r, k, ep)
	}
	return Assessment{Class: Unknown, Severity: Medium,
		Reason: fmt.Sprintf("%s on %s answers; it is not in the risk table, so review what it is.", label(r, r.Service), ep) + certNote(r)}
}

func classifyKind(r export.Row, k kind, ep string) Assessment {
	a := Assessment{Class: k.class, Severity: k.severity}
	name := label(r, k.name)
	switch {
	case k.class == DataService && r.Auth == "none":
		a.Unauthenticated = true
		a.Reason = fmt.Sprintf("%s answers without authentication on %s: anyone who reaches it can read its data.", name, ep)
	case k.class == DataService && r.Auth == "required":
		a.Reason = fmt.Sprintf("%s on %s is reachable; it asks for a password.", name, ep)
	case k.class == DataService:
		a.Reason = fmt.Sprintf("%s on %s is reachable; whether it asks for a password is unknown.", name, ep)
	case k.service == "ftp" && r.Auth == "none":
		a.Severity, a.Unauthenticated = High, true
		a.Reason = fmt.Sprintf("%s on %s allows anonymous login.", name, ep)
	case k.service == "ftp":
		a.Reason = fmt.Sprintf("%s on %s is reachable; FTP sends passwords in clear text.", name, ep)
	case k.service == "telnet":
		a.Unauthenticated = r.Auth == "none"
		if a.Unauthenticated {
			a.Severity = Critical
			a.Reason = fmt.Sprintf("%s on %s gives a shell without a login.", name, ep)
		} else {
			a.Reason = fmt.Sprintf("%s on %s offers a remote login in clear text.", name, ep)
		}
	case k.class == RemoteAdmin && r.Auth == "none":
		a.Severity, a.Unauthenticated = Critical, true
		a.Reason = fmt.Sprintf("%s on %s lets anyone in without a password.", name, ep)
	case k.class == RemoteAdmin:
		a.Reason = fmt.Sprintf("%s on %s offers remote administration to anyone who reaches it.", name, ep)
	case k.class == Mail:
		a.Reason = fmt.Sprintf("%s on %s is reachable; mail servers often are on purpose.", name, ep)
	default:
		a.Reason = fmt.Sprintf("%s on %s is reachable.", name, ep)
	}
	return a
}

func classifyWeb(r export.Row, ep string) Assessment {
	scheme := "HTTP"
	if r.TLS.SHA256 != "" {
		scheme = "HTTPS"
	}
	name := label(r, "A web server")
	if k, ok := consolePort(r.Port); ok {
		return Assessment{Class: RemoteAdmin, Severity: k.severity,
			Reason: fmt.Sprintf("%s serves %s on %s, the port of %s.", name, scheme, ep, k.name) + certNote(r)}
	}
	for _, p := range webPorts {
		if r.Port == p {
			return Assessment{Class: Web, Severity: Info,
				Reason: fmt.Sprintf("%s serves %s on %s.", name, scheme, ep) + certNote(r)}
		}
	}
	return Assessment{Class: Web, Severity: Medium,
		Reason: fmt.Sprintf("%s serves %s on %s, outside the usual web ports 80 and 443: review what it is.", name, scheme, ep) + certNote(r)}
}

func classifyByPort(r export.Row, ep string) Assessment {
	what := "an unidentified service"
	switch r.Service {
	case "banner":
		what = "an unidentified service that sent a banner"
	case "tls":
		what = "an unidentified service behind TLS"
	}
	k, ok := byPort(r.Port)
	if !ok {
		return Assessment{Class: Unknown, Severity: Medium,
			Reason: fmt.Sprintf("%s answers on %s; review what it is.", upperFirst(what), ep) + certNote(r)}
	}
	if k.class == Web {
		return Assessment{Class: Web, Severity: Info,
			Reason: fmt.Sprintf("%s answers on %s, a web port.", upperFirst(what), ep) + certNote(r)}
	}
	return Assessment{Class: k.class, Severity: k.severity,
		Reason: fmt.Sprintf("%s answers on %s, the usual port of %s.", upperFirst(what), ep, k.name) + certNote(r)}
}

// certNote adds a sentence when the TLS certificate has expired.
func certNote(r export.Row) string {
	if r.TLS.Expired && !r.TLS.NotAfter.IsZero() {
		return " Its certificate expired on " + r.TLS.NotAfter.UTC().Format("2006-01-02") + "."
	}
	if r.TLS.Expired {
		return " Its certificate has expired."
	}
	return ""
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
