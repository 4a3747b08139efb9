//! Golden tests: each `tests/golden/<case>.yaml` (Gateway API resources) is translated and the
//! statuses, the IR and the xDS resources are compared with the snapshots in
//! `tests/snapshots/`. Review changes with `cargo insta review`.
//!
//! Every case's Envoy bootstraps are also checked with `envoy --mode validate` (see
//! `bootstraps_validate_under_envoy`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use legate::cli::translate::{status_documents, xds_documents};
use legate::load;
use legate::output::Format;
use legate_translator::xds::bootstrap::{BootstrapOptions, static_bootstrap};
use legate_translator::xds::json::to_json;
use legate_translator::{Options, Output, translate};

const NOW: &str = "2026-01-01T00:00:00Z";

fn cases() -> Vec<PathBuf> {
    common::golden_cases()
}

fn run(path: &Path) -> (load::Loaded, Output) {
    let loaded = common::load_case(path).unwrap_or_else(|e| panic!("{e}"));
    let out = translate(&loaded.resources, &Options::default());
    (loaded, out)
}

fn name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn golden_status_ir_xds() {
    let cases = cases();
    assert!(cases.len() >= 10, "golden cases are missing");
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for path in &cases {
            let (loaded, out) = run(path);
            let case = name(path);
            let status = Format::Yaml.many(&status_documents(&loaded, &out, &Options::default().controller_name, NOW));
            insta::assert_snapshot!(format!("{case}.status"), status);
            let ir: Vec<_> = out.gateways.iter().map(|g| serde_json::to_value(&g.ir).unwrap()).collect();
            insta::assert_snapshot!(format!("{case}.ir"), Format::Yaml.many(&ir));
            insta::assert_snapshot!(format!("{case}.xds"), Format::Yaml.many(&xds_documents(&out)));
        }
    });
}

#[test]
fn bootstraps_validate_under_envoy() {
    let envoy = match legate::envoy::find(None) {
        Ok(p) => p,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED bootstraps_validate_under_envoy: {e}");
            return;
        }
        Err(e) => panic!("CI must have Envoy: {e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for path in cases() {
        let (_, out) = run(&path);
        for g in &out.gateways {
            let opts =
                BootstrapOptions { node: g.gateway.to_string(), admin_address: "127.0.0.1".into(), admin_port: 0 };
            let file = dir.path().join(format!("{}-{}-{}.yaml", name(&path), g.gateway.namespace, g.gateway.name));
            std::fs::write(&file, Format::Yaml.one(&to_json(&static_bootstrap(&g.xds, &opts)))).unwrap();
            let o = Command::new(&envoy)
                .args(["--mode", "validate", "--log-level", "error", "-c"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "envoy rejected the bootstrap of {} in {}:\n{}\n{}",
                g.gateway,
                path.display(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} bootstraps validated");
    eprintln!("{checked} bootstraps validated by {}", envoy.display());
}

/// Every golden case's YAML (statuses, IR, xDS, bootstraps) reads back as the same values in
/// PyYAML, a YAML 1.1 reader like kubectl's and Envoy's, when it is installed.
#[test]
fn yaml_output_reads_back_the_same_in_a_yaml_1_1_reader() {
    let have = Command::new("python3").args(["-c", "import yaml"]).output();
    if !have.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED: python3 with PyYAML is not installed; Legate's YAML was not read back by a YAML 1.1 reader"
        );
        return;
    }
    let mut docs: Vec<serde_json::Value> = vec![];
    for path in cases() {
        let (loaded, out) = run(&path);
        docs.extend(status_documents(&loaded, &out, &Options::default().controller_name, NOW));
        docs.extend(out.gateways.iter().map(|g| serde_json::to_value(&g.ir).unwrap()));
        docs.extend(xds_documents(&out));
        for g in &out.gateways {
            let opts =
                BootstrapOptions { node: g.gateway.to_string(), admin_address: "127.0.0.1".into(), admin_port: 0 };
            docs.push(to_json(&static_bootstrap(&g.xds, &opts)));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.yaml");
    std::fs::write(&file, Format::Yaml.many(&docs)).unwrap();
    let o = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(back.len(), docs.len());
    for (b, d) in back.iter().zip(&docs) {
        assert_eq!(b, d, "PyYAML reads another value back");
    }
}
