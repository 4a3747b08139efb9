package podrunner

import "testing"

func TestExpand(t *testing.T) {
	env := map[string]string{"POD_NAME": "envoy-1", "A": "a", "EMPTY": "", "NESTED": "$(A)"}
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"$(POD_NAME)", "envoy-1"},
		{"--service-node=$(POD_NAME)", "--service-node=envoy-1"},
		{"$(A)$(A)", "aa"},
		{"$(A)-$(UNKNOWN)", "a-$(UNKNOWN)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$a"},
		{"$$", "$"},
		{"$", "$"},
		{"a$", "a$"},
		{"$A", "$A"},
		{"$(A", "$(A"},
		{"x$(A", "x$(A"},
		{"$()", "$()"},
		{"$(EMPTY)", ""},
		{"$(NESTED)", "$(A)"}, // no recursive expansion
		{"100$", "100$"},
		{"$(A)$", "a$"},
		{"$(A)$$", "a$"},
	}
	for _, c := range cases {
		if got := Expand(c.in, MapLookup(env)); got != c.want {
			t.Errorf("Expand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
