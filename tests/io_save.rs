//! How a checkpoint reaches the disk: temporary files (created exclusively, stale
//! ones of dead processes removed), permissions kept, symlinks followed, long names.
//!
//! In its own test binary (its own process), so that the temporary names a save
//! picks, which count per process, are predictable enough to collide with on
//! purpose.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrograd::io::{load_safetensors, save_safetensors};
use ferrograd::Tensor;

/// A fresh directory in the temp dir, removed with its contents when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "ferrograd-io-save-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        names_in(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn model(v: f32) -> Vec<(String, Tensor<f32>)> {
    vec![
        ("w".to_string(), Tensor::full(&[3, 2], v)),
        ("b".to_string(), Tensor::full(&[2], -v)),
    ]
}

/// The values of a checkpoint, by name.
fn values(path: &Path) -> BTreeMap<String, Vec<f32>> {
    load_safetensors::<f32, _>(path)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.to_vec()))
        .collect()
}

fn model_values(v: f32) -> BTreeMap<String, Vec<f32>> {
    model(v).into_iter().map(|(k, t)| (k, t.to_vec())).collect()
}

// ----- temporary files -----

/// A file (here: a symlink to a file the save must not touch) already at the
/// temporary name a save picks is never opened: temporaries are created with
/// `O_EXCL`. The save used to truncate and overwrite the link's target, then
/// rename the link over the checkpoint.
#[cfg(unix)]
#[test]
fn a_save_never_opens_an_existing_file_at_its_temporary_name() {
    let dir = TempDir::new("excl");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    let pid = std::process::id();
    // Saves in this process have used fewer than 512 temporary names so far.
    for n in 0..512 {
        let tmp = dir.join(&format!(".ckpt.safetensors.tmp-{pid}-{n}"));
        std::os::unix::fs::symlink(&victim, tmp).unwrap();
    }
    let path = dir.join("ckpt.safetensors");
    save_safetensors(&path, &model(1.0)).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(!std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(values(&path), model_values(1.0));
    // the 512 links are still there, and nothing else was left behind
    assert_eq!(dir.names().len(), 512 + 2);
}

/// A process id that is not running (a child that has exited and been reaped).
#[cfg(target_os = "linux")]
fn dead_pid() -> u32 {
    loop {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return pid;
        }
    }
}

/// Temporaries of a dead process are removed by the next save to the same
/// target; those of live processes, of other targets and files that merely look
/// alike are kept. They used to accumulate forever.
#[cfg(target_os = "linux")]
#[test]
fn the_next_save_removes_temporaries_left_by_dead_processes() {
    let dir = TempDir::new("stale");
    let dead = dead_pid();
    let me = std::process::id();
    let stale = [
        format!(".ckpt.safetensors.tmp-{dead}-0"),
        format!(".ckpt.safetensors.tmp-{dead}-17"),
    ];
    let kept = [
        format!(".ckpt.safetensors.tmp-{me}-999999"), // a live process's save
        format!(".other.safetensors.tmp-{dead}-0"),   // another target's
        format!(".ckpt.safetensors.tmp-{dead}-x"),    // not a temporary name
        format!(".ckpt.safetensors.tmp-{dead}"),
        format!("ckpt.safetensors.tmp-{dead}-0"),
    ];
    for name in stale.iter().chain(&kept) {
        std::fs::write(dir.join(name), vec![0u8; 1000]).unwrap();
    }
    let path = dir.join("ckpt.safetensors");
    save_safetensors(&path, &model(2.0)).unwrap();
    let mut expected: Vec<String> = kept.to_vec();
    expected.push("ckpt.safetensors".into());
    expected.sort();
    assert_eq!(dir.names(), expected);
    assert_eq!(values(&path), model_values(2.0));
}

/// The environment variables that turn `child_saves_forever` into a child process
/// that saves a large model to the directory and file name they hold, again and
/// again.
const CHILD_DIR: &str = "FERROGRAD_IO_SAVE_TEST_CHILD_DIR";
const CHILD_NAME: &str = "FERROGRAD_IO_SAVE_TEST_CHILD_NAME";

/// Not a test on its own: the child process of
/// `a_save_killed_mid_write_is_cleaned_up_by_the_next_save`.
#[test]
fn child_saves_forever() {
    let (Some(dir), Some(name)) = (std::env::var_os(CHILD_DIR), std::env::var_os(CHILD_NAME))
    else {
        return;
    };
    let big = [("w", Tensor::<f32>::full(&[8 << 20], 1.0))]; // 32 MiB
    loop {
        save_safetensors(Path::new(&dir).join(&name), &big).unwrap();
    }
}

