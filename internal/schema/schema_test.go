package schema

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	good := fstest.MapFS{
		"m/0002_more.sql":  {Data: []byte("B")},
		"m/0001_first.sql": {Data: []byte("A")},
	}
	ms, err := Load(good, "m")
	if err != nil || len(ms) != 2 || ms[0].SQL != "A" || ms[1].Version != 2 || ms[1].Name != "0002_more.sql" {
		t.Fatalf("Load = %+v, %v", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":         {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"duplicate":   {"m/0001_a.sql": {}, "m/1_b.sql": {}},
		"zero":        {"m/0000_a.sql": {}},
		"bad name":    {"m/first.sql": {}},
		"not sql":     {"m/0001_a.txt": {}},
		"no number":   {"m/x_a.sql": {}},
		"missing dir": {},
	} {
		if _, err := Load(fsys, "m"); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "missing dir" && !strings.Contains(err.Error(), "internal error") {
			t.Errorf("%s: %v is not reported as an internal error", name, err)
		}
	}
}
