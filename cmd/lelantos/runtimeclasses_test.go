package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRuntimeClasses(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "gvisor", want: []string{"gvisor"}},
		{in: "gvisor,runc", want: []string{"gvisor", "runc"}},
		{in: " runc , gvisor,runc", want: []string{"runc", "gvisor"}},
		{in: "runc", wantErr: "must include gvisor"},
		{in: "", wantErr: "must include gvisor"},
		{in: "gvisor,kata", wantErr: `unknown runtime class "kata"`},
	}
	for _, tt := range tests {
		got, err := parseRuntimeClasses(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parse %q: %v %v, want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parse %q: %v %v, want %v", tt.in, got, err, tt.want)
		}
	}
}
