//! Where recordings live: `<recordings dir>/<id>.cast`, named by recording id
//! only, created private (0600, never through a symlink), the directory
//! synced after a file is created or removed.
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
        if !valid_id(id) {
            return Err(BadId(id.to_string()));
        }
        Ok(self.dir.join(format!("{id}.cast")))
    }

    /// Creates recording `id`'s file (it must not exist) and syncs the directory.
    pub fn create(&self, id: &str) -> io::Result<File> {
        let path = self
            .file(id)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        crate::secrets::create_private_dir(&self.dir)?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = opts.open(&path)?;
        self.sync_dir()?;
        Ok(file)
    }

    /// Opens recording `id` for reading.
    pub fn open(&self, id: &str) -> io::Result<File> {
        let path = self
            .file(id)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut opts = OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_NOFOLLOW);
        }
        opts.open(path)
    }

    /// Deletes recording `id`; a file already gone is not an error.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        let path = self
            .file(id)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        match std::fs::remove_file(path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes the directory's entries durable.
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
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
        dir.remove(id).unwrap();
        dir.remove(id).unwrap();
        assert!(dir.open(id).is_err());
    }
}
