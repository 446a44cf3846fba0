//! The `Options` builder and the policy enums it takes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::fs::Fs;

/// How hard a commit works to survive power loss.
///
/// # Examples
///
/// ```
/// use txfile::{Durability, Options};
/// let opts = Options::new().durability(Durability::None);
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// fsync the new contents before the rename and the directory after it
    /// (`F_FULLFSYNC` on macOS). A commit that returned `Ok` survives power loss.
    #[default]
    Full,
    /// Skip both fsyncs. Commits stay atomic for other processes and survive
    /// a crash of the program, but after power loss or a kernel crash the file
    /// may hold an older version, or on some filesystems be empty.
    None,
}

pub use crate::fs::LockStyle;

/// What to do when the target path is a symbolic link.
///
/// # Examples
///
/// ```
/// use txfile::{Options, Symlinks};
/// let opts = Options::new().symlinks(Symlinks::Reject);
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Symlinks {
    /// Resolve the link when the handle is opened and update the file it points
    /// to; the link stays a link. The guard file sits beside the real file,
    /// and the handle works in the real file's directory (resolved once, at
    /// open).
    #[default]
    Follow,
    /// Replace the link itself with a regular file holding the new contents.
    /// The old contents are read through the link.
    Replace,
    /// Refuse to work on a symbolic link with [`Error::Symlink`](crate::Error::Symlink).
    Reject,
}

