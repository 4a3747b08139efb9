//! The file provider: every `*.yaml|*.yml|*.json` under a path, re-read when it changes. A file
//! that stops parsing is reported and the objects it held before stay in force until it parses
//! again; a deleted file's objects go away.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::load::{self, Kind, LoadError, Loaded, RawObject, RawObjects};
use legate_translator::{ObjKey, Resources};

type Id = (Kind, ObjKey);

mod stamp;

#[derive(Default)]
struct FileState {
    /// The SHA-256 of the file's text as last read (not the text: the objects hold what they
    /// need of it).
    digest: [u8; 32],
    /// The file as it was when it was last read: while it is so, the file is not read again.
    stamp: Option<stamp::Stamp>,
    /// The objects of the last version that parsed, by kind and key (the first definition in
    /// the file), and the second definitions within the file.
    good: BTreeMap<Id, RawObject>,
    inner_duplicates: Vec<LoadError>,
    error: Option<LoadError>,
}

/// The current contents of a resources directory, and the world they make: each object taken
/// from the first file (in path order) that defines it. A reload re-parses only the files whose
/// text changed and puts in force only the objects that changed.
pub struct FileProvider {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    /// Which files define each object, in path order (one, as a rule; shared paths).
    owners: HashMap<Id, Vec<Arc<Path>>>,
    /// The objects in force and the world they make (persistent maps: a snapshot shares them).
    objects: RawObjects,
    world: Resources,
}

/// What changed in a reload.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// Whether any object in force changed (a re-translation is due).
    pub changed: bool,
    /// The objects put in force, replaced or taken out.
    pub touched: Vec<(Kind, ObjKey)>,
    /// Files that do not parse now (their last good objects stay in force).
    pub errors: Vec<String>,
}

impl FileProvider {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileProvider {
            root: root.into(),
            files: BTreeMap::new(),
            owners: HashMap::new(),
            objects: RawObjects::new(),
            world: Resources::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Re-reads the files under the root whose size, times or inode changed (and those read too
    /// soon after a write to trust that); parses only those whose text changed.
    pub fn reload(&mut self) -> Reload {
        let mut out = Reload::default();
        let paths = match load::files_under(&self.root) {
            Ok(p) => p,
            Err(e) => {
                out.errors.push(format!("{}: cannot read: {e}", self.root.display()));
                return out;
            }
        };
        let mut affected = BTreeSet::new();
        let gone: Vec<PathBuf> = self.files.keys().filter(|p| !paths.contains(p)).cloned().collect();
        for path in gone {
            let state = self.files.remove(&path).expect("listed");
            self.disown(&path, state.good.keys(), &mut affected);
        }
        for path in paths {
            let meta = std::fs::metadata(&path).ok();
            if let (Some(m), Some(state)) = (&meta, self.files.get(&path))
                && state.stamp.as_ref().is_some_and(|s| s.unchanged(m))
            {
                continue;
            }
            let read_at = std::time::SystemTime::now();
            let Ok(text) = std::fs::read_to_string(&path) else { continue }; // vanished meanwhile
            let state = self.files.entry(path.clone()).or_default();
            state.stamp = meta.map(|m| stamp::Stamp::of(&m, read_at));
            let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
            if state.digest == digest && (state.error.is_some() || !state.good.is_empty() || text.trim().is_empty()) {
                continue;
            }
            state.digest = digest;
            let mut fresh = Loaded::default();
            match load::add_file(&mut fresh, &path, &text) {
                Ok(()) => {
                    if state.error.take().is_some() {
                        info!(file = %path.display(), "file parses again");
                    }
                    for s in &fresh.skipped {
                        info!("{s}");
                    }
                    state.inner_duplicates = fresh.duplicates;
                    let mut good: BTreeMap<Id, RawObject> = fresh.objects.into_iter().collect();
                    // An object whose content did not change stays the same shared object.
                    for (id, o) in &mut good {
                        if let Some(old) = state.good.get(id).filter(|old| old.value == o.value) {
                            (o.value, o.object) = (old.value.clone(), old.object.clone());
                        }
                    }
                    if good == state.good {
                        continue;
                    }
                    let old = std::mem::replace(&mut state.good, good);
                    let new: Vec<Id> = state.good.keys().cloned().collect();
                    self.disown(&path, old.keys(), &mut affected);
                    let shared: Arc<Path> = Arc::from(path.as_path());
                    for id in new {
                        let owners = self.owners.entry(id.clone()).or_default();
                        if let Err(at) = owners.binary_search(&shared) {
                            owners.insert(at, shared.clone());
                        }
                        affected.insert(id);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "file does not parse; keeping its last good objects");
                    state.error = Some(e);
                }
            }
        }
        for id in affected {
            if self.settle(&id) {
                out.touched.push(id);
            }
        }
        out.changed = !out.touched.is_empty();
        out.errors = self.files.values().filter_map(|f| f.error.as_ref().map(ToString::to_string)).collect();
        out
    }

    fn disown<'a>(&mut self, path: &Path, ids: impl Iterator<Item = &'a Id>, affected: &mut BTreeSet<Id>) {
        for id in ids {
            if let Some(o) = self.owners.get_mut(id) {
                o.retain(|p| **p != *path);
                if o.is_empty() {
                    self.owners.remove(id);
                }
            }
            affected.insert(id.clone());
        }
    }

    /// Puts in force the definition of `id` from the first file that has one; returns whether
    /// what is in force changed.
    fn settle(&mut self, id: &Id) -> bool {
        let winner = self.owners.get(id).and_then(|o| o.first()).and_then(|f| self.files[&**f].good.get(id));
        match (winner, self.objects.get(id)) {
            (Some(w), Some(cur)) if w.value == cur.value => {
                // The same content (perhaps from another document): not a change.
                let w = RawObject { value: cur.value.clone(), object: cur.object.clone(), ..w.clone() };
                self.objects.insert(id.clone(), w);
                false
            }
            (Some(w), _) => {
                self.world.apply(w.object.clone());
                self.objects.insert(id.clone(), w.clone());
                true
            }
            (None, Some(_)) => {
                self.world.delete(id.0, &id.1);
                self.objects.remove(id);
                true
            }
            (None, None) => false,
        }
    }

    /// The world in force: the typed objects (shared, not copied), the raw objects in kind and
    /// key order, and one message per object defined more than once.
    pub fn snapshot(&self) -> (Loaded, Vec<String>) {
        let loaded = Loaded::from_parts(self.world.clone(), self.objects.clone());
        (loaded, self.duplicates())
    }

    fn duplicates(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for (id, files) in self.owners.iter().filter(|(_, f)| f.len() > 1) {
            let first = &self.files[&**files.first().expect("not empty")].good[id];
            for f in files.iter().skip(1) {
                let dup = &self.files[&**f].good[id];
                out.push(format!(
                    "{}: document {}: {:?} {} is already defined in {} document {}; this one is ignored",
                    dup.file.display(),
                    dup.document,
                    id.0,
                    id.1,
                    first.file.display(),
                    first.document
                ));
            }
        }
        for f in self.files.values() {
            out.extend(f.inner_duplicates.iter().map(|d| format!("{d}; this one is ignored")));
        }
        out.sort();
        out
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
