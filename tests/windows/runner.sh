#!/bin/sh
# Cargo's runner for x86_64-pc-windows-gnu: runs a Windows program under Wine
# in the prefix tests/windows/setup.sh prepared (its environment, printed by
# setup.sh, must be set). The exit status is the program's.
: "${WINEPREFIX:?run tests/windows/setup.sh first (eval its output)}"
export WINEDEBUG="${WINEDEBUG:--all}"
exec /usr/lib/wine/wine64 "$@"
