#!/usr/bin/env bash
# Sets up everything needed to build txfile for x86_64-pc-windows-gnu and run
# the result under Wine, then prints the environment to use, e.g.
#
#     eval "$(bash tests/windows/setup.sh)"
#     cargo test --target x86_64-pc-windows-gnu --test windows
#
# Installs (as root, with apt-get; otherwise they must be there already) the
# mingw-w64 cross compiler and Wine 8 (`wine64`), adds the Rust target,
# creates a Wine prefix (default: target/wine-prefix; TXFILE_WINEPREFIX
# overrides) and puts the ProcessPrng shim (prng_shim.c) into its system32.
# Idempotent: a second run only prints the environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${TXFILE_WINEPREFIX:-$root/target/wine-prefix}
wine=/usr/lib/wine/wine64

log() { echo "windows/setup: $*" >&2; }

if ! command -v x86_64-w64-mingw32-gcc >/dev/null || [ ! -x "$wine" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "x86_64-w64-mingw32-gcc or $wine missing, and not root: install gcc-mingw-w64-x86-64 and wine64"
        exit 1
    fi
    log "installing gcc-mingw-w64-x86-64 and wine64"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        gcc-mingw-w64-x86-64 wine64 >&2
fi
if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
    rustup target add x86_64-pc-windows-gnu >&2
fi

export WINEPREFIX=$prefix WINEDEBUG=-all
# No Mono or Gecko installers (nothing here needs .NET or a browser), and
# our bcryptprimitives.dll (native) before any builtin one.
export WINEDLLOVERRIDES="mscoree,mshtml=;bcryptprimitives=n,b"
if [ ! -f "$prefix/system.reg" ]; then
    log "creating the Wine prefix $prefix"
    mkdir -p "$prefix"
    "$wine" wineboot --init >&2 2>/dev/null || true
    # wineboot returns before the server has written the registry.
    /usr/lib/wine/wineserver -w || true
fi
shim="$prefix/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$shim" ] || [ "$here/prng_shim.c" -nt "$shim" ]; then
    log "building the ProcessPrng shim"
    x86_64-w64-mingw32-gcc -O2 -shared -o "$shim" "$here/prng_shim.c" -ladvapi32
fi

cat <<ENV
export WINEPREFIX='$prefix'
export WINEDEBUG=-all
export WINEDLLOVERRIDES='$WINEDLLOVERRIDES'
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER='$here/runner.sh'
ENV
