//! `src/gateway-api-v1.5.1.json` is what its generator makes of the Gateway API CRDs in the Go
//! module `sigs.k8s.io/gateway-api@v1.5.1` (found like `e2e/cluster/install-legate` finds it:
//! `go mod download` in `e2e/conformance`, whose `go.sum` pins it). Skipped, saying why, when Go
//! or the module is not available. `LEGATE_REGENERATE=1` rewrites the file.

use std::path::{Path, PathBuf};
use std::process::Command;

use legate_schema::{GATEWAY_API_JSON, GATEWAY_API_MODULE, compact::compact};
use serde_json::{Map, Value, json};

/// The module's directory, or why it cannot be had.
fn module_dir() -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let out = Command::new("go")
        .args(["mod", "download", "-json", GATEWAY_API_MODULE])
        .current_dir(repo.join("e2e/conformance"))
        .output()
        .map_err(|e| format!("cannot run go: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "go mod download {GATEWAY_API_MODULE} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(PathBuf::from(v["Dir"].as_str().ok_or("no Dir in go's answer")?))
}

/// The generator: every CRD under `config/crd/experimental/`, compacted, as pretty JSON.
fn generate(module: &Path) -> String {
    let dir = module.join("config/crd/experimental");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut crds = Map::new();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if let Some((name, entry)) = compact(&v) {
                crds.insert(name, entry);
            }
        }
    }
    let doc = json!({
        "generatedFrom": format!("{GATEWAY_API_MODULE} config/crd/experimental by schema/tests/generated.rs"),
        "crds": crds,
    });
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

#[test]
fn the_embedded_gateway_api_schemas_are_generated_from_the_go_module() {
    let module = match module_dir() {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIPPED: the Gateway API schemas were not compared with {GATEWAY_API_MODULE}: {why}");
            return;
        }
    };
    let generated = generate(&module);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gateway-api-v1.5.1.json");
    if std::env::var_os("LEGATE_REGENERATE").is_some() {
        std::fs::write(&file, &generated).unwrap();
        return;
    }
    assert!(
        generated == GATEWAY_API_JSON,
        "{} differs from what {GATEWAY_API_MODULE} makes; run LEGATE_REGENERATE=1 cargo test -p legate-schema --test generated",
        file.display()
    );
}
