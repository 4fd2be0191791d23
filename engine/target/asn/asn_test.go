package asn

import (
	"compress/gzip"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"go4.org/netipx"
)

const slice = "../../../testdata/asn/ip-location-db-asn-slice.csv"

func count(rs []netipx.IPRange) (n uint64) {
	for _, r := range rs {
		n += uint64(u32(r.To().As4())) - uint64(u32(r.From().As4())) + 1
	}
	return n
}

func u32(b [4]byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// TestRealDataset compares reach's address counts for real ASes with counts
// computed independently (Python ipaddress, see testdata/asn/README.md).
func TestRealDataset(t *testing.T) {
	want := map[uint32]uint64{714: 16920064, 2906: 155392, 13335: 1615360, 15169: 2482176, 32934: 449536, 20940: 256}
	gz := filepath.Join(t.TempDir(), "asn.bin")
	writeGzip(t, gz, readFile(t, slice))
	for _, path := range []string{slice, gz} {
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if db.Format() != FormatIPLocationDB {
			t.Fatalf("%s: format %s", path, db.Format())
		}
		var asns []uint32
		for a := range want {
			asns = append(asns, a)
		}
		got, err := db.Resolve(asns)
		if err != nil {
			t.Fatal(err)
		}
		for a, n := range want {
			if c := count(got[a]); c != n {
				t.Errorf("%s: AS%d has %d addresses, want %d", path, a, c, n)
			}
		}
	}
}

func TestUnknownASIsAnError(t *testing.T) {
	db, err := Open(slice)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Resolve([]uint32{13335, 64496, 64511})
	if err == nil || !strings.Contains(err.Error(), "AS64496, AS64511 not found") {
		t.Fatalf("error = %v", err)
	}
}

func TestFormats(t *testing.T) {
	tests := []struct {
		name, content string
		format        Format
		want          map[uint32]uint64
	}{
		{"pfx2as", "198.18.0.0\t24\t64496\n198.18.1.0\t25\t64496_64497\n198.18.2.0\t24\t64498,64497\n198.18.0.128\t25\t64496\n",
			FormatPfx2as, map[uint32]uint64{64496: 256 + 128, 64497: 128 + 256, 64498: 256}},
		{"ip2asn", "198.18.0.0\t198.18.0.255\t64496\tZZ\tTEST-A\n198.19.0.0\t198.19.0.9\t0\tNone\tNot routed\n2001:db8::\t2001:db8::ff\t64496\tZZ\tTEST-A\n198.18.1.0\t198.18.1.9\t64496\tZZ\tTEST-A\n",
			FormatIP2ASN, map[uint32]uint64{64496: 266}},
		{"ip-location-db numeric", "3323068416,3323068671,64496,\"Test, Inc.\"\n3323068672,3323068673,64497,Other\n",
			FormatIPLocationDB, map[uint32]uint64{64496: 256, 64497: 2}},
		{"ip-location-db with comments and CRLF", "# header\r\n198.18.0.0,198.18.0.3,64496,A\r\n",
			FormatIPLocationDB, map[uint32]uint64{64496: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, gz := range []bool{false, true} {
				path := filepath.Join(t.TempDir(), "db")
				if gz {
					writeGzip(t, path, []byte(tt.content))
				} else {
					os.WriteFile(path, []byte(tt.content), 0o644)
				}
				db, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				if db.Format() != tt.format {
					t.Fatalf("format %s, want %s", db.Format(), tt.format)
				}
				var asns []uint32
				for a := range tt.want {
					asns = append(asns, a)
				}
				got, err := db.Resolve(asns)
				if err != nil {
					t.Fatal(err)
				}
				for a, n := range tt.want {
					if c := count(got[a]); c != n {
						t.Errorf("AS%d: %d addresses, want %d", a, c, n)
					}
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct{ name, content, err string }{
		{"unknown format", "hello world\n", "unrecognised format"},
		{"bad pfx2as line", "198.18.0.0\t24\t64496\n198.18.1.0\t24\tAS?\n", ":2: AS number"},
		{"bad csv range", "198.18.0.0,198.18.0.3,64496,A\n198.18.0.9,198.18.0.1,64496,A\n", ":2: reversed range"},
		{"empty", "", "unrecognised format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			os.WriteFile(path, []byte(tt.content), 0o644)
			db, err := Open(path)
			if err == nil {
				_, err = db.Resolve([]uint32{64496})
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error = %v, want %q", err, tt.err)
			}
		})
	}
}

// TestMMDB builds a GeoLite2-ASN-shaped database with mmdbwriter and reads it
// back, plain and gzipped.
func TestMMDB(t *testing.T) {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		cidr string
		asn  uint32
	}{{"198.18.0.0/24", 64496}, {"198.18.4.0/22", 64496}, {"198.19.0.0/16", 64497}, {"2001:db8::/32", 64496}} {
		_, ipnet, _ := net.ParseCIDR(n.cidr)
		rec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(n.asn), "autonomous_system_organization": mmdbtype.String("TEST")}
		if err := tree.Insert(ipnet, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "asn.mmdb")
	f, _ := os.Create(path)
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	gz := filepath.Join(t.TempDir(), "asn.mmdb.gz")
	writeGzip(t, gz, readFile(t, path))
	for _, p := range []string{path, gz} {
		db, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if db.Format() != FormatMMDB {
			t.Fatalf("%s: format %s", p, db.Format())
		}
		got, err := db.Resolve([]uint32{64496, 64497})
		if err != nil {
			t.Fatal(err)
		}
		if c := count(got[64496]); c != 256+1024 {
			t.Errorf("AS64496: %d addresses, want 1280", c)
		}
		if c := count(got[64497]); c != 65536 {
			t.Errorf("AS64497: %d addresses, want 65536", c)
		}
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeGzip(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write(b)
	zw.Close()
	f.Close()
}
