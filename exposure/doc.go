// Package exposure classifies exposures, compares them with the intended
// exposure a team declares, and reports what changed between scans.
//
// # Risk classes
//
// Classify maps each open port to a class and a severity, from one table
// (classes.go). The identified service decides; when none was identified
// (service "", "banner" or "tls") the port's customary service does.
//
//	class          severity  services (ports used when the service is unknown)
//	data-service   critical  postgresql mysql mongodb redis elasticsearch opensearch memcached
//	                         couchdb cassandra mssql oracle etcd zookeeper
//	                         (5432 3306 27017 27018 6379 9200 11211 5984 9042 1433 1521 2379 2181)
//	remote-admin   high      ssh rdp vnc telnet winrm (22 3389 5900 5901 23 5985 5986);
//	                         consoles by port: Webmin 10000, Proxmox VE 8006, Cockpit 9090;
//	                         critical: the Docker Engine API without TLS (2375), and remote
//	                         logins that let anyone in without a password
//	file-transfer  medium    ftp rsync (21 873); high: smb nfs (445 2049) and anonymous FTP
//	mail           low       smtp pop3 imap (25 465 587 110 995 143 993): mail servers are
//	                         usually meant to be reachable and ask for credentials
//	web            info      http on 80 and 443; medium on any other port (review it)
//	unknown        medium    anything else
//
// A data service that answered without credentials (Row.Auth "none") stays
// critical and is flagged Unauthenticated, with a reason that says so.
// Closed ports are not exposures.
//
// # Policy
//
// A policy file is YAML and declares the intended exposure:
//
//	default:                      # optional: applies to addresses no rule matches
//	  owner: secops
//	  allow: []                   # the default default allows nothing, with no owner
//	rules:
//	  - match: 198.19.1.0/24      # a CIDR, a single address (a /32), an AS number
//	    owner: web-team           #   ("AS64496"), or a list of them
//	    allow: [80, 443, https]   # ports, ranges ("8000-8099"), service names, or "any"
//	    note: public web front ends
//
// Keys are match (required), owner, allow and note; any other key is an
// error. Service names are those the grabbers set (ssh, redis, …), plus
// "https" (HTTP over TLS); a service name matches only an identified service,
// so list the port as well to allow it where it was not identified.
//
// The rule with the longest prefix containing an address governs it, alone:
// an address beats its /24, which beats its /16, and a rule without an owner
// does not inherit one from a wider rule. An AS entry is expanded through
// the ASN dataset (an unknown AS is an error) into the prefixes it
// originates; at equal prefix length a CIDR or address rule beats an AS
// prefix, and between two AS prefixes the earlier rule wins. Host bits set
// in a CIDR, a CIDR or address listed by two rules, a port outside 1-65535
// and an unknown service name are errors. Every error names the file, line
// and column: "policy.yaml:7:12: port \"70000\": want 1-65535".
//
// # Review
//
// Review judges each open port against the rule that governs it: unexpected
// (the rule does not allow it), ownerless (allowed, but the rule names no
// owner) or expected (allowed and owned). Findings sort by severity,
// critical first, then kind, unexpected first, then address and port.
// FailOn is true when a finding other than expected reaches a severity.
//
// # Diff
//
// Diff compares two scans of the same targets: new (open now, not before),
// gone (open before, not now; info) and changed (service, product, version,
// TLS certificate or authentication changed), with the new row's severity.
//
// Report.Rows and ChangeRows turn findings and changes into export rows with
// Class, Severity, Owner, Reason and Finding filled, for the export writers;
// WriteText and WriteDiffText print them for a reviewer.
package exposure
