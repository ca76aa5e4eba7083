//! The SQLite files are private to the service's user: the database is created with mode
//! 0600 before SQLite opens it, so the WAL and shared-memory files SQLite creates beside it
//! get the same mode (SQLite copies the database file's permissions to them), and files left
//! readable by others from an earlier run are tightened, with a warning.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Permission bits for group and others.
#[cfg(unix)]
const SHARED_BITS: u32 = 0o077;

/// Creates the database file `path` (mode 0600) when it is missing, and takes the group and
/// others bits off it and off its `-wal` and `-shm` files when they are set.
pub(crate) fn make_private(path: &Path) -> io::Result<()> {
    if !path.exists() {
        let mut options = OpenOptions::new();
        options.write(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot create {}: {error}", path.display()),
            )
        })?;
    }
    for file in [
        path.to_owned(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
    ] {
        tighten(&file)?;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(unix)]
fn tighten(file: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let Ok(metadata) = fs::metadata(file) else {
        return Ok(());
    };
    let mode = metadata.permissions().mode();
    if mode & SHARED_BITS != 0 {
        let private = mode & 0o700;
        log::warn!(
            "{} was open to group or others (mode {:o}): setting it to {private:o}",
            file.display(),
            mode & 0o777
        );
        fs::set_permissions(file, fs::Permissions::from_mode(private))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_file: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_file_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        make_private(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn files_left_readable_by_others_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        for file in [path.clone(), sibling(&path, "-wal"), sibling(&path, "-shm")] {
            fs::write(&file, b"").unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        }
        make_private(&path).unwrap();
        for file in [path.clone(), sibling(&path, "-wal"), sibling(&path, "-shm")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
}
