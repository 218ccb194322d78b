//! The agent's own log file, rolled over like the official agent's: by size (`ecs-agent.log.1`,
//! `.2`, …, newest first) or hourly (`ecs-agent.log.YYYY-MM-DD-HH`), keeping
//! `ECS_LOG_MAX_ROLL_COUNT` old files. A write error never stops the agent: logging is best effort.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::MakeWriter;

/// When the file rolls over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rollover {
    /// When the file would pass this many bytes.
    Size(u64),
    /// When the UTC hour changes.
    Hourly,
    /// Never.
    Never,
}

struct Inner {
    path: PathBuf,
    file: File,
    written: u64,
    hour: u64,
    rollover: Rollover,
    keep: u32,
}

/// A shared, rolling log file usable as a `tracing` writer.
#[derive(Clone)]
pub struct LogFile(Arc<Mutex<Inner>>);

impl LogFile {
    /// Opens (appending to) the file, creating its directory.
    pub fn open(path: &Path, rollover: Rollover, keep: u32) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(LogFile(Arc::new(Mutex::new(Inner {
            path: path.to_owned(),
            file,
            written,
            hour: current_hour(),
            rollover,
            keep,
        }))))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn current_hour() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 3600)
        .unwrap_or(0)
}

impl Inner {
    fn roll_if_needed(&mut self, incoming: usize) -> io::Result<()> {
        match self.rollover {
            Rollover::Size(max) if self.written > 0 && self.written + incoming as u64 > max => {
                self.roll_numbered()
            }
            Rollover::Hourly if current_hour() != self.hour => {
                let suffix = hour_suffix(self.hour);
                self.hour = current_hour();
                self.roll_dated(&suffix)
            }
            _ => Ok(()),
        }
    }

    fn roll_numbered(&mut self) -> io::Result<()> {
        let name = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            let _ = fs::remove_file(&self.path);
        } else {
            let _ = fs::remove_file(name(self.keep));
            for n in (1..self.keep).rev() {
                let _ = fs::rename(name(n), name(n + 1));
            }
            fs::rename(&self.path, name(1))?;
        }
        self.reopen()
    }

    fn roll_dated(&mut self, suffix: &str) -> io::Result<()> {
        let target = PathBuf::from(format!("{}.{suffix}", self.path.display()));
        fs::rename(&self.path, target)?;
        self.prune_dated();
        self.reopen()
    }

    /// Keeps the newest `keep` dated files (their names sort by date).
    fn prune_dated(&self) {
        let (Some(dir), Some(base)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let prefix = format!("{}.", base.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut dated: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(&prefix))
                    .is_some_and(|rest| rest.len() == 13 && rest.as_bytes()[4] == b'-')
            })
            .collect();
        dated.sort();
        let excess = dated.len().saturating_sub(self.keep as usize);
        for old in &dated[..excess] {
            let _ = fs::remove_file(old);
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.file = open_append(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

/// `YYYY-MM-DD-HH` (UTC) for an hour counted from the Unix epoch.
fn hour_suffix(hours_since_epoch: u64) -> String {
    let days = (hours_since_epoch / 24) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}-{:02}", hours_since_epoch % 24)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// One event's writer: holds the lock so an event's bytes stay together.
pub struct LogFileWriter<'a>(MutexGuard<'a, Inner>);

impl Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = &mut *self.0;
        if let Err(e) = inner.roll_if_needed(buf.len()) {
            // Keep writing to the current file; a failed rename must not lose lines.
            let _ = writeln!(io::stderr(), "ecs-agent: log rollover failed: {e}");
        }
        let n = inner.file.write(buf)?;
        inner.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.file.flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rollover_shifts_numbered_files_and_keeps_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecs-agent.log");
        let log = LogFile::open(&path, Rollover::Size(100), 2).unwrap();
        for i in 0..5 {
            let mut w = log.make_writer();
            w.write_all(format!("{i}{}\n", "x".repeat(60)).as_bytes())
                .unwrap();
        }
        let current = fs::read_to_string(&path).unwrap();
        assert!(
            current.starts_with('4'),
            "newest line in the live file: {current}"
        );
        assert!(fs::read_to_string(dir.path().join("ecs-agent.log.1"))
            .unwrap()
            .starts_with('3'));
        assert!(fs::read_to_string(dir.path().join("ecs-agent.log.2"))
            .unwrap()
            .starts_with('2'));
        assert!(
            !dir.path().join("ecs-agent.log.3").exists(),
            "only 2 rolls kept"
        );
    }

    #[test]
    fn never_rollover_keeps_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path, Rollover::Never, 2).unwrap();
        for _ in 0..3 {
            log.make_writer().write_all(&[b'y'; 100]).unwrap();
        }
        assert_eq!(fs::metadata(&path).unwrap().len(), 300);
        assert!(!dir.path().join("a.log.1").exists());
    }

    #[test]
    fn hour_suffix_is_utc_calendar_hour() {
        // 2026-11-26T14:00:00Z is 1_795_701_600 s after the epoch.
        assert_eq!(hour_suffix(1_795_701_600 / 3600), "2026-11-26-14");
        assert_eq!(hour_suffix(0), "1970-01-01-00");
        // 2024-02-29T23:00:00Z (leap day).
        assert_eq!(hour_suffix(1_709_247_600 / 3600), "2024-02-29-23");
    }

    #[test]
    fn hourly_prune_keeps_newest_dated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecs-agent.log");
        for h in ["2026-11-26-10", "2026-11-26-11", "2026-11-26-12"] {
            fs::write(dir.path().join(format!("ecs-agent.log.{h}")), h).unwrap();
        }
        let log = LogFile::open(&path, Rollover::Hourly, 2).unwrap();
        log.lock().prune_dated();
        assert!(!dir.path().join("ecs-agent.log.2026-11-26-10").exists());
        assert!(dir.path().join("ecs-agent.log.2026-11-26-11").exists());
        assert!(dir.path().join("ecs-agent.log.2026-11-26-12").exists());
    }
}
