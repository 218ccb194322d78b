//! Reading a container's log straight from Docker's `json-file` files, the way a careful
//! follower must: from the oldest rotated file (`<id>-json.log.N`) to the current one, and, when
//! Docker rotates while the agent is behind, on to the file that came next — found by the inode
//! of the file being read, so any number of rotations in between loses nothing that Docker
//! still keeps. (Docker's own follow API drops what rotated away under a slow reader.)
//!
//! Each entry comes with the place it ends in its file (inode and offset), so a checkpoint
//! names an exact place to resume from, whatever order Docker's timestamps come in (stdout and
//! stderr are stamped by separate goroutines, so the file is not always in timestamp order).
//!
//! Blocking I/O: call it from `spawn_blocking`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::checkpoint::FileOffset;

/// One entry of a json-file log: `{"log":"…","stream":"stdout","time":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    /// The text, ending with `\n` unless Docker split a long line into several entries.
    pub log: String,
    /// `stdout` or `stderr`.
    #[serde(default)]
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
    /// Where the entry starts and ends in its file.
    #[serde(skip)]
    pub start: FileOffset,
    #[serde(skip)]
    pub end: FileOffset,
}

/// The file being read.
struct Open {
    reader: BufReader<File>,
    ino: u64,
    offset: u64,
}

/// A follower of one container's json-file log.
pub struct JsonLog {
    base: PathBuf,
    open: Option<Open>,
}

impl JsonLog {
    /// A follower of the log at `base` (Docker's `LogPath`); nothing is opened yet.
    pub fn new(base: PathBuf) -> Self {
        JsonLog { base, open: None }
    }

    /// Positions the follower at `at` (a checkpoint) when Docker still keeps that file and it
    /// is that long; false when it does not (the follower then starts at the oldest file).
    pub fn resume_at(&mut self, at: FileOffset) -> io::Result<bool> {
        let files = std::iter::once(self.base.clone()).chain(self.rotated_files());
        for path in files {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let meta = file.metadata()?;
            if meta.ino() != at.ino {
                continue;
            }
            if meta.len() < at.offset {
                return Ok(false);
            }
            let mut reader = BufReader::with_capacity(1 << 20, file);
            reader.seek(SeekFrom::Start(at.offset))?;
            self.open = Some(Open {
                reader,
                ino: at.ino,
                offset: at.offset,
            });
            return Ok(true);
        }
        Ok(false)
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.base.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn inode(path: &Path) -> Option<u64> {
        std::fs::metadata(path).ok().map(|m| m.ino())
    }

    /// The rotated files that exist, newest first (`.1`, `.2`, …).
    fn rotated_files(&self) -> Vec<PathBuf> {
        (1..)
            .map(|n| self.rotated(n))
            .take_while(|p| p.exists())
            .collect()
    }

    /// Opens the oldest file Docker keeps.
    fn open_oldest(&mut self) -> io::Result<()> {
        let oldest = self
            .rotated_files()
            .pop()
            .unwrap_or_else(|| self.base.clone());
        self.open_path(&oldest)
    }

    fn open_path(&mut self, path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        let ino = file.metadata()?.ino();
        self.open = Some(Open {
            reader: BufReader::with_capacity(1 << 20, file),
            ino,
            offset: 0,
        });
        Ok(())
    }

    /// The file that followed the one with inode `ino`, if Docker rotated it away.
    fn successor(&self, ino: u64) -> Option<PathBuf> {
        if Self::inode(&self.base) == Some(ino) {
            return None;
        }
        let rotated = self.rotated_files();
        match rotated.iter().position(|p| Self::inode(p) == Some(ino)) {
            Some(0) => Some(self.base.clone()),
            Some(k) => Some(rotated[k - 1].clone()),
            // Deleted already: everything Docker keeps is newer, and what was in between is
            // gone (the agent was further behind than Docker keeps files).
            None => {
                tracing::warn!(log = %self.base.display(), "log files rotated away before they were shipped; lines lost");
                rotated.last().cloned().or_else(|| Some(self.base.clone()))
            }
        }
    }

    /// Reads entries until about `max_bytes` were read or the log's end; an empty result
    /// means the end for now. Lines that do not parse (a write cut short) are skipped.
    pub fn read(&mut self, max_bytes: usize) -> io::Result<Vec<Entry>> {
        if self.open.is_none() {
            self.open_oldest()?;
        }
        let mut out = Vec::new();
        let mut read = 0;
        let mut line = Vec::new();
        while read < max_bytes {
            let Some(open) = &mut self.open else {
                break;
            };
            line.clear();
            let n = open.reader.read_until(b'\n', &mut line)?;
            if n == 0 || !line.ends_with(b"\n") {
                // At the end: an incomplete last line is read again from its start.
                if n > 0 {
                    open.reader.seek_relative(-(n as i64))?;
                }
                let ino = open.ino;
                match self.successor(ino) {
                    Some(next) if n == 0 => self.open_path(&next)?,
                    _ => break,
                }
                continue;
            }
            read += n;
            let start = open.offset;
            open.offset += n as u64;
            if let Ok(mut entry) = serde_json::from_slice::<Entry>(&line) {
                entry.start = FileOffset {
                    ino: open.ino,
                    offset: start,
                };
                entry.end = FileOffset {
                    ino: open.ino,
                    offset: open.offset,
                };
                out.push(entry);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn entry(i: u32) -> String {
        format!("{{\"log\":\"line {i}\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-26T18:00:00.{i:09}Z\"}}\n")
    }

    fn append(path: &Path, range: std::ops::Range<u32>) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for i in range {
            f.write_all(entry(i).as_bytes()).unwrap();
        }
    }

    /// Every line `log` holds from where it stands, over rotations.
    fn read_to_end(log: &mut JsonLog) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let got = log.read(1 << 20).unwrap();
            if got.is_empty() {
                return all;
            }
            all.extend(texts(&got));
        }
    }

    fn texts(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| e.log.trim_end().to_owned())
            .collect()
    }

