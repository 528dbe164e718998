#!/bin/sh
# Builds test/native/win_transport_test.cc with mingw-w64 (linking native/core
# and native/win directly, no Node) and runs it under Wine, or prints how.
#   test/native/run-win-transport-test.sh            build and run
#   test/native/run-win-transport-test.sh --build    build only
# Output goes to build-win-test/win-transport-test.txt (under Wine, stdout
# must be a file) and is printed at the end. Exit status: the test's.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build-win-test"
exe="$out/win_transport_test.exe"
log="$out/win-transport-test.txt"
cxx=x86_64-w64-mingw32-g++-posix

command -v "$cxx" >/dev/null || { echo "missing $cxx (apt-get install -y g++-mingw-w64-x86-64)" >&2; exit 2; }
mkdir -p "$out"

# -posix: std::thread/std::mutex; -static: no libstdc++/libwinpthread DLLs next to the .exe.
"$cxx" -std=c++17 -static -O1 -Wall -Wextra -Wno-unused-parameter \
  -D_WIN32_WINNT=0x0A00 -DUNICODE -D_UNICODE \
  "$root"/native/core/*.cc "$root"/native/win/*.cc "$root/test/native/win_transport_test.cc" "$root/test/native/contract_os_win.cc" \
  -o "$exe" -ladvapi32
echo "built $exe"
[ "${1:-}" = "--build" ] && exit 0

wine=""
for candidate in wine64 /usr/lib/wine/wine64 wine; do
  if command -v "$candidate" >/dev/null 2>&1; then wine=$candidate; break; fi
done
[ -n "$wine" ] || { echo "Wine is not installed (apt-get install -y wine64); run $exe on Windows" >&2; exit 2; }

export WINEDEBUG=-all
export WINEPREFIX="${WINEPREFIX:-$root/.cache/wineprefix}"
status=0
(cd "$out" && timeout 900 "$wine" "$exe" > "$log" 2> "$out/win-transport-test.stderr.txt") || status=$?
# The program writes CRLF line ends (Windows text mode).
tr -d '\r' < "$log"
last=$(tail -n 1 "$log" | tr -d '\r')
case "$last" in
  *" passed, 0 failed") [ "$status" -eq 0 ] || { echo "exit status $status" >&2; exit "$status"; } ;;
  *) echo "win transport test failed (exit status $status); stderr in $out/win-transport-test.stderr.txt" >&2
     [ "$status" -ne 0 ] || status=1
     exit "$status" ;;
esac
