package images

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"a*", "abc", true},
		{"a*", "a", true},
		{"*", "", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"gcr.io/x/echo:*", "gcr.io/x/echo:v1.2", true},
		{"gcr.io/x/echo:*", "gcr.io/x/echo-basic:v1.2", false},
		{"gcr.io/*/echo:*", "gcr.io/a/b/echo:v1", true},
		{"*envoy*", "docker.io/envoyproxy/envoy:v1.31", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"abc", "abcd", false},
	}
	for _, c := range cases {
		if got := Glob(c.pattern, c.s); got != c.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func table() *Table {
	return &Table{Images: []Entry{
		{Image: "gcr.io/k8s-staging-gateway-api/echo-basic:*", Entrypoint: []string{"/abs/echo-basic"}},
		{Image: "docker.io/envoyproxy/envoy:*", Entrypoint: []string{"/abs/envoy"}, Commands: map[string]string{"envoy": "/abs/envoy"}},
		{Image: "legate:*", Entrypoint: []string{"/abs/legate"}, Args: []string{"controller"}},
		{Image: "docker.io/library/python:*", Entrypoint: []string{"/usr/bin/python3"}, Args: []string{"-m", "http.server"}},
		{Image: "registry.k8s.io/coredns/coredns:*", Entrypoint: []string{"/abs/legate-node", "pause"}},
	}}
}

func TestLookup(t *testing.T) {
	tb := table()
	cases := map[string]string{
		"gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0": "gcr.io/k8s-staging-gateway-api/echo-basic:*",
		"gcr.io/k8s-staging-gateway-api/echo-basic":                  "gcr.io/k8s-staging-gateway-api/echo-basic:*",
		"envoyproxy/envoy:v1.31.0":                                   "docker.io/envoyproxy/envoy:*",
		"docker.io/envoyproxy/envoy:distroless-v1.31.0":              "docker.io/envoyproxy/envoy:*",
		"envoyproxy/envoy@sha256:abcd":                               "docker.io/envoyproxy/envoy:*",
		"legate:dev":                                                 "legate:*",
		"docker.io/legate:dev":                                       "legate:*",
		"docker.io/library/legate:dev":                               "legate:*",
		"python":                                                     "docker.io/library/python:*",
		"library/python:3.12":                                        "docker.io/library/python:*",
		"python:3.12@sha256:ffff":                                    "docker.io/library/python:*",
		"registry.k8s.io/coredns/coredns:v1.12.0":                    "registry.k8s.io/coredns/coredns:*",
		"other.io/envoyproxy/envoy:v1":                               "",
		"nginx:1.27":                                                 "",
		"quay.io/legate:dev":                                         "",
	}
	for ref, want := range cases {
		e, ok := tb.Lookup(ref)
		got := ""
		if ok {
			got = e.Image
		}
		if got != want {
			t.Errorf("Lookup(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	tb := table()
	cases := []struct {
		image         string
		command, args []string
		want          []string
		err           string
	}{
		{image: "envoyproxy/envoy:v1", command: []string{"envoy"}, args: []string{"-c", "x.yaml"}, want: []string{"/abs/envoy", "-c", "x.yaml"}},
		{image: "envoyproxy/envoy:v1", args: []string{"--version"}, want: []string{"/abs/envoy", "--version"}},
		{image: "envoyproxy/envoy:v1", command: []string{"/bin/sh", "-c", "true"}, want: []string{"/bin/sh", "-c", "true"}},
		{image: "envoyproxy/envoy:v1", command: []string{"sh", "-c", "true"}, err: "neither in the image table"},
		{image: "legate:x", want: []string{"/abs/legate", "controller"}},
		{image: "legate:x", args: []string{}, want: []string{"/abs/legate"}},
		{image: "legate:x", args: []string{"standalone"}, want: []string{"/abs/legate", "standalone"}},
		{image: "python", want: []string{"/usr/bin/python3", "-m", "http.server"}},
		{image: "python", args: []string{"-m", "http.server", "8080"}, want: []string{"/usr/bin/python3", "-m", "http.server", "8080"}},
		{image: "nginx", err: "no entry"},
	}
	for _, c := range cases {
		got, err := tb.Resolve(c.image, c.command, c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Resolve(%q, %q, %q) err = %v, want %q", c.image, c.command, c.args, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Resolve(%q, %q, %q) = %q, %v; want %q", c.image, c.command, c.args, got, err, c.want)
		}
	}
	if _, err := tb.Resolve("nginx", nil, nil); !errors.Is(err, ErrNoEntry) {
		t.Errorf("err = %v, want ErrNoEntry", err)
	}
}

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "images.json")
	tb := table()
	if err := tb.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tb) {
		t.Errorf("Load(Save(t)) = %+v, want %+v", got, tb)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file: no error")
	}
}
