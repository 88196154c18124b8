package agent

import (
	"errors"
	"slices"
	"testing"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/network"
)

// TestEgressConversion: rules cross the RPC unchanged, none stays none, and a
// rule that does not parse is refused by the network rather than dropped.
func TestEgressConversion(t *testing.T) {
	e, err := network.ParseEgress([]string{"1.2.3.4", "*.example.com"}, []string{"0.0.0.0/0"})
	if err != nil {
		t.Fatal(err)
	}
	p := egressToProto(e)
	if !slices.Equal(p.GetAllowCidrs(), []string{"1.2.3.4/32"}) || !slices.Equal(p.GetAllowDomains(), []string{"*.example.com"}) ||
		!slices.Equal(p.GetDenyCidrs(), []string{"0.0.0.0/0"}) {
		t.Fatalf("egressToProto = %v", p)
	}
	back := egressFromProto(p)
	if a1, d1 := back.Strings(); !slices.Equal(a1, []string{"1.2.3.4/32", "*.example.com"}) || !slices.Equal(d1, []string{"0.0.0.0/0"}) {
		t.Fatalf("round trip = %v %v", a1, d1)
	}
	if egressToProto(nil) != nil || egressFromProto(nil) != nil || egressFromProto(&agentv1.EgressRules{}) != nil {
		t.Error("no rules must stay no rules")
	}
	for _, bad := range []*agentv1.EgressRules{
		{DenyCidrs: []string{"not a cidr"}},
		{AllowCidrs: []string{"10.0.0.1/8"}},
		{AllowDomains: []string{"Upper.example.com"}},
	} {
		if err := egressFromProto(bad).Validate(); !errors.Is(err, network.ErrInvalidEgress) {
			t.Errorf("rules %v: %v, want ErrInvalidEgress", bad, err)
		}
	}
}
