//! Checkpoints of a data-parallel run: written by rank 0 only, read by rank 0
//! and broadcast.

use std::path::Path;

use super::collective::Collective;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::io::Checkpoint;

/// The first byte of the status message rank 0 broadcasts: the rest is a
/// checkpoint's bytes (`OK`) or an error message (`FAILED`).
const OK: u8 = 0;
const FAILED: u8 = 1;

/// Writes a checkpoint of a data-parallel run, on rank 0 only: rank 0 calls
/// `make` (the other ranks do not: their replicas are equal to rank 0's) and
/// [`Checkpoint::save`]s it to `path`; then rank 0 tells every rank how it went,
/// so all ranks return together, with the file complete, and all fail when rank
/// 0 could not write it. Every rank must call it.
///
/// ```
/// use ferrograd::distributed::{load_checkpoint, local, save_checkpoint, Collective};
/// use ferrograd::io::Checkpoint;
///
/// let path = std::env::temp_dir().join(format!("ferrograd-dist-ckpt-{}.safetensors", std::process::id()));
/// let steps = local::spawn(2, |comm| -> ferrograd::Result<u64> {
///     save_checkpoint(&comm, &path, || Checkpoint::<f32>::new(1200).meta("run", "demo"))?;
///     let ck = load_checkpoint::<f32>(&comm, &path)?;   // read by rank 0, sent to the others
///     assert_eq!(ck.meta_value("run"), Some("demo"));
///     Ok(ck.step())
/// });
/// assert_eq!(steps.into_iter().collect::<ferrograd::Result<Vec<_>>>()?, [1200, 1200]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// On rank 0, the errors of [`Checkpoint::save`]; on the other ranks, an
/// [`Error::Collective`] that quotes rank 0's. [`Error::Collective`] when the
/// group fails.
pub fn save_checkpoint<T, P, F>(comm: &dyn Collective, path: P, make: F) -> Result<()>
where
    T: Element,
    P: AsRef<Path>,
    F: FnOnce() -> Checkpoint<T>,
{
    let op = "save_checkpoint";
    if comm.rank() == 0 {
        let saved = make().save(path.as_ref());
        let mut status = status_of(&saved, Vec::new);
        comm.broadcast_bytes(&mut status, 0)?;
        saved
    } else {
        let mut status = Vec::new();
        comm.broadcast_bytes(&mut status, 0)?;
        check_status(op, comm.rank(), &status).map(drop)
    }
}

/// Reads a checkpoint on every rank of a data-parallel run: rank 0 reads the
/// file at `path` and broadcasts its bytes, and every rank parses them
/// ([`Checkpoint::from_bytes`]), so the file needs to be on rank 0's machine
/// only. Every rank must call it; restore the parts on every rank as in a
/// single process ([`Checkpoint::restore_model`], …).
///
/// # Errors
/// On rank 0, [`Error::Io`] when the file cannot be read; on the other ranks an
/// [`Error::Collective`] that quotes it. The errors of
/// [`Checkpoint::from_bytes`] on every rank when the file is not a valid
/// checkpoint; [`Error::Collective`] when the group fails.
pub fn load_checkpoint<T: Element>(
    comm: &dyn Collective,
    path: impl AsRef<Path>,
) -> Result<Checkpoint<T>> {
    let op = "load_checkpoint";
    let path = path.as_ref();
    let mut message = Vec::new();
    let mut own_error = None;
    if comm.rank() == 0 {
        match std::fs::read(path) {
            Ok(bytes) => {
                message.reserve_exact(bytes.len() + 1);
                message.push(OK);
                message.extend_from_slice(&bytes);
            }
            Err(e) => {
                let e = std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
                let e = Err(Error::Io(e));
                message = status_of(&e, Vec::new);
                own_error = Some(e);
            }
        }
    }
    comm.broadcast_bytes(&mut message, 0)?;
    if let Some(e) = own_error {
        return e;
    }
    let bytes = check_status(op, comm.rank(), &message)?;
    Checkpoint::from_bytes(bytes)
}

/// The status message of `result`: `OK` followed by `payload()`, or `FAILED`
/// followed by the error's message.
fn status_of<X>(result: &Result<X>, payload: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    match result {
        Ok(_) => {
            let mut m = vec![OK];
            m.extend(payload());
            m
        }
        Err(e) => {
            let mut m = vec![FAILED];
            m.extend_from_slice(e.to_string().as_bytes());
            m
        }
    }
}

/// The payload of a status message, or the error it reports.
fn check_status<'a>(op: &'static str, rank: usize, status: &'a [u8]) -> Result<&'a [u8]> {
    match status.split_first() {
        Some((&OK, rest)) => Ok(rest),
        Some((_, msg)) => Err(Error::Collective {
            op,
            rank,
            msg: format!("rank 0 failed: {}", String::from_utf8_lossy(msg)),
        }),
        None => Err(Error::Collective {
            op,
            rank,
            msg: "rank 0 sent an empty status".to_string(),
        }),
    }
}
