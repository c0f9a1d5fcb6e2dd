//! Replacing a file atomically: a temporary file beside the target, renamed over it.
//!
//! - The target is the file a symlink at `path` points to (followed to the end of a
//!   chain of links), so a link stays a link and the rename stays within the
//!   target's directory, on one filesystem.
//! - The temporary is `.{name}.tmp-{pid}-{n}` in that directory, created with
//!   `O_EXCL` (never opening a file that is already there, a symlink included),
//!   its `{name}` shortened (with a hash of the whole name) so that the temporary
//!   name fits in 255 bytes whenever the target's name does.
//! - On Linux, temporaries of the same target whose process is gone (no
//!   `/proc/{pid}`), owned by this user, are removed first: a save killed midway
//!   leaks its temporary only until the next save to that target.
//! - On Unix, an existing target's permissions carry over to the new file (they are
//!   set before any byte is written); a new file gets the process umask's default,
//!   as `std::fs::write` gives it.
//! - The data is synced before the rename, and the directory after it.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest file name most filesystems accept, in bytes (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Bytes a temporary name adds to its stem at most: `.`, `.tmp-`, a `u32` process
/// id and a `-`, a `u64` counter.
const TEMP_OVERHEAD: usize = 1 + 5 + 10 + 1 + 20;

/// Symlinks followed before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Writes the file at `path` (or the file a symlink there points to) with `write`,
/// through a temporary file renamed over it.
pub(super) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let target = follow_links(path)?;
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
    let stem = temp_stem(name);
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

/// `path`, or the end of the chain of symlinks that starts there (which need not
/// exist: saving through a dangling link creates its target, as `open` does).
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_LINKS} levels of symbolic links"
    )))
}

/// The stem of the temporaries of a file named `name`: the name itself when a
/// temporary name fits in [`NAME_MAX`] bytes, else its first bytes and a hash
/// of the whole name.
fn temp_stem(name: &OsStr) -> String {
    let name = name.to_string_lossy();
    let budget = NAME_MAX - TEMP_OVERHEAD;
    if name.len() <= budget {
        return name.into_owned();
    }
    let hash = format!("~{:016x}", fnv1a(name.as_bytes()));
    let mut cut = budget - hash.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}", &name[..cut])
}

/// The 64-bit FNV-1a hash (stable across Rust versions and platforms, unlike
/// `DefaultHasher`'s).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_fit_in_255_bytes() {
        let temp = |stem: &str| format!(".{stem}.tmp-{}-{}", u32::MAX, u64::MAX);
        assert_eq!(temp_stem(OsStr::new("w.safetensors")), "w.safetensors");
        for len in [1, 100, 218, 219, 243, 255, 300] {
            let name = "x".repeat(len);
            let stem = temp_stem(OsStr::new(&name));
            assert!(temp(&stem).len() <= 255, "{len}");
            assert_eq!(stem == name, len <= 218, "{len}");
        }
        // multi-byte characters are not cut in half
        let name = "é".repeat(127);
        let stem = temp_stem(OsStr::new(&name));
        assert!(temp(&stem).len() <= 255);
        assert!(stem.starts_with("éé") && stem.contains('~'));
        // long names that differ only at the end get different stems
        let a = format!("{}a", "p".repeat(240));
        let b = format!("{}b", "p".repeat(240));
        assert_ne!(temp_stem(OsStr::new(&a)), temp_stem(OsStr::new(&b)));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
