//! Locates the protobuf descriptor set that `envoy-types` ships (`src/generated/types.bin`) and
//! writes it, without its files' `source_code_info`, into OUT_DIR for `legate-envoy-descriptors`
//! to embed. `envoy-types` does not
//! export the file, so we find its source directory: `LEGATE_ENVOY_DESCRIPTORS` if set, else the registry copy matching the version in
//! Cargo.lock, else `cargo metadata`.

use std::path::{Path, PathBuf};
use std::{env, fs, process::Command};

#[path = "src/strip.rs"]
mod strip;

fn main() {
    println!("cargo:rerun-if-env-changed=LEGATE_ENVOY_DESCRIPTORS");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("envoy_descriptors.bin");
    let src = find().unwrap_or_else(|why| {
        panic!(
            "cannot find envoy-types' descriptor set (src/generated/types.bin): {why}. \
             Set LEGATE_ENVOY_DESCRIPTORS to its path."
        )
    });
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=src/strip.rs");
    // For the tests, which compare the embedded set with the shipped one.
    println!("cargo:rustc-env=LEGATE_ENVOY_DESCRIPTORS_SHIPPED={}", src.display());
    let shipped = fs::read(&src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    let lean =
        strip::without_source_info(&shipped).unwrap_or_else(|| panic!("{} is not a FileDescriptorSet", src.display()));
    fs::write(&out, lean).expect("write the descriptor set");
}

fn find() -> Result<PathBuf, String> {
    if let Ok(p) = env::var("LEGATE_ENVOY_DESCRIPTORS") {
        return Ok(PathBuf::from(p));
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    if let Some(version) = locked_version(&manifest.join("../Cargo.lock")) {
        let home = env::var("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env::var("HOME").unwrap_or_default()).join(".cargo"));
        if let Ok(dirs) = fs::read_dir(home.join("registry/src")) {
            for d in dirs.flatten() {
                let p = d.path().join(format!("envoy-types-{version}/src/generated/types.bin"));
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
    }
    from_cargo_metadata(&manifest)
}

fn locked_version(lock: &Path) -> Option<String> {
    let text = fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"envoy-types\"" {
            let v = lines.next()?.trim();
            return v.strip_prefix("version = \"")?.strip_suffix('"').map(str::to_owned);
        }
    }
    None
}

fn from_cargo_metadata(manifest: &Path) -> Result<PathBuf, String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--manifest-path"])
        .arg(manifest.join("Cargo.toml"))
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Find `"manifest_path":".../envoy-types-X/Cargo.toml"` without a JSON dependency.
    for part in text.split("\"manifest_path\":\"").skip(1) {
        let path = part.split('"').next().unwrap_or_default();
        if path.contains("envoy-types-") {
            let p = Path::new(path).parent().unwrap().join("src/generated/types.bin");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err("cargo metadata did not list envoy-types".into())
}
