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
        let paths = match load::files_under(&self.root) {
            Ok(p) => p,
            Err(e) => {
                let mut out = self.finish(BTreeSet::new());
                out.errors.push(format!("{}: cannot read: {e}", self.root.display()));
                return out;
            }
        };
        let mut affected = BTreeSet::new();
        let gone: Vec<PathBuf> = self.files.keys().filter(|p| !paths.contains(p)).cloned().collect();
        for path in gone {
            self.forget(&path, &mut affected);
        }
        for path in paths {
            self.read(path, &mut affected);
        }
        self.finish(affected)
    }

    /// Re-reads only the paths the watcher named: a resource file is read (as in
    /// [`reload`](Self::reload)) or forgotten if it is gone; other files are ignored. A folder,
    /// a path that held files, a root that is a file, or a watcher that lost events makes it a
    /// whole [`reload`](Self::reload).
    pub fn reload_changes(&mut self, changes: &Changes) -> Reload {
        if changes.rescan || !self.root.is_dir() {
            return self.reload();
        }
        // (path, whether it is there to read)
        let mut files = vec![];
        for path in &changes.paths {
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() || !path.starts_with(&self.root) => return self.reload(),
                Ok(_) if load::is_resource_file(path) => files.push((path, true)),
                Ok(_) => {}
                Err(_) if self.files.contains_key(path) => files.push((path, false)),
                // A folder that held files we read, now gone or renamed away.
                Err(_) if self.files.range(path.clone()..).next().is_some_and(|(f, _)| f.starts_with(path)) => {
                    return self.reload();
                }
                Err(_) => {}
            }
        }
        let mut affected = BTreeSet::new();
        for (path, there) in files {
            if there {
                self.read(path.clone(), &mut affected);
            } else {
                self.forget(path, &mut affected);
            }
        }
        self.finish(affected)
    }

    /// Takes out a file that is gone: its objects are defined elsewhere or not at all.
    fn forget(&mut self, path: &Path, affected: &mut BTreeSet<Id>) {
        if let Some(state) = self.files.remove(path) {
            self.disown(path, state.good.keys(), affected);
        }
    }

    /// Reads one file if its stamp changed, and parses it if its text changed; the objects it
    /// defines (before and after) go into `affected`.
    fn read(&mut self, path: PathBuf, affected: &mut BTreeSet<Id>) {
        let meta = std::fs::metadata(&path).ok();
        if let (Some(m), Some(state)) = (&meta, self.files.get(&path))
            && state.stamp.as_ref().is_some_and(|s| s.unchanged(m))
        {
            return;
        }
        let read_at = std::time::SystemTime::now();
        let Ok(text) = std::fs::read_to_string(&path) else { return }; // vanished meanwhile
        let state = self.files.entry(path.clone()).or_default();
        state.stamp = meta.map(|m| stamp::Stamp::of(&m, read_at));
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if state.digest == digest && (state.error.is_some() || !state.good.is_empty() || text.trim().is_empty()) {
            return;
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
                    return;
                }
                let old = std::mem::replace(&mut state.good, good);
                let new: Vec<Id> = state.good.keys().cloned().collect();
                self.disown(&path, old.keys(), affected);
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

    /// Puts in force what the affected objects' files now define.
    fn finish(&mut self, affected: BTreeSet<Id>) -> Reload {
        let mut out = Reload::default();
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

/// What the watcher saw between two reloads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The paths its events named.
    pub paths: BTreeSet<PathBuf>,
    /// Whether everything must be read again (it lost events, or failed).
    pub rescan: bool,
}

impl Changes {
    /// Whether there is nothing to read again.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.rescan
    }

    pub fn merge(&mut self, other: Changes) {
        self.paths.extend(other.paths);
        self.rescan |= other.rescan;
    }
}

/// The events of one batch, and whether it is complete.
#[derive(Default)]
struct Batch {
    changes: Changes,
    /// Files written to and not yet closed (nor renamed or removed).
    writing: BTreeSet<PathBuf>,
    /// An event whose end cannot be seen (a new folder, whose files may come before their
    /// watch; an unknown kind): the batch waits for the events to settle.
    unsure: bool,
}

impl Batch {
    fn add(&mut self, ev: notify::Result<notify::Event>) {
        use notify::EventKind::{Access, Create, Modify, Remove};
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
        let ev = match ev {
            Ok(ev) if !ev.need_rescan() => ev,
            _ => {
                self.changes.rescan = true;
                self.unsure = true;
                return;
            }
        };
        for path in &ev.paths {
            match ev.kind {
                Create(CreateKind::File) | Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                    self.writing.insert(path.clone());
                }
                Access(AccessKind::Close(AccessMode::Write)) | Modify(ModifyKind::Name(_)) | Remove(_) => {
                    self.writing.remove(path);
                }
                Modify(ModifyKind::Metadata(_)) => {}
                _ => self.unsure = true,
            }
            self.changes.paths.insert(path.clone());
        }
    }

    /// Whether every file written to was closed, renamed or removed: then the batch is whole
    /// and need not wait.
    fn complete(&self) -> bool {
        !self.unsure && self.writing.is_empty()
    }
}

/// Watches `root` and sends what changed once the writes are over: at once when every file
/// written to was closed, renamed or removed (an editor's save, `kubectl`-style write and
/// rename), or else after `debounce` without an event.
pub fn watch(root: &Path, debounce: Duration, tx: mpsc::Sender<Changes>) -> notify::Result<notify::RecommendedWatcher> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        use notify::event::{AccessKind, AccessMode, EventKind};
        // Opening and reading (ours too) change nothing.
        if !matches!(&ev, Ok(e) if matches!(e.kind, EventKind::Access(k) if k != AccessKind::Close(AccessMode::Write)))
        {
            let _ = raw_tx.send(ev);
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        while let Some(ev) = raw_rx.recv().await {
            let mut batch = Batch::default();
            batch.add(ev);
            loop {
                while let Ok(ev) = raw_rx.try_recv() {
                    batch.add(ev);
                }
                if batch.complete() {
                    break;
                }
                match tokio::time::timeout(debounce, raw_rx.recv()).await {
                    Ok(Some(ev)) => batch.add(ev),
                    Ok(None) | Err(_) => break,
                }
            }
            if tx.send(batch.changes).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests;
