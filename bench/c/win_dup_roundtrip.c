// Baseline for memport's handoff round trip on Windows, with nothing but
// Win32: the sender duplicates an unnamed section handle into the receiver
// (DuplicateHandle, FILE_MAP_READ) and writes the value into a message-mode
// named pipe; the receiver maps the section (MapViewOfFile), reads one byte,
// unmaps, closes the handle and answers with one byte. The transport of
// docs/PROTOCOL.md, without its checks or framing.
//
//   win_dup_roundtrip.exe <region-bytes> <iterations> <warmup>
//
// Prints {"roundtrip_ns":[...]} (one sample per round trip, as the sender sees
// it). The receiver is this program started again with "receiver <pipe>
// <bytes>": two processes on the same machine, as in the Node benchmarks.
// Cross-built with mingw-w64; under Wine, stdout must be a file.
#include "win_bench.h"

static void write_all(HANDLE pipe, const void* data, DWORD length) {
  DWORD written = 0;
  if (!WriteFile(pipe, data, length, &written, /*lpOverlapped=*/NULL) || written != length) die("WriteFile");
}

static DWORD read_message(HANDLE pipe, void* data, DWORD capacity) {
  DWORD got = 0;
  if (!ReadFile(pipe, data, capacity, &got, /*lpOverlapped=*/NULL)) return 0;
  return got;
}

static int receiver(const char* pipe_name, SIZE_T size) {
  HANDLE pipe = CreateFileA(pipe_name, GENERIC_READ | GENERIC_WRITE, /*dwShareMode=*/0, /*lpSecurityAttributes=*/NULL,
                            OPEN_EXISTING, /*dwFlagsAndAttributes=*/0, /*hTemplateFile=*/NULL);
  if (pipe == INVALID_HANDLE_VALUE) die("CreateFile(pipe)");
  DWORD mode = PIPE_READMODE_MESSAGE;
  if (!SetNamedPipeHandleState(pipe, &mode, NULL, NULL)) die("SetNamedPipeHandleState");
  for (;;) {
    uint64_t value = 0;
    if (read_message(pipe, &value, sizeof value) != sizeof value || value == 0) break;
    HANDLE section = (HANDLE)(uintptr_t)value;
    const volatile uint8_t* view = MapViewOfFile(section, FILE_MAP_READ, 0, 0, size);
    if (view == NULL) die("MapViewOfFile (receiver)");
    char ack = (char)view[0];
    UnmapViewOfFile((const void*)view);
    CloseHandle(section);
    write_all(pipe, &ack, 1);
  }
  CloseHandle(pipe);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 4 && strcmp(argv[1], "receiver") == 0) return receiver(argv[2], (SIZE_T)_strtoui64(argv[3], NULL, 0));
  const uint64_t size = argc > 1 ? _strtoui64(argv[1], NULL, 0) : (1 << 20);
  const size_t iterations = argc > 2 ? strtoul(argv[2], NULL, 0) : 2000;
  const size_t warmup = argc > 3 ? strtoul(argv[3], NULL, 0) : 200;

  HANDLE section = CreateFileMappingW(INVALID_HANDLE_VALUE, /*lpFileMappingAttributes=*/NULL, PAGE_READWRITE,
                                      (DWORD)(size >> 32), (DWORD)size, /*lpName=*/NULL);
  if (section == NULL) die("CreateFileMapping");
  uint8_t* view = MapViewOfFile(section, FILE_MAP_WRITE, 0, 0, (SIZE_T)size);
  if (view == NULL) die("MapViewOfFile");
  memset(view, 1, (size_t)size);  // pages exist before the first handoff, as in the Node benchmark

  char pipe_name[128];
  snprintf(pipe_name, sizeof pipe_name, "\\\\.\\pipe\\memport-bench-c-%lu", (unsigned long)GetCurrentProcessId());
  HANDLE pipe = CreateNamedPipeA(pipe_name, PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
                                 PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                 /*nMaxInstances=*/1, /*nOutBufferSize=*/4096, /*nInBufferSize=*/4096,
                                 /*nDefaultTimeOut=*/0, /*lpSecurityAttributes=*/NULL);
  if (pipe == INVALID_HANDLE_VALUE) die("CreateNamedPipe");

  char self[MAX_PATH];
  if (GetModuleFileNameA(NULL, self, sizeof self) == 0) die("GetModuleFileName");
  char command[MAX_PATH + 256];
  snprintf(command, sizeof command, "\"%s\" receiver %s %llu", self, pipe_name, (unsigned long long)size);
  STARTUPINFOA startup = {.cb = sizeof startup};
  PROCESS_INFORMATION child;
  if (!CreateProcessA(self, command, NULL, NULL, /*bInheritHandles=*/FALSE, 0, NULL, NULL, &startup, &child)) {
    die("CreateProcess");
  }
  if (!ConnectNamedPipe(pipe, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) die("ConnectNamedPipe");

  uint64_t* samples = calloc(iterations ? iterations : 1, sizeof *samples);
  if (samples == NULL) die("calloc");
  for (size_t i = 0; i < warmup + iterations; i++) {
    const uint64_t t0 = now_ns();
    HANDLE remote = NULL;
    if (!DuplicateHandle(GetCurrentProcess(), section, child.hProcess, &remote, FILE_MAP_READ,
                         /*bInheritHandle=*/FALSE, /*dwOptions=*/0)) {
      die("DuplicateHandle");
    }
    const uint64_t value = (uint64_t)(uintptr_t)remote;
    write_all(pipe, &value, sizeof value);
    char ack;
    if (read_message(pipe, &ack, 1) != 1) die("ReadFile(ack)");
    const uint64_t t1 = now_ns();
    if (i >= warmup) samples[i - warmup] = t1 - t0;
  }
  const uint64_t stop = 0;
  write_all(pipe, &stop, sizeof stop);
  WaitForSingleObject(child.hProcess, 10000);

  print_roundtrips(samples, iterations);
  return 0;
}
