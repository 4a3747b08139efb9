// Package images is the image table of the local test cluster: which host program stands in for
// which container image. The cluster has no container runtime: legate-node runs a container as a
// host process, and this table says which one.
//
// The file is JSON:
//
//	{"images": [
//	  {"image": "docker.io/envoyproxy/envoy:*", "entrypoint": ["/opt/legate-e2e/envoy"],
//	   "commands": {"envoy": "/opt/legate-e2e/envoy"}},
//	  {"image": "registry.k8s.io/coredns/coredns:*", "entrypoint": ["/opt/legate-e2e/legate-node", "pause"]}
//	]}
//
// An entry's image is a glob on the full image reference (`*` matches any run of characters,
// `/` and `:` included; `?` one character). A reference is also tried with and without the
// `docker.io/` and `docker.io/library/` prefixes and with its implicit `:latest` tag, so
// `nginx`, `library/nginx:latest` and `docker.io/library/nginx:latest` all match
// `docker.io/library/nginx:*`. The first matching entry wins.
//
// A container's program ([Table.Resolve]) is, as in Kubernetes, its command when it has one
// (command[0] looked up in the entry's commands, else used as is when it is an absolute path,
// else an error), otherwise the entry's entrypoint; then the container's args, or the entry's
// args when the container has neither command nor args.
package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Table is the image table file.
type Table struct {
	Images []Entry `json:"images"`
}

// Entry maps the images matching a glob to host programs.
type Entry struct {
	// Image is a glob on the full image reference.
	Image string `json:"image"`
	// Entrypoint is the program run when a container has no command (absolute path first).
	Entrypoint []string `json:"entrypoint,omitempty"`
	// Commands maps a container's command[0] (e.g. "envoy") to an absolute host path.
	Commands map[string]string `json:"commands,omitempty"`
	// Args are the default arguments, used when a container has neither command nor args.
	Args []string `json:"args,omitempty"`
	// Env is the image's default environment (the container's env overrides it).
	Env map[string]string `json:"env,omitempty"`
}

// ErrNoEntry is returned (wrapped) by Resolve for an image that no entry matches.
var ErrNoEntry = errors.New("no entry in the image table")

// Load reads a table file.
func Load(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Table
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("image table %s: %w", path, err)
	}
	for i, e := range t.Images {
		if e.Image == "" {
			return nil, fmt.Errorf("image table %s: entry %d has no image", path, i)
		}
	}
	return &t, nil
}

// Save writes the table to path atomically (a temporary file renamed over it), mode 0644.
func (t *Table) Save(path string) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".images-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Lookup returns the first entry whose glob matches the image reference.
func (t *Table) Lookup(image string) (*Entry, bool) {
	cands := candidates(image)
	for i := range t.Images {
		for _, c := range cands {
			if Glob(t.Images[i].Image, c) {
				return &t.Images[i], true
			}
		}
	}
	return nil, false
}

// Resolve returns the argv of a container of the given image, command and args (see the
// package documentation). The error wraps ErrNoEntry when no entry matches the image.
func (t *Table) Resolve(image string, command, args []string) ([]string, error) {
	e, ok := t.Lookup(image)
	if !ok {
		return nil, fmt.Errorf("image %q: %w", image, ErrNoEntry)
	}
	return e.Resolve(command, args)
}

// Resolve returns the argv of a container of this entry's image.
func (e *Entry) Resolve(command, args []string) ([]string, error) {
	var argv []string
	switch {
	case len(command) > 0:
		prog, err := e.Command(command[0])
		if err != nil {
			return nil, err
		}
		argv = append(append(argv, prog), command[1:]...)
		argv = append(argv, args...)
	default:
		if len(e.Entrypoint) == 0 {
			return nil, fmt.Errorf("image table entry %q has no entrypoint and the container no command", e.Image)
		}
		if !filepath.IsAbs(e.Entrypoint[0]) {
			return nil, fmt.Errorf("image table entry %q: entrypoint %q is not an absolute path", e.Image, e.Entrypoint[0])
		}
		argv = append(argv, e.Entrypoint...)
		if args != nil {
			argv = append(argv, args...)
		} else {
			argv = append(argv, e.Args...)
		}
	}
	return argv, nil
}

// Command maps a command name to the host program: the entry's commands first, then an
// absolute path as is.
func (e *Entry) Command(name string) (string, error) {
	if p, ok := e.Commands[name]; ok {
		return p, nil
	}
	if filepath.IsAbs(name) {
		return name, nil
	}
	return "", fmt.Errorf("command %q of image %q is neither in the image table entry's commands nor an absolute path", name, e.Image)
}

// candidates returns the spellings of an image reference tried against the globs.
func candidates(ref string) []string {
	name, tag, digest := split(ref)
	names := []string{name}
	first, rest, hasSlash := strings.Cut(name, "/")
	hasDomain := hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost")
	switch {
	case !hasDomain && !hasSlash: // nginx
		names = append(names, "library/"+name, "docker.io/library/"+name, "docker.io/"+name)
	case !hasDomain: // envoyproxy/envoy, library/nginx
		names = append(names, "docker.io/"+name)
		if first == "library" {
			names = append(names, rest)
		}
	case first == "docker.io" || first == "index.docker.io":
		names = append(names, "docker.io/"+rest, rest)
		if r, ok := strings.CutPrefix(rest, "library/"); ok && !strings.Contains(r, "/") {
			names = append(names, r, "library/"+r)
		}
	}
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, n := range names {
		switch {
		case tag != "" && digest != "":
			add(n + ":" + tag + "@" + digest)
			add(n + ":" + tag)
			add(n + "@" + digest)
		case tag != "":
			add(n + ":" + tag)
		case digest != "":
			add(n + "@" + digest)
			add(n + ":" + digest)
		default:
			add(n + ":latest")
		}
		add(n)
	}
	return out
}

// split splits a reference into name, tag and digest.
func split(ref string) (name, tag, digest string) {
	name, digest, _ = strings.Cut(ref, "@")
	slash := strings.LastIndex(name, "/")
	if colon := strings.LastIndex(name, ":"); colon > slash {
		name, tag = name[:colon], name[colon+1:]
	}
	return name, tag, digest
}

// Glob reports whether s matches pattern, where `*` matches any run of characters (slashes
// included) and `?` any one character; every other character matches itself.
func Glob(pattern, s string) bool {
	// Iterative matcher with backtracking to the last star.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
