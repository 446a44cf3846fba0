//! Mounts whose locks stay on one host: NFS mounted with `nolock` or with
//! `local_lock=` covering the chosen lock style. There the kernel grants
//! `flock` and/or POSIX locks without asking the server, so processes on
//! other hosts are not excluded at all. [`check`] finds the mount of a
//! target's directory in `/proc/self/mountinfo` (Linux) when a handle is
//! opened, and refuses it unless [`Options::allow_local_locks`] says the
//! caller knows.
// Only Linux reads mountinfo; elsewhere the parser is compiled for its tests.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::io;

use camino::Utf8Path;

use crate::{Error, LockStyle, Options};

/// One line of `/proc/self/mountinfo`, the parts this module needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    /// `major:minor` of the filesystem, as `st_dev` reports it.
    pub(crate) dev: (u32, u32),
    /// Where it is mounted, unescaped.
    pub(crate) mount_point: String,
    pub(crate) fstype: String,
    /// The per-mount options followed by the filesystem's own options (for
    /// NFS, `vers=`, `local_lock=`, `nolock` are among the latter).
    pub(crate) options: Vec<String>,
}

/// Parses one line: `id parent major:minor root mount_point mount_options
/// [optional fields...] - fstype source super_options`. `None` for a line
/// that does not have that shape.
pub(crate) fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let _id = fields.next()?;
    let _parent = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let _root = fields.next()?;
    let mount_point = unescape(fields.next()?);
    let mount_options = fields.next()?;
    let mut rest = after.split(' ');
    let fstype = rest.next()?.to_owned();
    let _source = rest.next()?;
    let super_options = rest.next().unwrap_or("");
    Some(Mount {
        dev: (major.parse().ok()?, minor.parse().ok()?),
        mount_point,
        fstype,
        options: mount_options
            .split(',')
            .chain(super_options.split(','))
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The option of `mount` that keeps `style` locks local to this host, if any.
pub(crate) fn local_lock_option(mount: &Mount, style: LockStyle) -> Option<&str> {
    if !is_nfs(mount) {
        return None;
    }
    mount
        .options
        .iter()
        .map(String::as_str)
        .find(|option| match *option {
            "nolock" | "local_lock=all" => true,
            "local_lock=flock" => style == LockStyle::Flock,
            "local_lock=posix" => style == LockStyle::Posix,
            _ => false,
        })
}

/// The mount in `mountinfo` (the file's text) whose device is `dev`.
pub(crate) fn find(mountinfo: &str, dev: (u32, u32)) -> Option<Mount> {
    mountinfo
        .lines()
        .filter_map(parse_line)
        .find(|mount| mount.dev == dev)
}

/// Refuses a directory on a mount whose locks would stay on this host,
/// unless the options accept it; returns whether the mount is NFS. Call it
/// for real filesystems only; only Linux is checked, and when `/proc`
/// cannot be read the check is skipped.
pub(crate) fn check(dir: &Utf8Path, options: &Options, path: &Utf8Path) -> Result<bool, Error> {
    let Some(mount) = mount_of(dir).map_err(|e| Error::io(crate::Op::Stat, dir, e))? else {
        return Ok(false);
    };
    let nfs = is_nfs(&mount);
    match local_lock_option(&mount, options.lock_style) {
        Some(option) if !options.allow_local_locks => Err(Error::LocalLock {
            path: path.to_owned(),
            mount_point: mount.mount_point.clone().into(),
            option: option.to_owned(),
        }),
        _ => Ok(nfs),
    }
}

fn is_nfs(mount: &Mount) -> bool {
    mount.fstype == "nfs" || mount.fstype == "nfs4"
}

#[cfg(target_os = "linux")]
fn mount_of(dir: &Utf8Path) -> io::Result<Option<Mount>> {
    let stat = rustix::fs::stat(dir.as_std_path())?;
    let dev = (
        rustix::fs::major(stat.st_dev),
        rustix::fs::minor(stat.st_dev),
    );
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => Ok(find(&text, dev)),
        Err(_) => Ok(None),
    }
}

#[cfg(not(target_os = "linux"))]
fn mount_of(_dir: &Utf8Path) -> io::Result<Option<Mount>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
29 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
61 29 0:52 / /mnt/shared rw,relatime shared:33 - nfs 10.0.1.1:/export rw,vers=3,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.1.1,mountvers=3,mountport=20048,mountproto=udp,local_lock=none,addr=10.0.1.1
62 29 0:53 / /mnt/with\\040space rw,relatime - nfs4 10.0.1.1:/ rw,vers=4.2,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.1.2,local_lock=flock,addr=10.0.1.1
63 29 0:54 / /mnt/nolock rw,relatime - nfs 10.0.1.1:/export rw,vers=3,nolock,proto=tcp,local_lock=all,addr=10.0.1.1
64 29 0:55 / /mnt/posix rw,relatime - nfs 10.0.1.1:/export rw,vers=3,local_lock=posix,addr=10.0.1.1
65 29 0:56 / /mnt/fuse rw - fuse.sshfs host:/ rw,local_lock=all
";

    fn mount(dev: (u32, u32)) -> Mount {
        find(SAMPLE, dev).expect("the sample has this device")
    }

    #[test]
    fn parses_fields_and_both_option_lists() {
        let m = mount((0, 52));
        assert_eq!(m.mount_point, "/mnt/shared");
        assert_eq!(m.fstype, "nfs");
        assert!(m.options.iter().any(|o| o == "relatime"));
        assert!(m.options.iter().any(|o| o == "local_lock=none"));
        assert_eq!(mount((254, 1)).fstype, "ext4");
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(mount((0, 53)).mount_point, "/mnt/with space");
        assert_eq!(unescape(r"a\011b\134c\012"), "a\tb\\c\n");
        assert_eq!(unescape(r"trailing\04"), r"trailing\04");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("1 2 x:y / / rw - ext4 /dev/a rw"), None);
        assert_eq!(parse_line("1 2 0:1 / / rw no separator"), None);
        assert_eq!(find("garbage\n", (0, 52)), None);
    }

    #[test]
    fn local_lock_covers_the_matching_style_only() {
        use LockStyle::{Flock, Posix};
        assert_eq!(local_lock_option(&mount((0, 52)), Flock), None);
        assert_eq!(local_lock_option(&mount((0, 52)), Posix), None);
        assert_eq!(
            local_lock_option(&mount((0, 53)), Flock),
            Some("local_lock=flock")
        );
        assert_eq!(local_lock_option(&mount((0, 53)), Posix), None);
        assert_eq!(local_lock_option(&mount((0, 54)), Flock), Some("nolock"));
        assert_eq!(local_lock_option(&mount((0, 54)), Posix), Some("nolock"));
        assert_eq!(local_lock_option(&mount((0, 55)), Flock), None);
        assert_eq!(
            local_lock_option(&mount((0, 55)), Posix),
            Some("local_lock=posix")
        );
        // Only NFS has these semantics.
        assert_eq!(local_lock_option(&mount((0, 56)), Flock), None);
        assert_eq!(local_lock_option(&mount((254, 1)), Posix), None);
    }

    #[test]
    fn a_local_directory_passes_the_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = Utf8Path::from_path(dir.path()).expect("utf-8 tempdir");
        assert!(!check(dir, &Options::new(), &dir.join("f")).expect("not refused"));
        #[cfg(target_os = "linux")]
        {
            let proc = mount_of(Utf8Path::new("/proc")).expect("stat /proc");
            assert_eq!(proc.map(|m| m.fstype).as_deref(), Some("proc"));
        }
    }
}
