//! Bytes that are a copy of a file, which a plain TCP connection may send from the file itself
//! (`sendfile`, `server::sendfile`) instead of copying them from memory into the socket: the
//! copy was most of the time a large static file cost. The connection sees only the slices
//! hyper writes, so the files' copies are registered by their addresses: a slice inside one is
//! that file's bytes at the same offset.
//!
//! A registration lives exactly as long as the copy's memory (it is removed before the memory is
//! freed), so an address never names a file it no longer holds. At most [`MAX_FILES`] copies
//! are registered, each keeping its file open; the others are sent from memory.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

/// Smaller copies are not registered: below this the copy costs less than the bookkeeping and a
/// second system call.
pub const MIN_LEN: usize = 16 * 1024;
/// Open files kept for `sendfile` at most.
pub const MAX_FILES: usize = 256;

/// A registered file and where its copy lies in memory.
#[derive(Debug)]
pub struct Region {
    file: File,
    start: usize,
    len: usize,
    /// The file no longer holds its copy's bytes (it shrank): send from memory.
    stale: AtomicBool,
}

impl Region {
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Marks the file as no longer matching its copy.
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }
}

/// Registered regions by start address.
static REGIONS: LazyLock<RwLock<BTreeMap<usize, Arc<Region>>>> = LazyLock::new(Default::default);
/// How many are registered, read without the lock on every large write.
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// `body`, read from `file` (still open, positioned anywhere), as `Bytes` the connection can send
/// from the file. `body` must be the file's bytes from its first on.
pub fn file_bytes(file: File, body: Vec<u8>) -> Bytes {
    if body.len() < MIN_LEN || !reserve() {
        return Bytes::from(body);
    }
    let region = Arc::new(Region {
        file,
        start: body.as_ptr() as usize,
        len: body.len(),
        stale: AtomicBool::new(false),
    });
    REGIONS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(region.start, region.clone());
    Bytes::from_owner(Copy { body, region })
}

/// A place among the [`MAX_FILES`], if one is free.
fn reserve() -> bool {
    COUNT
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_FILES).then_some(n + 1)
        })
        .is_ok()
}

/// The file `slice` is a copy of and the offset in it where the slice starts, if it is one.
pub fn lookup(slice: &[u8]) -> Option<(Arc<Region>, u64)> {
    if slice.len() < MIN_LEN || COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    let at = slice.as_ptr() as usize;
    let regions = REGIONS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (_, region) = regions.range(..=at).next_back()?;
    let inside = at + slice.len() <= region.start + region.len;
    (inside && !region.stale.load(Ordering::Relaxed))
        .then(|| (region.clone(), (at - region.start) as u64))
}

/// The memory of a registered copy; its registration goes first when it is dropped.
struct Copy {
    body: Vec<u8>,
    region: Arc<Region>,
}

impl AsRef<[u8]> for Copy {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        REGIONS
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.region.start);
        COUNT.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn slices_of_a_registered_copy_are_found_with_their_offsets() {
        let content = vec![7u8; 64 * 1024];
        let bytes = file_bytes(file_of(&content), content);
        let (_, offset) = lookup(&bytes[1000..40_000]).expect("registered");
        assert_eq!(offset, 1000);
        assert!(lookup(&bytes[..100]).is_none(), "too small to bother");
        let other = vec![7u8; 64 * 1024];
        assert!(lookup(&other).is_none(), "not a registered copy");
    }

    #[test]
    fn a_dropped_copy_is_no_longer_registered() {
        let content = vec![1u8; 32 * 1024];
        let bytes = file_bytes(file_of(&content), content);
        let start = bytes.as_ptr() as usize;
        assert!(REGIONS.read().unwrap().contains_key(&start));
        drop(bytes);
        assert!(!REGIONS.read().unwrap().contains_key(&start));
    }

    #[test]
    fn a_stale_file_is_not_used() {
        let content = vec![3u8; 20 * 1024];
        let bytes = file_bytes(file_of(&content), content);
        let (region, _) = lookup(&bytes).expect("registered");
        region.mark_stale();
        assert!(lookup(&bytes).is_none());
    }
}
