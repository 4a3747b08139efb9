package podrunner

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// owner is the ownership given to the files of a pod's volumes.
type owner struct{ uid, gid int }

// syncFiles makes dir hold exactly files: each changed file is written to a temporary file and
// renamed over the old one (a reader never sees a partial file), files no longer wanted are
// removed. Directories are 0755, every file and directory is owned by o. It reports whether
// anything changed.
func syncFiles(dir string, files map[string]fileData, o owner) (bool, error) {
	changed := false
	if err := ensureDir(dir, 0o755, o); err != nil {
		return false, err
	}
	wantDirs := map[string]bool{}
	for _, rel := range sortedKeys(files) {
		f := files[rel]
		full := filepath.Join(dir, rel)
		for d := filepath.Dir(rel); d != "." && d != "/"; d = filepath.Dir(d) {
			wantDirs[d] = true
		}
		if err := ensureDir(filepath.Dir(full), 0o755, o); err != nil {
			return changed, err
		}
		if same(full, f, o) {
			continue
		}
		if err := writeAtomic(full, f, o); err != nil {
			return changed, err
		}
		changed = true
	}
	// Remove what is no longer wanted, deepest first.
	var stale []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if !wantDirs[rel] {
				stale = append(stale, p)
			}
			return nil
		}
		if _, ok := files[rel]; !ok {
			stale = append(stale, p)
		}
		return nil
	})
	if err != nil {
		return changed, err
	}
	sort.Slice(stale, func(i, j int) bool { return len(stale[i]) > len(stale[j]) })
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

func ensureDir(dir string, perm os.FileMode, o owner) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, perm); err != nil {
			return err
		}
		if err := os.Chmod(dir, perm); err != nil {
			return err
		}
		return os.Chown(dir, o.uid, o.gid)
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// same reports whether the file at p already has f's content, mode and owner.
func same(p string, f fileData, o owner) bool {
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != f.Mode {
		return false
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != o.uid || int(sys.Gid) != o.gid {
		return false
	}
	data, err := os.ReadFile(p)
	return err == nil && bytes.Equal(data, f.Data)
}

func writeAtomic(p string, f fileData, o owner) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+strings.TrimPrefix(filepath.Base(p), ".")+".tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(f.Data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(f.Mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chown(o.uid, o.gid); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// A directory in the way (a key that used to be a directory) is replaced.
	if st, err := os.Lstat(p); err == nil && st.IsDir() {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := os.Rename(name, p); err != nil {
		return err
	}
	ok = true
	return nil
}
