package testnet

import (
	"testing"

	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/exposure"
)

// TestDemoPolicy parses the embedded demo policy and checks that it governs
// each real server of Servers with the owner the demo's review expects.
func TestDemoPolicy(t *testing.T) {
	p, err := exposure.ParsePolicy("demo-policy.yaml", []byte(DemoPolicy), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"nginx": "web-team", "sshd": "infra", "redis": "lab", "postgresql": "", "mariadb": "lab"}
	for _, s := range Servers {
		r := p.RuleFor(target.U32(s.Addr))
		if r == nil || r.Owner != want[s.Name] {
			t.Errorf("%s (%s): rule %+v, want owner %q", s.Name, s.Addr, r, want[s.Name])
		}
	}
}
