package testnet

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServersListen starts every real server in a simulated network and
// checks each listens where the ground truth says, and that Close removes
// the namespaces and processes.
func TestServersListen(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := New(ctx, Options{AnyIP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.StartServers(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := n.Command(ctx, n.Net, "ss", "-Htln").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Servers {
		for _, p := range s.Ports {
			if want := s.Addr.String() + ":" + strconv.Itoa(int(p)) + " "; !strings.Contains(string(out), want) {
				t.Errorf("%s does not listen on %s:%d", s.Name, s.Addr, p)
			}
		}
	}
	ns := n.Net
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if list, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(list), ns) {
		t.Fatalf("namespace %s left", ns)
	}
}
