// Package registry lists reach's grabbers, built explicitly in code (no
// init() registration): the one place that knows every protocol package.
package registry

import (
	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/banner"
	"github.com/reachscan/reach/fingerprint/ftp"
	"github.com/reachscan/reach/fingerprint/mail"
	"github.com/reachscan/reach/fingerprint/memcached"
	"github.com/reachscan/reach/fingerprint/mongodb"
	"github.com/reachscan/reach/fingerprint/mysql"
	"github.com/reachscan/reach/fingerprint/postgres"
	"github.com/reachscan/reach/fingerprint/rdp"
	"github.com/reachscan/reach/fingerprint/redis"
	"github.com/reachscan/reach/fingerprint/sshid"
	"github.com/reachscan/reach/fingerprint/telnet"
	"github.com/reachscan/reach/fingerprint/vnc"
	"github.com/reachscan/reach/fingerprint/web"
)

// Grabbers returns a new instance of every grabber. The order is the order
// of the generic probes on a port no grabber claims: HTTP first (the most
// common unknown service), then the data services whose probes are
// cheapest, then RDP. Server-first protocols (SSH, MySQL, mail, FTP, VNC,
// Telnet) are identified from their greeting instead.
func Grabbers() []fingerprint.Grabber {
	return []fingerprint.Grabber{
		web.New(),
		redis.New(),
		memcached.New(),
		postgres.New(),
		mongodb.New(),
		rdp.New(),
		sshid.New(),
		mysql.New(),
		mail.NewSMTP(),
		mail.NewPOP3(),
		mail.NewIMAP(),
		ftp.New(),
		vnc.New(),
		telnet.New(),
	}
}

// Fallback returns the generic banner grabber, for servers no grabber
// recognises.
func Fallback() fingerprint.Grabber { return banner.New() }