/// Configures and opens a [`TxFile`](crate::TxFile).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use txfile::{Durability, Options};
/// # let dir = tempfile::tempdir()?;
/// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("state");
///
/// let file = Options::new()
///     .timeout(Duration::from_secs(5))
///     .durability(Durability::Full)
///     .open(&path)?;
/// file.update(|_| Ok::<_, std::io::Error>(b"v1".to_vec()))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) timeout: Option<Duration>,
    pub(crate) durability: Durability,
    pub(crate) lock_style: LockStyle,
    pub(crate) symlinks: Symlinks,
    pub(crate) mode: u32,
    pub(crate) allow_local_locks: bool,
    pub(crate) require_xattrs: bool,
    pub(crate) in_place_fallback: bool,
    pub(crate) replace_retry: Duration,
    pub(crate) guard_path: Option<PathBuf>,
    pub(crate) fs: Option<Arc<dyn Fs>>,
    pub(crate) mutant: crate::mutants::Selected,
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl Options {
    /// Options with every default: wait forever for the lock,
    /// [`Durability::Full`], [`LockStyle::Flock`], [`Symlinks::Follow`], mode
    /// `0o666` for new files.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = txfile::Options::new();
    /// # let _ = opts;
    /// ```
    pub fn new() -> Self {
        Options {
            timeout: None,
            durability: Durability::Full,
            lock_style: LockStyle::Flock,
            symlinks: Symlinks::Follow,
            mode: 0o666,
            allow_local_locks: false,
            require_xattrs: false,
            in_place_fallback: true,
            replace_retry: crate::replace::DEFAULT_RETRY,
            guard_path: None,
            fs: None,
            mutant: crate::mutants::Selected::default(),
        }
    }

    /// How long [`TxFile::begin`](crate::TxFile::begin) waits for the lock before it returns
    /// [`Error::Timeout`](crate::Error::Timeout). By default it waits forever.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = txfile::Options::new().timeout(std::time::Duration::from_millis(250));
    /// # let _ = opts;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How commits are flushed. By default [`Durability::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = txfile::Options::new().durability(txfile::Durability::None);
    /// # let _ = opts;
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Which OS lock guards the file where only one kind can be taken (see
    /// [`LockStyle`]: elsewhere both are). By default [`LockStyle::Flock`].
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = txfile::Options::new().lock_style(txfile::LockStyle::Posix);
    /// # let _ = opts;
    /// ```
    pub fn lock_style(mut self, style: LockStyle) -> Self {
        self.lock_style = style;
        self
    }

    /// What to do when the target is a symbolic link. By default
    /// [`Symlinks::Follow`].
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = txfile::Options::new().symlinks(txfile::Symlinks::Replace);
    /// # let _ = opts;
    /// ```
    pub fn symlinks(mut self, symlinks: Symlinks) -> Self {
        self.symlinks = symlinks;
        self
    }

    /// Permission bits for a target that does not exist yet; the process umask
    /// is applied by the kernel. By default `0o666` (so `0o644` under umask
    /// `022`). An existing target always keeps its own mode.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = txfile::Options::new().mode(0o600);
    /// # let _ = opts;
    /// ```
    #[cfg(unix)]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }

    /// How long a commit keeps retrying the rename while another program
    /// holds the target open in a way that forbids replacing it, before it
    /// gives up with [`Error::HeldOpen`](crate::Error::HeldOpen) (the target
    /// unchanged, the temporary file removed). By default 2 seconds;
    /// `Duration::ZERO` tries once.
    ///
    /// This happens on Windows, where a file cannot be replaced while a
    /// program has it open (editors, virus scanners, search indexers and
    /// backup tools do, for moments or longer; so does a lockless
    /// [`TxFile::read`](crate::TxFile::read) in another process). The
    /// attempts pause 1 ms, doubling up to 100 ms. A rename refused with
    /// "access denied" is retried too, since a reader may have closed the
    /// file before the refusal could be told from a missing permission;
    /// if it never goes through, the error is
    /// [`Error::Rename`](crate::Error::Rename). Unix renames are never
    /// refused that way, so there this changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = txfile::Options::new().replace_retry(std::time::Duration::from_secs(10));
    /// # let _ = opts;
    /// ```
    pub fn replace_retry(mut self, retry: Duration) -> Self {
        self.replace_retry = retry;
        self
    }

    /// Accepts a target on a mount whose locks stay on this host: NFS
    /// mounted with `nolock`, or with `local_lock=` covering the lock style
    /// (`all`, or `flock` for [`LockStyle::Flock`], `posix` for
    /// [`LockStyle::Posix`]). There the lock excludes only processes on this
    /// host, so opening such a target fails with [`Error::LocalLock`](crate::Error::LocalLock) unless
    /// this is `true`. Set it only when no other host updates the file. By
    /// default `false`. (Linux reads the mount from `/proc/self/mountinfo`;
    /// elsewhere nothing is checked.)
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = txfile::Options::new().allow_local_locks(true);
    /// # let _ = opts;
    /// ```
    pub fn allow_local_locks(mut self, allow: bool) -> Self {
        self.allow_local_locks = allow;
        self
    }

    /// Makes a commit fail with [`Error::Xattr`](crate::Error::Xattr) when the new version
    /// cannot get one of the old version's extended attributes, instead of
    /// going on without it.
    ///
    /// A commit gives the new version every extended attribute of the file
    /// it replaces (Linux and macOS): `user.*` attributes, the POSIX access
    /// ACL (`system.posix_acl_access`), the SELinux label
    /// (`security.selinux`) and the rest. An attribute in a namespace this
    /// process may not write (`trusted.*` unless it has `CAP_SYS_ADMIN`,
    /// `security.*` without the security module's leave) cannot be copied:
    /// by default it is left out; with this set to `true` the commit fails
    /// naming it, the temporary file is removed and the target keeps its
    /// old contents and attributes. By default `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("config");
    /// let file = txfile::Options::new().require_xattrs(true).open(&path)?;
    /// file.update(|_| Ok::<_, std::io::Error>(b"v1".to_vec()))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn require_xattrs(mut self, require: bool) -> Self {
        self.require_xattrs = require;
        self
    }

    /// Whether a target that cannot be renamed over is updated by copying
    /// the new contents into it, crash-safely, instead of failing.
    ///
    /// A file bind-mounted over another (`docker run -v
    /// ./config.json:/app/config.json`, a Kubernetes `subPath` mount) cannot
    /// be replaced by a rename: `rename` fails with `EBUSY`. With this on, a
    /// commit then stages the new contents in a temporary file as usual,
    /// writes and syncs an intent record `.<name>.txinplace` beside the
    /// target (the commit point), copies the staged contents over the
    /// target, truncates and syncs it, and removes the record and the
    /// staged file. A crash at any point leaves either the old version or,
    /// after the next transaction finishes the copy from the record, the
    /// new one; [`TxFile::read`](crate::TxFile::read) of such a target takes the shared lock, so
    /// it never sees a half-copied file. Such a commit always syncs, even
    /// under [`Durability::None`], and the target keeps its inode, owner,
    /// mode and extended attributes. With this off, the commit fails with
    /// [`Error::Rename`](crate::Error::Rename) (kind
    /// [`ResourceBusy`](std::io::ErrorKind::ResourceBusy)) and nothing
    /// changes. By default `true`: the caller asked for the update.
    ///
    /// # Examples
    ///
    /// ```
    /// // Fail rather than copy in place.
    /// let opts = txfile::Options::new().in_place_fallback(false);
    /// # let _ = opts;
    /// ```
    pub fn in_place_fallback(mut self, fallback: bool) -> Self {
        self.in_place_fallback = fallback;
        self
    }

    /// The guard file to lock instead of `<name>.lock` beside the target.
    ///
    /// By default the guard of `dir/name` is `dir/name.lock`. When that name
    /// is taken by a file of your own (`Gemfile.lock`, `Cargo.lock`, another
    /// target), txfile refuses to use it ([`Error::ForeignGuard`](crate::Error::ForeignGuard)); choose
    /// another name here, the same in every program that updates the target
    /// (the command line takes `--guard PATH`). A relative path is taken
    /// from the current directory. The guard must not be the target itself,
    /// and txfile never deletes it. Like the target's, its path must be
    /// UTF-8 ([`Error::InvalidPath`](crate::Error::InvalidPath) at open otherwise). Its directory must
    /// exist at open, which opens it (an [`Error::Io`](crate::Error::Io) otherwise): like the
    /// target's, the guard is then a name in that directory, whatever
    /// becomes of the directory's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = dir.path();
    /// std::fs::write(dir.join("Gemfile.lock"), "GEM\n")?;
    /// let file = txfile::Options::new()
    ///     .guard_path(dir.join(".Gemfile.txlock"))
    ///     .open(dir.join("Gemfile"))?;
    /// file.update(|_| Ok::<_, std::io::Error>(b"gem \"rails\"\n".to_vec()))?;
    /// assert_eq!(std::fs::read(dir.join("Gemfile.lock"))?, b"GEM\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn guard_path(mut self, path: impl AsRef<Path>) -> Self {
        self.guard_path = Some(path.as_ref().to_owned());
        self
    }

    /// Makes commits run a deliberately broken protocol, so that tests can
    /// show the crash checks catch it. Never use it for real data. Only in
    /// the project's own test builds (`--cfg txfile_mutants`, see
    /// `src/mutants.rs`).
    #[cfg(txfile_mutants)]
    #[doc(hidden)]
    pub fn mutant(mut self, mutant: crate::mutants::Mutant) -> Self {
        self.mutant = crate::mutants::Selected(mutant);
        self
    }
}
