//! The file provider: every `*.yaml|*.yml|*.json` under a path, re-read when it changes. A file
//! that stops parsing is reported and the objects it held before stay in force until it parses
//! again; a deleted file's objects go away.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::load::{self, LoadError, Loaded};

#[derive(Default)]
struct FileState {
    text: String,
    /// The objects of the last version that parsed.
    good: Loaded,
    error: Option<LoadError>,
}

/// The current contents of a resources directory.
pub struct FileProvider {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
}

/// What changed in a reload.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// Whether any file's objects changed (a re-translation is due).
    pub changed: bool,
    /// Files that do not parse now (their last good objects stay in force).
    pub errors: Vec<String>,
}

impl FileProvider {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileProvider { root: root.into(), files: BTreeMap::new() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Re-reads the files under the root; parses only those whose text changed.
    pub fn reload(&mut self) -> Reload {
        let mut out = Reload::default();
        let paths = match load::files_under(&self.root) {
            Ok(p) => p,
            Err(e) => {
                out.errors.push(format!("{}: cannot read: {e}", self.root.display()));
                return out;
            }
        };
        let before = self.files.len();
        self.files.retain(|p, _| paths.contains(p));
        out.changed |= self.files.len() != before;
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else { continue }; // vanished meanwhile
            let state = self.files.entry(path.clone()).or_default();
            if state.text == text && (state.error.is_some() || !state.good.objects.is_empty() || text.trim().is_empty())
            {
                continue;
            }
            state.text = text;
            let mut fresh = Loaded::default();
            match load::add_file(&mut fresh, &path, &state.text) {
                Ok(()) => {
                    if state.error.take().is_some() {
                        info!(file = %path.display(), "file parses again");
                    }
                    if fresh.objects != state.good.objects {
                        out.changed = true;
                    }
                    for s in &fresh.skipped {
                        info!("{s}");
                    }
                    state.good = fresh;
                }
                Err(e) => {
                    warn!(error = %e, "file does not parse; keeping its last good objects");
                    state.error = Some(e);
                }
            }
        }
        out.errors = self.files.values().filter_map(|f| f.error.as_ref().map(ToString::to_string)).collect();
        out
    }

    /// All objects in force, merged. An object defined twice (same kind, namespace, name) is
    /// taken from the first file in path order; the duplicate is reported.
    pub fn snapshot(&self) -> (Loaded, Vec<String>) {
        let mut merged = Loaded::default();
        for state in self.files.values() {
            merged.extend(&state.good);
        }
        let dups = merged.dedup();
        (merged, dups)
    }
}

/// Watches `root` and sends a unit on `tx` after changes settle for `debounce`.
pub fn watch(root: &Path, debounce: Duration, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ = raw_tx.send(());
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Settle: keep absorbing events until `debounce` passes without one.
            while let Ok(Some(())) = tokio::time::timeout(debounce, raw_rx.recv()).await {}
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests;
