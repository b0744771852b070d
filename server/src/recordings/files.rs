//! Where recordings live: `<recordings dir>/<id>.cast` and its index
//! `<id>.idx`, named by recording id only, created private (0600, never
//! through a symlink), the directory synced after a file is created or removed.
use std::{
    fs::{File, OpenOptions},
    io,
    path::{Path, PathBuf},
};

/// Length of a recording id: 32 lowercase hex digits (128 random bits).
const ID_LEN: usize = 32;

/// Whether `id` can be a recording id (anything path-like is not).
pub fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The recordings directory.
#[derive(Debug, Clone)]
pub struct RecordingDir {
    dir: PathBuf,
}

/// A recording id that is not one.
#[derive(Debug, thiserror::Error)]
#[error("not a recording id: {0:?}")]
pub struct BadId(pub String);

impl RecordingDir {
    /// Recordings under `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file of recording `id`.
    pub fn file(&self, id: &str) -> Result<PathBuf, BadId> {
        self.named(id, "cast")
    }

    /// The index kept beside recording `id` (see `recordings::index`).
    pub fn index_file(&self, id: &str) -> Result<PathBuf, BadId> {
        self.named(id, "idx")
    }

    fn named(&self, id: &str, ext: &str) -> Result<PathBuf, BadId> {
        if !valid_id(id) {
            return Err(BadId(id.to_string()));
        }
        Ok(self.dir.join(format!("{id}.{ext}")))
    }

    /// Creates recording `id`'s file and its index (neither may exist) and
    /// syncs the directory.
    pub fn create(&self, id: &str) -> io::Result<(File, File)> {
        crate::secrets::create_private_dir(&self.dir)?;
        let file = create_new(&path(self.file(id))?)?;
        let index = create_new(&path(self.index_file(id))?)?;
        self.sync_dir()?;
        Ok((file, index))
    }

    /// Opens recording `id` for reading.
    pub fn open(&self, id: &str) -> io::Result<File> {
        open_read(&path(self.file(id))?)
    }

    /// Opens recording `id`'s index for reading.
    pub fn open_index(&self, id: &str) -> io::Result<File> {
        open_read(&path(self.index_file(id))?)
    }

    /// Deletes recording `id` and its index; files already gone are not an error.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        for p in [path(self.file(id))?, path(self.index_file(id))?] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.sync_dir()
    }

    /// Makes the directory's entries durable.
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

fn path(p: Result<PathBuf, BadId>) -> io::Result<PathBuf> {
    p.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Creates a private file that must not exist, never through a symlink.
fn create_new(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    opts.open(path)
}

/// Opens a file for reading, never through a symlink.
fn open_read(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    opts.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_ids_name_files() {
        let dir = RecordingDir::new(PathBuf::from("/data/recordings"));
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            dir.file(id).unwrap(),
            PathBuf::from(format!("/data/recordings/{id}.cast"))
        );
        for bad in [
            "",
            "../secret.key",
            "0123456789abcdef0123456789abcde/",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdef0",
            "..%2f..%2fetc%2fpasswd",
        ] {
            assert!(dir.file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_are_private_and_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RecordingDir::new(tmp.path().join("rec"));
        let id = "00000000000000000000000000000001";
        dir.create(id).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.file(id).unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            dir.create(id).is_err(),
            "an existing recording is never truncated"
        );
        assert!(dir.open_index(id).is_ok(), "an index beside it");
        dir.remove(id).unwrap();
        dir.remove(id).unwrap();
        assert!(dir.open(id).is_err());
        assert!(dir.open_index(id).is_err());
    }
}
