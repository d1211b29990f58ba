//! The store's file on disk: created owner-only (0600, its folders 0700,
//! a wider existing file narrowed), and named by device and inode so that
//! a file deleted or replaced under a running pacer is noticed.

use std::path::Path;

use redb::Database;

use super::StoreError;

/// Opens or creates the store file (owner-only), and its folders (0700).
pub(super) fn open_file(path: &Path) -> Result<(Database, FileId), StoreError> {
    let at = |e: std::io::Error| StoreError(format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        private_dirs(parent)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", parent.display())))?;
    }
    private_file(path).map_err(at)?;
    let db = Database::create(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
    let identity =
        file_id(path).ok_or_else(|| StoreError(format!("{} vanished", path.display())))?;
    Ok((db, identity))
}

/// Which file a path names: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    device: u64,
    inode: u64,
}

#[cfg(unix)]
pub(super) fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileId {
        device: meta.dev(),
        inode: meta.ino(),
    })
}

#[cfg(unix)]
fn private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates `path` readable and writable by its owner only, or narrows an
/// existing file to that.
#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode != 0o600 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "store file readable by others; narrowed to 0600");
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn file_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|_| FileId {
        device: 0,
        inode: 0,
    })
}

#[cfg(not(unix))]
fn private_dirs(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(not(unix))]
fn private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