/// Runs `child_saves_forever` on `dir/name` and kills it (`SIGKILL`) while a
/// temporary file is being written; returns the temporaries left in `dir`.
#[cfg(target_os = "linux")]
fn kill_a_save_mid_write(dir: &TempDir, name: &str) -> Vec<String> {
    let is_tmp = |n: &String| n.starts_with('.') && n.contains(".tmp-");
    for _attempt in 0..20 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_saves_forever", "--nocapture"])
            .env(CHILD_DIR, &dir.0)
            .env(CHILD_NAME, name)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // wait for a temporary file with some bytes in it, then kill the child
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(60) {
            let partial = dir
                .names()
                .into_iter()
                .filter(is_tmp)
                .any(|n| std::fs::metadata(dir.join(&n)).is_ok_and(|m| m.len() > 0));
            if partial {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let leftovers: Vec<String> = dir.names().into_iter().filter(is_tmp).collect();
        if !leftovers.is_empty() {
            return leftovers;
        }
    }
    panic!("the child was never killed mid-save");
}

/// `kill -9` during a save leaves a temporary file; the next save to the same
/// target removes it (also for a name long enough that the temporary's name is
/// shortened). They used to accumulate forever.
#[cfg(target_os = "linux")]
#[test]
fn a_save_killed_mid_write_is_cleaned_up_by_the_next_save() {
    let long = format!("{}.safetensors", "q".repeat(243 - ".safetensors".len()));
    for name in ["ckpt.safetensors", long.as_str()] {
        let dir = TempDir::new("killed");
        let leftovers = kill_a_save_mid_write(&dir, name);
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        let path = dir.join(name);
        save_safetensors(&path, &model(3.0)).unwrap();
        assert_eq!(dir.names(), [name]);
        assert_eq!(values(&path), model_values(3.0));
    }
}

// ----- permissions -----

/// Overwriting a checkpoint keeps its permissions: a private (0600) file stays
/// private. It used to become 0644 (the umask default of a new file).
#[cfg(unix)]
#[test]
fn overwriting_a_checkpoint_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perm");
    let path = dir.join("ckpt.safetensors");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    for m in [0o600, 0o640, 0o604, 0o444, 0o755] {
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
        save_safetensors(&path, &model(1.0)).unwrap();
        assert_eq!(mode(&path), m, "mode {m:o}");
        assert_eq!(values(&path), model_values(1.0));
        std::fs::remove_file(&path).unwrap();
    }
    // a new file gets what std::fs::write gives a new file
    save_safetensors(&path, &model(1.0)).unwrap();
    let plain = dir.join("plain");
    std::fs::write(&plain, b"x").unwrap();
    assert_eq!(mode(&path), mode(&plain));
}

// ----- symlinks -----

/// Saving to a symlink writes the file it points to (through a chain of links,
/// relative or absolute, and creating the target of a dangling one), as a plain
/// `open(path, "wb")` does; the link stays a link. The temporary file lives
/// beside the target, not beside the link. The link used to be replaced by a
/// regular file.
#[cfg(unix)]
#[test]
fn saving_to_a_symlink_writes_its_target() {
    use std::os::unix::fs::symlink;
    let links = TempDir::new("links");
    let store = TempDir::new("store");
    let real = store.join("real.safetensors");
    save_safetensors(&real, &model(1.0)).unwrap();

    // a relative link to another directory, then a link to that link
    let rel = PathBuf::from("..")
        .join(store.0.file_name().unwrap())
        .join("real.safetensors");
    symlink(&rel, links.join("latest.safetensors")).unwrap();
    symlink("latest.safetensors", links.join("current.safetensors")).unwrap();

    for (link, v) in [("latest.safetensors", 2.0), ("current.safetensors", 3.0)] {
        let path = links.join(link);
        save_safetensors(&path, &model(v)).unwrap();
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(values(&real), model_values(v));
        assert_eq!(values(&path), model_values(v));
        assert_eq!(links.names(), ["current.safetensors", "latest.safetensors"]);
        assert_eq!(store.names(), ["real.safetensors"]);
    }

    // an absolute link whose target does not exist yet
    let fresh = store.join("fresh.safetensors");
    symlink(&fresh, links.join("dangling.safetensors")).unwrap();
    save_safetensors(links.join("dangling.safetensors"), &model(4.0)).unwrap();
    assert_eq!(values(&fresh), model_values(4.0));
    assert!(
        std::fs::symlink_metadata(links.join("dangling.safetensors"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // a loop is an I/O error, not a hang
    symlink("loop-b", links.join("loop-a")).unwrap();
    symlink("loop-a", links.join("loop-b")).unwrap();
    assert!(matches!(
        save_safetensors(links.join("loop-a"), &model(5.0)),
        Err(ferrograd::Error::Io(_))
    ));
}

// ----- long names -----

/// File names up to the 255-byte limit save (and their temporaries are cleaned
/// up); the temporary name used to add ~20 bytes to the name and fail past 235.
#[test]
fn names_up_to_255_bytes_save() {
    let dir = TempDir::new("long");
    for len in [200, 218, 219, 243, 255] {
        let name = format!("{}.safetensors", "n".repeat(len - ".safetensors".len()));
        assert_eq!(name.len(), len);
        let path = dir.join(&name);
        save_safetensors(&path, &model(len as f32)).unwrap();
        save_safetensors(&path, &model(len as f32 + 0.5)).unwrap(); // overwrite
        assert_eq!(values(&path), model_values(len as f32 + 0.5));
    }
    // names that share a long prefix do not share temporaries
    let a = format!("{}a.safetensors", "p".repeat(240));
    let b = format!("{}b.safetensors", "p".repeat(240));
    save_safetensors(dir.join(&a), &model(1.0)).unwrap();
    save_safetensors(dir.join(&b), &model(2.0)).unwrap();
    assert_eq!(values(&dir.join(&a)), model_values(1.0));
    assert_eq!(values(&dir.join(&b)), model_values(2.0));
    assert!(
        dir.names().iter().all(|n| !n.starts_with('.')),
        "{:?}",
        dir.names()
    );
    // multi-byte characters: 85 × 3 bytes
    let name = "é".repeat(80) + "€.safetensors";
    assert!(name.len() > 170 && name.len() <= 255);
    save_safetensors(dir.join(&name), &model(6.0)).unwrap();
    let name = "€".repeat(85);
    assert_eq!(name.len(), 255);
    save_safetensors(dir.join(&name), &model(7.0)).unwrap();
    assert_eq!(values(&dir.join(&name)), model_values(7.0));
}
