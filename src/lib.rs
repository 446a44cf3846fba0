#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]
// Library code reports through errors, never by printing.
#![warn(clippy::print_stdout, clippy::print_stderr)]

#[cfg(feature = "tokio")]
mod async_batch;
#[cfg(feature = "tokio")]
mod async_file;
#[cfg(feature = "tokio")]
mod async_handle;
#[cfg(feature = "tokio")]
mod async_lock;
mod batch;
mod commit;
mod error;
mod frame;
mod fs;
mod group_sync;
mod guard;
mod handle;
mod inplace;
mod journal;
mod mountinfo;
mod mutants;
mod names;
mod options;
mod recovery;
mod replace;
#[cfg(feature = "sim")]
pub mod sim;
mod stale;
mod state;
mod sys;
mod trace;
mod transaction;
mod txfile;

#[cfg(feature = "tokio")]
pub use async_batch::{AsyncBatch, AsyncBatchTransaction, AsyncMember};
#[cfg(feature = "tokio")]
pub use async_file::{AsyncTransaction, AsyncTxFile};
pub use batch::{Batch, BatchTransaction};
/// The UTF-8 path types txfile reports paths in ([`TxFile::path`],
/// [`Error`]'s fields), re-exported so that users need not depend on camino.
pub use camino;
pub use error::{BoxError, Error, Op};
/// Only in the project's own test builds (`--cfg txfile_mutants`).
#[cfg(txfile_mutants)]
#[doc(hidden)]
pub use mutants::Mutant;
pub use options::{Durability, LockStyle, Options, Symlinks};
pub use recovery::recover;
pub use transaction::{OldReader, Transaction};
pub use txfile::{TxFile, update};
