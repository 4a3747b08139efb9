//! Shared by the golden and determinism tests.

use std::path::{Path, PathBuf};

/// The golden input cases, `tests/golden/*.yaml`, in name order.
pub fn golden_cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// The first line of a golden case whose objects the Gateway API v1.5.1 CRDs refuse: it tests
/// the translator's own handling of them (they can reach it from a cluster with older or newer
/// CRDs), so it is loaded without the API server's checks. `load::validate::tests` checks that file mode
/// refuses each of them.
pub const UNCHECKED: &str = "# unchecked: ";

/// Loads a golden case: with the API server's checks, unless its first line is [`UNCHECKED`].
pub fn load_case(path: &Path) -> Result<legate::load::Loaded, legate::load::LoadError> {
    let text = std::fs::read_to_string(path).unwrap();
    let loaded = if text.starts_with(UNCHECKED) { legate::load::Loaded::unchecked() } else { Default::default() };
    legate::load::load_paths_into(loaded, &[path.to_owned()])
}
