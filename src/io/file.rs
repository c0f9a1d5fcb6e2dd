//! Replacing a file atomically: a temporary file beside the target, renamed over it.
//!
//! - The temporary is `.{name}.tmp-{pid}-{n}` in the target's directory, created
//!   with `O_EXCL` (never opening a file that is already there, a symlink
//!   included).
//! - On Linux, temporaries of the same target whose process is gone (no
//!   `/proc/{pid}`), owned by this user, are removed first: a save killed midway
//!   leaks its temporary only until the next save to that target.
//! - On Unix, an existing target's permissions carry over to the new file (they are
//!   set before any byte is written); a new file gets the process umask's default,
//!   as `std::fs::write` gives it.
//! - The data is synced before the rename, and the directory after it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes the file at `path` with `write`, through a temporary file renamed over it.
pub(super) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let target = path.to_path_buf();
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not end in a file name",
        )
    })?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = name.to_string_lossy();
    remove_stale_temporaries(&dir, &stem);
    let (tmp, mut file) = create_temp(&dir, &stem, &target)?;
    let written = (|| {
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir)
}

/// Creates `.{stem}.tmp-{pid}-{n}` in `dir` with `O_EXCL`, for the first `n` (of a
/// per-process counter) whose name is free. On Unix the file gets the permissions
/// of `target` when it exists.
fn create_temp(dir: &Path, stem: &str, target: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    #[cfg(unix)]
    let keep = std::fs::metadata(target)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.permissions());
    #[cfg(not(unix))]
    let _ = target;
    let mut collisions = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{stem}.tmp-{}-{n}", std::process::id()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if keep.is_some() {
            // Nobody else may read it until it has the target's permissions.
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        match options.open(&tmp) {
            Ok(file) => {
                #[cfg(unix)]
                if let Some(perms) = keep {
                    if let Err(e) = file.set_permissions(perms) {
                        drop(file);
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                }
                return Ok((tmp, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && collisions < 1000 => {
                collisions += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Removes the temporaries `.{stem}.tmp-{pid}-{n}` in `dir` of processes that are
/// no longer running, when they are regular files owned by this process's user.
/// Best effort: errors are ignored. Linux only (a process is running when
/// `/proc/{pid}` exists); elsewhere nothing is removed.
#[cfg(target_os = "linux")]
fn remove_stale_temporaries(dir: &Path, stem: &str) {
    use std::os::unix::fs::MetadataExt;
    // Without /proc every process would look dead.
    let Ok(me) = std::fs::metadata("/proc/self") else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{stem}.tmp-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(pid) || !digits(n) || Path::new("/proc").join(pid).exists() {
            continue;
        }
        let path = entry.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && m.uid() == me.uid() => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn remove_stale_temporaries(_dir: &Path, _stem: &str) {}

/// Syncs `dir`, so that a rename in it survives a power loss. Skipped where a
/// directory cannot be opened (no read permission; not on Unix) or synced (a
/// filesystem that does not support it).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let Ok(d) = File::open(dir) else {
            return Ok(());
        };
        match d.sync_all() {
            Err(e)
                if e.kind() == io::ErrorKind::InvalidInput
                    || e.kind() == io::ErrorKind::Unsupported =>
            {
                Ok(())
            }
            r => r,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
