module github.com/reachscan/reach

go 1.26.0

require (
	github.com/dchest/siphash v1.2.3
	github.com/google/gopacket v1.1.19
	github.com/maxmind/mmdbwriter v1.2.0
	github.com/oschwald/maxminddb-golang/v2 v2.9.0
	github.com/urfave/cli/v2 v2.27.7
	go4.org/netipx v0.0.0-20231129151722-fdeea329fbba
)

require (
	github.com/cpuguy83/go-md2man/v2 v2.0.7 // indirect
	github.com/russross/blackfriday/v2 v2.1.0 // indirect
	github.com/xrash/smetrics v0.0.0-20240521201337-686a1a2994c1 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
