#!/bin/sh
# Builds the transport contract test (transport_contract_test.cc) against each
# backend, without Node: with the host's g++ against native/linux, and with
# mingw-w64 against native/win (run under Wine). Then runs one or both.
#   test/native/run-contract-test.sh linux     build and run the Linux variant
#   test/native/run-contract-test.sh win       build and run the Windows variant under Wine
#   test/native/run-contract-test.sh           both
#   test/native/run-contract-test.sh --build   build both, run nothing
# The last line printed is the run's "N passed, N failed" (both runs: the sum).
# Exit status: non-zero if a build or a check failed.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build-contract-test"
mkdir -p "$out"
what=${1:-both}
flags="-std=c++17 -O1 -g -Wall -Wextra -Wno-unused-parameter"
tests="$root/test/native/transport_contract_test.cc"

build_linux() {
  # Without loop_fd_watch.cc: it needs libuv, which only a Node process has;
  # the contract test drives readiness itself (pumped_js_thread.h).
  c++ $flags -pthread "$root"/native/core/*.cc $(ls "$root"/native/linux/*.cc | grep -v /loop_fd_watch.cc) "$tests" \
    "$root/test/native/contract_os_linux.cc" -o "$out/transport_contract_test"
}

build_win() {
  cxx=x86_64-w64-mingw32-g++-posix
  command -v "$cxx" >/dev/null || { echo "missing $cxx (apt-get install -y g++-mingw-w64-x86-64)" >&2; exit 2; }
  # -posix: std::thread/std::mutex; -static: no libstdc++/libwinpthread DLLs next to the .exe.
  "$cxx" $flags -static -D_WIN32_WINNT=0x0A00 -DUNICODE -D_UNICODE \
    "$root"/native/core/*.cc "$root"/native/win/*.cc "$tests" "$root/test/native/contract_os_win.cc" \
    -o "$out/transport_contract_test.exe" -ladvapi32
}

passed=0
failed=0
status=0
tally() {  # adds the last "N passed, N failed" line of file $1
  last=$(tail -n 1 "$1" | tr -d '\r')
  case "$last" in
    *" passed, "*" failed")
      passed=$((passed + ${last%% passed*}))
      f=${last#*passed, }
      failed=$((failed + ${f%% failed*})) ;;
    *) failed=$((failed + 1)); echo "(no closing tally: the program died)" ;;
  esac
}

run_linux() {
  log="$out/linux.txt"
  code=0
  (cd "$out" && timeout 900 ./transport_contract_test > "$log" 2>&1) || code=$?
  cat "$log"
  [ "$code" -eq 0 ] || { status=1; echo "linux run: exit status $code" >&2; }
  tally "$log"
}

run_win() {
  wine=""
  for candidate in wine64 /usr/lib/wine/wine64 wine; do
    if command -v "$candidate" >/dev/null 2>&1; then wine=$candidate; break; fi
  done
  [ -n "$wine" ] || { echo "Wine is not installed (apt-get install -y wine64); run $out/transport_contract_test.exe on Windows" >&2; exit 2; }
  log="$out/win.txt"
  code=0
  # Under Wine the program's stdout must be a file; it writes CRLF line ends.
  (cd "$out" && WINEDEBUG=-all WINEPREFIX="${WINEPREFIX:-$root/.cache/wineprefix}" \
    timeout 900 "$wine" ./transport_contract_test.exe > "$log" 2> "$out/win.stderr.txt") || code=$?
  tr -d '\r' < "$log"
  [ "$code" -eq 0 ] || { status=1; echo "win32 run: exit status $code; stderr in $out/win.stderr.txt" >&2; }
  tally "$log"
}

case "$what" in
  --build) build_linux; build_win; echo "built $out/transport_contract_test and .exe"; exit 0 ;;
  linux) build_linux; run_linux ;;
  win) build_win; run_win ;;
  both) build_linux; build_win; run_linux; run_win ;;
  *) echo "usage: $0 [linux|win|both|--build]" >&2; exit 2 ;;
esac
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed"
exit "$status"
