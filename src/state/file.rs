//! The state file on disk: crash-safe writes that keep the previous copy, and loading that
//! survives a corrupt or truncated file (it is moved aside, the previous copy is used, and
//! the agent says what it did) — a bad file never makes the agent crash-loop.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::migrate::{self, ParseError, V1_FILE};
use super::{SavedState, StateError, FILE, VERSION};

/// What loading found, and what it had to do to get there.
#[derive(Debug, Default)]
pub struct Loaded {
    pub state: Option<SavedState>,
    /// What was done about missing or bad files, for the log.
    pub notes: Vec<String>,
    /// Bad files that could not be dealt with, for the log at error level (the agent still
    /// starts: a crash loop would not help).
    pub errors: Vec<String>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn previous(dir: &Path) -> PathBuf {
    dir.join(format!("{FILE}.prev"))
}

/// Reads a file; `Ok(None)` when it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Loads the saved state: the current file, else the previous copy, else a version 1
/// registration file (migrated). A file that does not parse is set aside (`*.corrupt`, see
/// [`set_aside`]) and the next candidate is tried. A file of a newer schema version is an
/// error that leaves every file as it is.
pub fn load(dir: &Path) -> Result<Loaded, StateError> {
    let mut loaded = Loaded::default();
    let candidates = [dir.join(FILE), previous(dir), dir.join(V1_FILE)];
    for (i, path) in candidates.iter().enumerate() {
        let Some(bytes) = read(path)? else {
            continue;
        };
        match migrate::parse(&bytes) {
            Ok(state) => {
                if i > 0 {
                    loaded.notes.push(format!("using {}", path.display()));
                }
                loaded.state = Some(state);
                return Ok(loaded);
            }
            Err(ParseError::Newer(found)) => {
                return Err(StateError::NewerSchema {
                    path: path.clone(),
                    found,
                    known: VERSION,
                })
            }
            Err(ParseError::Corrupt(why)) => match set_aside(path) {
                Ok(aside) => loaded.notes.push(format!(
                    "{} is unreadable ({why}); moved to {}",
                    path.display(),
                    aside.display()
                )),
                Err(e) => loaded.errors.push(format!(
                    "{} is unreadable ({why}) and could not be moved aside ({e}); ignoring it, \
                     the next save replaces it",
                    path.display()
                )),
            },
        }
    }
    if !loaded.notes.is_empty() || !loaded.errors.is_empty() {
        loaded
            .notes
            .push("no usable saved state: starting without saved tasks".into());
    }
    Ok(loaded)
}

/// How many set-aside copies of one file are kept: `<name>.corrupt`, then `<name>.corrupt.1`
/// to `<name>.corrupt.9`; past that the last one is replaced, so the first damage (usually
/// the interesting one) stays and a disk never fills with them.
const ASIDE_KEPT: usize = 10;

/// Renames a damaged file to the first free `<name>.corrupt[.n]` next to it.
fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".corrupt");
    let first = path.with_file_name(&name);
    let numbered = |n: usize| {
        let mut s = name.clone();
        s.push(format!(".{n}"));
        path.with_file_name(s)
    };
    let aside = std::iter::once(first)
        .chain((1..ASIDE_KEPT).map(numbered))
        .find(|p| !p.exists())
        .unwrap_or_else(|| numbered(ASIDE_KEPT - 1));
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Writes the state document: temp file (mode 0600), fsync, the current file becomes the
/// previous copy, rename, fsync of the directory. A crash at any point leaves either the new
/// or the old document readable.
pub fn write(dir: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = stage(dir, FILE, bytes)?;
    let path = dir.join(FILE);
    match fs::rename(&path, previous(dir)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&path)(e)),
    }
    commit(dir, &tmp, FILE)?;
    // The version 1 file is superseded once a current document is on disk.
    match fs::remove_file(dir.join(V1_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(dir)(e)),
        _ => Ok(()),
    }
}

/// Replaces `dir/name` with `bytes` crash-safely (temp file, fsync, rename, directory fsync),
/// mode 0600. For small files of their own (log checkpoints).
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = stage(dir, name, bytes)?;
    commit(dir, &tmp, name)
}

/// Replaces `dir/name` with `bytes` atomically (temp file, rename) without waiting for the
/// disk: survives a crash of the process (the page cache keeps it), not necessarily a power
/// cut, where the previous content (or none) may come back. For records that are rewritten
/// many times a second, where an fsync under heavy disk writes would stall for long.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let (tmp, mut f) = open_tmp(dir, name)?;
    let path = dir.join(name);
    f.write_all(bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// Writes and syncs the temp file next to `name`.
fn stage(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, StateError> {
    let (tmp, mut f) = open_tmp(dir, name)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    Ok(tmp)
}

/// Opens the temp file next to `name`, empty and mode 0600. A temp file left by a crash is
/// reused, and its mode set again: `mode` at open only applies to a new file, and a stale one
/// with a wider mode would otherwise become the state file with it.
fn open_tmp(dir: &Path, name: &str) -> Result<(PathBuf, fs::File), StateError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|f| {
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            Ok(f)
        })
        .map_err(io_err(&tmp))?;
    Ok((tmp, f))
}

/// Renames the synced temp file over `name` and syncs the directory.
fn commit(dir: &Path, tmp: &Path, name: &str) -> Result<(), StateError> {
    let path = dir.join(name);
    fs::rename(tmp, &path).map_err(io_err(&path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
