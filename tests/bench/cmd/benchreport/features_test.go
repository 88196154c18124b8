package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// sampleFeatures is a features.json as features.mjs writes it, cut to the figures
// with targets.
const sampleFeatures = `{
 "interpreter": {
  "create": {"interpreter": {"totalMs": {"p50": 140, "p99": 400, "n": 10}},
             "base": {"totalMs": {"p50": 100, "p99": 200, "n": 10}}},
  "roundTrip": {"runCodeMs": {"p50": 6, "p99": 9, "n": 100}, "commandMs": {"p50": 5, "p99": 7, "n": 100}}
 },
 "egress": {"sizeMiB": 1024, "rules": {"p50MBps": 180}, "none": {"p50MBps": 200}, "slowerPct": 10.5}
}`

func TestFeatureSections(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(sampleFeatures), &doc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		features map[string]any
		measure  string // the start of a row's measure
		fig      string // the start of its figure's text
		status   string
	}{
		{"create within 1.5x", doc, "create to first `runCode('1+1')` result, each create", "140.0 ms (1.40×", "met"},
		{"create p99 past 1.5x", doc, "create to first `runCode('1+1')` result, p99", "400.0 ms (2.00×", "**missed**"},
		{"round trip within 1.5x", doc, "`runCode('1+1')` round trip, p50", "6.0 ms (1.20×", "met"},
		{"egress past 10%", doc, "cost of the domain check", "10.5 % slower", "**missed**"},
		{"no features.json", nil, "cost of the domain check", "not measured", "not measured"},
		{"figure without its baseline", map[string]any{"interpreter": map[string]any{}}, "`runCode('1+1')` round trip, p50", "not measured", "not measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &results{features: tt.features}
			var found *row
			for _, s := range featureSections(r) {
				for i := range s.rows {
					if strings.HasPrefix(s.rows[i].measure, tt.measure) {
						found = &s.rows[i]
					}
				}
			}
			if found == nil {
				t.Fatalf("no row starts with %q", tt.measure)
			}
			if !strings.HasPrefix(found.fig.text, tt.fig) {
				t.Errorf("figure %q, want it to start with %q", found.fig.text, tt.fig)
			}
			if got := found.status(); got != tt.status {
				t.Errorf("status %q, want %q", got, tt.status)
			}
		})
	}
}

func TestFeaturesInReport(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(sampleFeatures), &doc); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	render(&out, &results{bench: map[string]map[string]float64{}, features: doc}, machine{}, run{}, nil)
	for _, want := range []string{"## Code interpreter", "## Sandbox features", "## Templates", "<summary>features.json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}
