//! Reading a `useMultiFileAuthState` folder within limits: regular files only (a symlink is
//! followed, and what it points to must be one), each file and the whole within a size cap,
//! read through a bounded reader. A FIFO is never opened (opening one blocks until a writer
//! comes), a device never read.

use std::fs::{self, File, Metadata};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{ImportError, ImportErrorKind, MAX_DIR_BYTES, human_size};

const HINT: &str = "give the folder useMultiFileAuthState wrote, with its creds.json";

/// One folder being read, with what has been read from it so far.
pub(super) struct Folder {
    dir: PathBuf,
    read: u64,
}

/// The kind of file `name` is, in words, when it is not a regular file.
fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
        if kind.is_char_device() || kind.is_block_device() {
            return Some("a device");
        }
    }
    Some("not a regular file")
}

fn refused(name: &str, what: &str) -> ImportError {
    ImportError::new(
        ImportErrorKind::Io,
        format!(
            "{name} is {what}, not a regular file: only regular files are read ({HINT}; useMultiFileAuthState writes nothing else)"
        ),
    )
}

/// Checks, before reading anything, that files of `bytes` in all fit [`MAX_DIR_BYTES`].
pub(super) fn fits(bytes: u64) -> Result<(), ImportError> {
    if bytes > MAX_DIR_BYTES {
        return Err(ImportError::new(
            ImportErrorKind::TooLarge,
            format!(
                "the folder's creds.json and key files come to {}, more than the {} a Baileys folder can hold: is this the right folder? ({HINT})",
                human_size(bytes),
                human_size(MAX_DIR_BYTES),
            ),
        ));
    }
    Ok(())
}

fn too_large(name: &str, size: u64, more: &str, cap: u64, what: &str) -> ImportError {
    ImportError::new(
        ImportErrorKind::TooLarge,
        format!(
            "{name} is {}{more}, more than the {} {what} can be: is this the right folder? ({HINT})",
            human_size(size),
            human_size(cap),
        ),
    )
}

fn io(what: &str, e: &std::io::Error) -> ImportError {
    ImportError::new(ImportErrorKind::Io, format!("{what}: {e} ({HINT})"))
}

impl Folder {
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            read: 0,
        }
    }

    /// The folder's listing.
    pub(super) fn list(&self) -> Result<fs::ReadDir, ImportError> {
        fs::read_dir(&self.dir).map_err(|e| io("listing the folder", &e))
    }

    /// Checks that `name` (in the folder) is a regular file, following a symlink, without
    /// opening it; returns its metadata.
    pub(super) fn check(&self, name: &str) -> Result<Metadata, ImportError> {
        // `metadata` follows symlinks (Kubernetes mounts a Secret's files as symlinks) and
        // never opens the file: a FIFO is refused here, before an open could block.
        let meta =
            fs::metadata(self.dir.join(name)).map_err(|e| io(&format!("reading {name}"), &e))?;
        match not_regular(&meta) {
            Some(what) => Err(refused(name, what)),
            None => Ok(meta),
        }
    }

    /// Checks a listed entry that is counted, not read: a regular file (its type comes with
    /// the listing), or a symlink to one.
    pub(super) fn check_entry(&self, entry: &fs::DirEntry, name: &str) -> Result<(), ImportError> {
        match entry.file_type() {
            Ok(kind) if kind.is_file() => Ok(()),
            _ => self.check(name).map(drop),
        }
    }

    /// Checks, without opening it, that `name` (in the folder) is a regular file of at most
    /// `cap` bytes; returns its size. `what` names what the file holds in the error ("a
    /// Baileys creds file").
    pub(super) fn check_size(&self, name: &str, cap: u64, what: &str) -> Result<u64, ImportError> {
        let len = self.check(name)?.len();
        if len > cap {
            return Err(too_large(name, len, "", cap, what));
        }
        Ok(len)
    }

    /// Reads `name` (in the folder), a regular file of at most `cap` bytes, and counts it
    /// against [`MAX_DIR_BYTES`]. `what` names what the file holds in the error.
    pub(super) fn read(
        &mut self,
        name: &str,
        cap: u64,
        what: &str,
    ) -> Result<Vec<u8>, ImportError> {
        let len = self.check_size(name, cap, what)?;
        self.count(name, len)?;
        let path = self.dir.join(name);
        let file = File::open(&path).map_err(|e| io(&format!("reading {name}"), &e))?;
        // It may have been replaced between the check and the open.
        let opened = file
            .metadata()
            .map_err(|e| io(&format!("reading {name}"), &e))?;
        if let Some(what) = not_regular(&opened) {
            return Err(refused(name, what));
        }
        // A bounded read: a file that grows, or says it is smaller than it is, stops here.
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1);
        file.take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io(&format!("reading {name}"), &e))?;
        let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if read > cap {
            return Err(too_large(
                name,
                read,
                " or more (it grew while being read)",
                cap,
                what,
            ));
        }
        self.count(name, read.saturating_sub(len))?;
        Ok(bytes)
    }

    fn count(&mut self, name: &str, more: u64) -> Result<(), ImportError> {
        self.read = self.read.saturating_add(more);
        if self.read > MAX_DIR_BYTES {
            return Err(ImportError::new(
                ImportErrorKind::TooLarge,
                format!(
                    "the folder's creds.json and key files grew to more than {} while being read (at {name}), more than a Baileys folder can hold: is this the right folder? ({HINT})",
                    human_size(MAX_DIR_BYTES),
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wa-pairing-baileys-dir-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_read_is_bounded_whatever_size_the_file_says() {
        let dir = temp_dir();
        fs::write(dir.join("small.json"), "{}").unwrap();
        let mut folder = Folder::new(&dir);
        assert_eq!(folder.read("small.json", 2, "a test file").unwrap(), b"{}");
        let err = folder.read("small.json", 1, "a test file").unwrap_err();
        assert_eq!(err.kind(), ImportErrorKind::TooLarge);
        assert!(
            err.to_string()
                .starts_with("small.json is 2 bytes, more than the 1 bytes a test file can be"),
            "{err}"
        );

        // A file that says it is empty and is not: /proc's files have size 0.
        #[cfg(target_os = "linux")]
        {
            std::os::unix::fs::symlink("/proc/self/status", dir.join("proc.json")).unwrap();
            let mut folder = Folder::new(&dir);
            assert_eq!(folder.check("proc.json").unwrap().len(), 0);
            let err = folder.read("proc.json", 16, "a test file").unwrap_err();
            assert_eq!(err.kind(), ImportErrorKind::TooLarge);
            assert!(
                err.to_string().starts_with(
                    "proc.json is 17 bytes or more (it grew while being read), more than the 16 bytes"
                ),
                "{err}"
            );
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_has_been_read_counts_against_the_folder_cap() {
        let dir = temp_dir();
        let mut folder = Folder::new(&dir);
        fits(MAX_DIR_BYTES).unwrap();
        assert_eq!(
            fits(MAX_DIR_BYTES + 1).unwrap_err().kind(),
            ImportErrorKind::TooLarge
        );
        folder.count("a.json", MAX_DIR_BYTES).unwrap();
        let err = folder.count("b.json", 1).unwrap_err();
        assert_eq!(err.kind(), ImportErrorKind::TooLarge);
        assert!(err.to_string().contains("(at b.json)"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
