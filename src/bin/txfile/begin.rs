//! Taking the lock: the one step every locking command shares.

use txfile::{Transaction, TxFile};

use crate::args::Locking;
use crate::exit::Exit;

/// Begins a transaction on `file`, waiting for the lock as `--timeout` says,
/// or not at all under `--no-wait`. Not getting it is exit 75.
pub(crate) fn begin<'f>(file: &'f TxFile, locking: &Locking) -> Result<Transaction<'f>, Exit> {
    if locking.no_wait {
        file.try_begin()?.ok_or_else(|| Exit::busy(file.path()))
    } else {
        Ok(file.begin()?)
    }
}
