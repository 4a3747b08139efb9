//! Translation is deterministic: the same resources in any order give byte-identical output,
//! and two runs of the CLI print the same bytes.

mod common;

use std::path::PathBuf;
use std::process::Command;

use legate::cli::translate::{status_documents, xds_documents};
use legate::load::Loaded;
use legate::output::Format;
use legate_translator::{Options, translate};

fn cases() -> Vec<PathBuf> {
    common::golden_cases()
}

/// A small deterministic shuffle (xorshift), so failures reproduce.
fn shuffle<T>(v: &mut [T], seed: &mut u64) {
    for i in (1..v.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        v.swap(i, (*seed % (i as u64 + 1)) as usize);
    }
}

/// The same objects put in force in another order (the world's maps and indexes are built
/// in that order).
fn shuffled(l: &Loaded, seed: &mut u64) -> Loaded {
    let mut objects: Vec<_> = l.objects.values().cloned().collect();
    shuffle(&mut objects, seed);
    let mut out = Loaded::default();
    for o in objects {
        out.push(o);
    }
    out
}

fn render(l: &Loaded) -> String {
    let opts = Options::default();
    let out = translate(&l.resources, &opts);
    let ir: Vec<_> = out.gateways.iter().map(|g| serde_json::to_value(&g.ir).unwrap()).collect();
    [
        Format::Yaml.many(&status_documents(l, &out, &opts.controller_name, "2026-01-01T00:00:00Z")),
        Format::Yaml.many(&ir),
        Format::Yaml.many(&xds_documents(&out)),
    ]
    .concat()
}

#[test]
fn output_does_not_depend_on_input_order() {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for path in cases() {
        let loaded = common::load_case(&path).unwrap();
        let expected = render(&loaded);
        for _ in 0..8 {
            assert_eq!(render(&shuffled(&loaded, &mut seed)), expected, "{} changed under shuffling", path.display());
        }
    }
}

#[test]
fn the_cli_prints_identical_bytes_across_runs() {
    for case in cases() {
        for show in ["status", "ir", "xds", "bootstrap"] {
            // A case with objects the CRDs refuse is refused by the CLI, with the same words.
            let refused = std::fs::read_to_string(&case).unwrap().starts_with(common::UNCHECKED);
            let run = || {
                let o = Command::new(env!("CARGO_BIN_EXE_legate"))
                    .args(["translate", "--show", show, "-f"])
                    .arg(&case)
                    .output()
                    .unwrap();
                assert_eq!(!o.status.success(), refused, "{}: {}", case.display(), String::from_utf8_lossy(&o.stderr));
                if refused { o.stderr } else { o.stdout }
            };
            let first = run();
            assert!(!first.is_empty());
            assert_eq!(first, run(), "--show {show} of {} differs between runs", case.display());
        }
    }
}
