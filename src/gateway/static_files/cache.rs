//! Small static files kept in memory, each with its answer's headers made once: serving one from
//! disk cost an open, a read and a close on the blocking pool a request. An entry is used only
//! while the file's `stat` still matches (`Stamp`), so a file changed on disk is read again on the
//! next request.

use axum::http::HeaderValue;
use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Files up to this size are kept in memory; larger ones are streamed from disk.
pub const MAX_FILE: u64 = 1024 * 1024;
/// Bytes of all the files kept, with their paths and headers.
pub const MAX_TOTAL: u64 = 32 * 1024 * 1024;
/// Counted per entry besides its file and path: its headers and bookkeeping.
const ENTRY_OVERHEAD: u64 = 512;

/// What identifies one version of a file: a change of content changes the modification time
/// (and the change time), a replacement by rename the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    inode: (u64, u64),
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Self {
        Stamp {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            inode: (meta.dev(), meta.ino()),
        }
    }
}

/// One file's bytes and the headers of every answer about it.
#[derive(Debug)]
pub struct Cached {
    pub stamp: Stamp,
    pub body: Bytes,
    pub content_length: HeaderValue,
    /// A weak validator from the size and modification time.
    pub etag: HeaderValue,
    pub last_modified: HeaderValue,
    /// Whole seconds since the epoch, what `If-Modified-Since` is compared with.
    pub modified: SystemTime,
    pub variant: Variant,
}

/// What a file's answers say about it besides its version: the same for every version.
#[derive(Debug, Clone)]
pub struct Variant {
    pub content_type: HeaderValue,
    /// `br` or `gzip` for a precompressed sibling.
    pub encoding: Option<HeaderValue>,
    pub cache_control: HeaderValue,
}

impl Cached {
    pub fn new(meta: &Metadata, body: Bytes, variant: Variant) -> Self {
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let since_epoch = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        let etag = format!("W/\"{:x}-{:x}\"", meta.len(), since_epoch.as_nanos());
        Cached {
            stamp: Stamp::of(meta),
            content_length: HeaderValue::from(body.len()),
            body,
            etag: HeaderValue::try_from(etag).expect("hex digits and quotes"),
            last_modified: HeaderValue::try_from(httpdate::fmt_http_date(modified))
                .expect("an HTTP date is ASCII"),
            modified: UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()),
            variant,
        }
    }
}

#[derive(Clone)]
struct Weight;

impl Weighter<PathBuf, Arc<Cached>> for Weight {
    fn weight(&self, path: &PathBuf, cached: &Arc<Cached>) -> u64 {
        cached.body.len() as u64 + path.as_os_str().len() as u64 + ENTRY_OVERHEAD
    }
}

/// Files by path, bounded in total bytes (least recently used go first, roughly: quick_cache's
/// CLOCK-Pro). One for every static directory.
pub struct FileCache {
    files: Cache<PathBuf, Arc<Cached>, Weight>,
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("entries", &self.files.len())
            .field("bytes", &self.files.weight())
            .finish()
    }
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache::new(MAX_TOTAL)
    }
}

impl FileCache {
    pub fn new(max_total: u64) -> Self {
        // quick_cache sizes its tables by an estimate of the entries: small files mostly.
        let estimated = (max_total / (16 * 1024)).max(16) as usize;
        FileCache {
            files: Cache::with_weighter(estimated, max_total, Weight),
        }
    }

    /// The entry for `path` if it is of this version of the file.
    pub fn get(&self, path: &Path, stamp: Stamp) -> Option<Arc<Cached>> {
        self.files.get(path).filter(|cached| cached.stamp == stamp)
    }

    pub fn insert(&self, path: PathBuf, cached: Arc<Cached>) {
        self.files.insert(path, cached);
    }

    /// Bytes held, as the bound counts them.
    #[cfg(test)]
    pub fn weight(&self) -> u64 {
        self.files.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant() -> Variant {
        Variant {
            content_type: HeaderValue::from_static("text/plain"),
            encoding: None,
            cache_control: HeaderValue::from_static("no-cache"),
        }
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![b'x'; 64 * 1024]).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        let body = Bytes::from(std::fs::read(&file).unwrap());
        let bound = 1024 * 1024;
        let cache = FileCache::new(bound);
        for i in 0..64 {
            let cached = Arc::new(Cached::new(&meta, body.clone(), variant()));
            cache.insert(dir.path().join(format!("{i}")), cached);
            assert!(cache.weight() <= bound, "{} bytes", cache.weight());
        }
        assert!(cache.weight() > bound / 2, "{} bytes", cache.weight());
    }

    #[test]
    fn an_entry_serves_only_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let cache = FileCache::default();
        cache.insert(
            path.clone(),
            Arc::new(Cached::new(&meta, "one".into(), variant())),
        );
        assert!(cache.get(&path, Stamp::of(&meta)).is_some());
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        let changed = std::fs::metadata(&path).unwrap();
        assert!(cache.get(&path, Stamp::of(&changed)).is_none());
    }
}
