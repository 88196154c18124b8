package engine

import "testing"

func TestParseMountinfo(t *testing.T) {
	for _, tt := range []struct {
		line string
		want Mount
		ok   bool
	}{
		{"22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw", Mount{"/", "/dev/vda", "ext4"}, true},
		{"40 22 0:35 / /var/lib/my\\040data rw - xfs /dev/loop0 rw,attr2", Mount{"/var/lib/my data", "/dev/loop0", "xfs"}, true},
		{"41 22 0:36 / /run rw,nosuid master:5 shared:9 - tmpfs tmpfs rw", Mount{"/run", "tmpfs", "tmpfs"}, true},
		{"", Mount{}, false},
		{"22 1 254:0 / / rw", Mount{}, false},
	} {
		got, ok := parseMountinfo(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseMountinfo(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestUnder(t *testing.T) {
	for _, tt := range []struct {
		path, dir string
		want      bool
	}{
		{"/var/lib/x", "/", true},
		{"/var/lib/x", "/var/lib", true},
		{"/var/lib", "/var/lib", true},
		{"/var/library", "/var/lib", false},
		{"/srv", "/var", false},
	} {
		if got := under(tt.path, tt.dir); got != tt.want {
			t.Errorf("under(%q, %q) = %v, want %v", tt.path, tt.dir, got, tt.want)
		}
	}
}
