// Baseline for memport's notifier round trip on Windows, with nothing but
// Win32: two processes ping-pong through two auto-reset Events (SetEvent,
// WaitForSingleObject). What a Notifier pair costs at the least.
//
//   win_event_pingpong.exe <iterations> <warmup>
//
// Prints {"roundtrip_ns":[...]} (one sample per ping + pong, as the parent
// sees it). The child is this program started again with "child <ping>
// <pong> <count>", the two Events inherited. Cross-built with mingw-w64;
// under Wine, stdout must be a file.
#include "win_bench.h"

static int child(HANDLE ping, HANDLE pong, size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (WaitForSingleObject(ping, INFINITE) != WAIT_OBJECT_0) return 2;
    if (!SetEvent(pong)) return 2;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 5 && strcmp(argv[1], "child") == 0) {
    return child((HANDLE)(uintptr_t)_strtoui64(argv[2], NULL, 0), (HANDLE)(uintptr_t)_strtoui64(argv[3], NULL, 0),
                 (size_t)_strtoui64(argv[4], NULL, 0));
  }
  const size_t iterations = argc > 1 ? strtoul(argv[1], NULL, 0) : 20000;
  const size_t warmup = argc > 2 ? strtoul(argv[2], NULL, 0) : 2000;
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  HANDLE ping = CreateEventW(&inherit, /*bManualReset=*/FALSE, /*bInitialState=*/FALSE, NULL);
  HANDLE pong = CreateEventW(&inherit, FALSE, FALSE, NULL);
  if (ping == NULL || pong == NULL) die("CreateEvent");
  char self[MAX_PATH];
  if (!GetModuleFileNameA(NULL, self, sizeof self)) die("GetModuleFileName");
  char command[MAX_PATH + 128];
  snprintf(command, sizeof command, "\"%s\" child %llu %llu %llu", self, (unsigned long long)(uintptr_t)ping,
           (unsigned long long)(uintptr_t)pong, (unsigned long long)(iterations + warmup));
  STARTUPINFOA startup = {sizeof startup};
  PROCESS_INFORMATION process;
  if (!CreateProcessA(NULL, command, NULL, NULL, /*bInheritHandles=*/TRUE, 0, NULL, NULL, &startup, &process)) {
    die("CreateProcess");
  }
  uint64_t* samples = calloc(iterations ? iterations : 1, sizeof *samples);
  if (samples == NULL) die("calloc");
  for (size_t i = 0; i < iterations + warmup; i++) {
    const uint64_t t0 = now_ns();
    if (!SetEvent(ping)) die("SetEvent");
    if (WaitForSingleObject(pong, 10000) != WAIT_OBJECT_0) die("WaitForSingleObject");
    if (i >= warmup) samples[i - warmup] = now_ns() - t0;
  }
  WaitForSingleObject(process.hProcess, 10000);
  DWORD code = 1;
  GetExitCodeProcess(process.hProcess, &code);
  if (code != 0) die("the child");
  print_roundtrips(samples, iterations);
  return 0;
}