    /// Rotates as Docker does: .1 → .2, …, the current file → .1, a new current file.
    fn rotate(base: &Path, keep: u32) {
        let name = |n: u32| PathBuf::from(format!("{}.{n}", base.display()));
        let _ = std::fs::remove_file(name(keep));
        for n in (1..keep).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        std::fs::rename(base, name(1)).unwrap();
        std::fs::File::create(base).unwrap();
    }

    #[test]
    fn several_rotations_behind_a_slow_reader_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("c-json.log");
        append(&base, 0..3);
        let mut log = JsonLog::new(base.clone());
        assert_eq!(
            texts(&log.read(1 << 20).unwrap()),
            ["line 0", "line 1", "line 2"]
        );
        append(&base, 3..5);
        rotate(&base, 5);
        append(&base, 5..7);
        rotate(&base, 5);
        append(&base, 7..8);
        let all = read_to_end(&mut log);
        assert_eq!(all, ["line 3", "line 4", "line 5", "line 6", "line 7"]);
    }

    #[test]
    fn reading_starts_at_the_oldest_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("c-json.log");
        append(&base, 0..2);
        rotate(&base, 5);
        append(&base, 2..3);
        let mut log = JsonLog::new(base);
        let mut all = texts(&log.read(1 << 20).unwrap());
        all.extend(texts(&log.read(1 << 20).unwrap()));
        assert_eq!(all, ["line 0", "line 1", "line 2"]);
    }

    #[test]
    fn reading_resumes_exactly_where_an_entry_ended_even_in_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("c-json.log");
        append(&base, 0..4);
        let mut log = JsonLog::new(base.clone());
        let first = log.read(1 << 20).unwrap();
        let at = first[1].end;
        rotate(&base, 5);
        append(&base, 4..6);
        let mut again = JsonLog::new(base.clone());
        assert!(
            again.resume_at(at).unwrap(),
            "the rotated file is found by its inode"
        );
        let all = read_to_end(&mut again);
        assert_eq!(all, ["line 2", "line 3", "line 4", "line 5"]);
        let gone = FileOffset {
            ino: u64::MAX,
            offset: 0,
        };
        assert!(!JsonLog::new(base).resume_at(gone).unwrap());
    }

    #[test]
    fn a_line_still_being_written_is_read_once_complete() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("c-json.log");
        let full = entry(1);
        let (head, tail) = full.split_at(10);
        std::fs::write(&base, head).unwrap();
        let mut log = JsonLog::new(base.clone());
        assert!(log.read(1 << 20).unwrap().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&base)
            .unwrap();
        f.write_all(tail.as_bytes()).unwrap();
        assert_eq!(texts(&log.read(1 << 20).unwrap()), ["line 1"]);
    }
}
