//! Keeping the idle agent's resident memory small: one malloc arena for the process, and, once
//! startup is over, the heap's free pages and the executable's startup-only code given back to the
//! kernel.
//!
//! Most of an idle agent's resident set is its own executable. Startup (configuration, Docker,
//! instance metadata, the SDK's credential and region chains, registration, the ACS and TCS
//! handshakes) runs code spread over the whole file; idle work (heartbeats, telemetry, Docker
//! pings, timers) runs about 2,600 functions. Two things keep only those resident:
//! - the release build links the idle functions first and together (`packaging/idle-symbols.txt`,
//!   passed to the linker by `build.rs`, made by `scripts/idle-symbols` from the pages an idle
//!   release agent touches with the disk's read-ahead off), so the pages idle work touches are
//!   few and adjacent instead of one 64 KB fault-around window per function;
//! - [`release_after_startup`] pages the executable's read-only mappings out (`MADV_PAGEOUT`) and
//!   drops the file's other cached pages (`POSIX_FADV_DONTNEED`), so only what idle work runs
//!   comes back, from the disk, at its next run. Contents never change: these are clean file
//!   pages; anything private (the GOT the loader wrote) cannot be reclaimed without swap and stays.
//!
//! Known limits: glibc only for the malloc calls; `MADV_PAGEOUT` needs Linux 5.4 (older kernels
//! refuse it and nothing changes); the kernel skips pages another process maps too (a second agent
//! run from the same file); this runs once, so code that later tasks bring in stays resident until
//! the kernel needs the memory. The first task after the release reads its code from the disk
//! again (one read-ahead window per fault, as at start).

use std::ops::Range;

/// How long after registration the startup pages are released: long enough for the ACS and TCS
/// sessions to be up, short enough that an idle instance is small within a minute of boot.
pub const STARTUP_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// One glibc malloc arena for the process instead of one per allocating thread (up to 8 per
/// core): each extra arena keeps its own partly used heap resident, and an agent that is idle
/// nearly always gains nothing from per-thread arenas. `MALLOC_ARENA_MAX`, when set, wins.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable; it takes the allocator's own lock.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Returns the heap's free pages and pages the executable's read-only mappings out. Blocking
/// (reads `/proc/self/maps`); errors are ignored, as the agent works the same without this.
pub fn release_after_startup() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    page_out_executable();
}

#[cfg(target_os = "linux")]
fn page_out_executable() {
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return;
    };
    let Some(exe) = exe.to_str() else {
        return;
    };
    for range in read_only_mappings_of(&maps, exe) {
        let (start, len) = (range.start as *mut libc::c_void, range.end - range.start);
        // SAFETY: the range is a whole mapping of this process, read-only, backed by the
        // executable; MADV_PAGEOUT never changes contents, it only lets the kernel reclaim pages
        // that a later access reads back.
        unsafe {
            libc::madvise(start, len, libc::MADV_PAGEOUT);
        }
    }
    // Pages of the file read ahead at start but never mapped: without this, a fault maps the
    // cached pages around it (fault-around), startup code included.
    if let Ok(file) = std::fs::File::open(exe) {
        use std::os::fd::AsRawFd;
        // SAFETY: advice on an open descriptor; DONTNEED drops only clean, unmapped pages.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
}

/// The address ranges of `path`'s mappings without write permission, from `/proc/PID/maps` text
/// (`start-end perms offset dev inode path`).
fn read_only_mappings_of(maps: &str, path: &str) -> Vec<Range<usize>> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let (range, perms) = (fields.next()?, fields.next()?);
            let mapped = fields.nth(3)?.trim_start();
            if mapped != path || perms.contains('w') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (start < end).then_some(start..end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
00200000-004c6000 r--p 00000000 fe:01 1234                       /usr/bin/ecs-agent
004c7000-00f2c000 r-xp 002c6000 fe:01 1234                       /usr/bin/ecs-agent
00f2d000-00f9c000 r--p 00d2c000 fe:01 1234                       /usr/bin/ecs-agent
00f9d000-00fda000 rw-p 00d9b000 fe:01 1234                       /usr/bin/ecs-agent
01e0c000-01ef4000 rw-p 00000000 00:00 0                          [heap]
7f2a1c000000-7f2a1c021000 rw-p 00000000 00:00 0 
7f2a1e400000-7f2a1e426000 r--p 00000000 fe:01 5678                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f2a1e426000-7f2a1e57b000 r-xp 00026000 fe:01 5678                       /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1b6b3000-7ffd1b6d4000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn finds_the_read_only_mappings_of_the_executable_only() {
        assert_eq!(
            read_only_mappings_of(MAPS, "/usr/bin/ecs-agent"),
            vec![0x200000..0x4c6000, 0x4c7000..0xf2c000, 0xf2d000..0xf9c000]
        );
    }

    #[test]
    fn a_path_that_only_starts_like_the_executable_is_not_it() {
        let maps = "00200000-004c6000 r--p 00000000 fe:01 1 /usr/bin/ecs-agent (deleted)\n";
        assert!(read_only_mappings_of(maps, "/usr/bin/ecs-agent").is_empty());
        assert!(read_only_mappings_of("garbage\n\n", "/usr/bin/ecs-agent").is_empty());
    }

    #[test]
    fn the_executable_of_this_test_has_read_only_mappings() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!read_only_mappings_of(&maps, exe.to_str().unwrap()).is_empty());
    }
}
