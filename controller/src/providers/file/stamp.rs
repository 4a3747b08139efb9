//! What a file looked like when it was last read (size, times, identity), to skip re-reading
//! the files that did not change. A stamp is trusted only when the file had been left alone for
//! a while before it was read ("racy" stamps are not): a write within the file system's
//! timestamp granularity after the read could otherwise leave every field as it was.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

/// How long a file must have been left alone before its read for the stamp to be trusted.
const SETTLED: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// Whether the file had not been modified (nor its inode changed) for [`SETTLED`] when read.
    settled: bool,
}

impl Stamp {
    /// The stamp of a file whose metadata was taken just before reading it at `read_at`.
    pub fn of(m: &Metadata, read_at: SystemTime) -> Stamp {
        let latest = m.modified().ok().max(changed(m));
        let settled = latest.is_some_and(|t| read_at.duration_since(t).is_ok_and(|age| age >= SETTLED));
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            settled,
        }
    }

    /// Whether a file with metadata `now` still holds the text read when `self` was taken.
    pub fn unchanged(&self, now: &Metadata) -> bool {
        self.settled
            && (self.dev, self.ino, self.len, self.mtime, self.ctime)
                == (now.dev(), now.ino(), now.len(), (now.mtime(), now.mtime_nsec()), (now.ctime(), now.ctime_nsec()))
    }
}

/// The inode change time as a `SystemTime`.
fn changed(m: &Metadata) -> Option<SystemTime> {
    let secs = u64::try_from(m.ctime()).ok()?;
    let nanos = u32::try_from(m.ctime_nsec()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests;
