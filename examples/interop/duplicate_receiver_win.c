/*
 * The other direction on Windows: a native program that memport hands memory
 * to with region.duplicateInto(pid) — no name, no inheritance. It reads
 * "<handle value> <size>\n" on stdin (the value is valid in this process
 * already), maps the section, prints the NUL-terminated message at its start,
 * and checks that the rights are what it was promised: read-only, so a
 * writable view must fail.
 *
 *   duplicate_receiver_win.exe       (then write "<value> <size>\n" to stdin)
 *
 * Exit codes: 0 ok, 1 bad input, 2 MapViewOfFile failed, 3 a writable view
 * was allowed on a handle that should be read-only.
 */
#include <windows.h>
#include <stdio.h>

int main(void) {
  printf("READY %lu\n", GetCurrentProcessId());
  fflush(stdout);
  unsigned long long value = 0, size = 0;
  if (scanf("%llu %llu", &value, &size) != 2 || value == 0 || size == 0) {
    printf("bad input\n");
    return 1;
  }
  HANDLE section = (HANDLE)(ULONG_PTR)value;
  const char* view = (const char*)MapViewOfFile(section, FILE_MAP_READ, 0, 0, (SIZE_T)size);
  if (view == NULL) {
    printf("Could not map view of file (%lu).\n", GetLastError());
    return 2;
  }
  printf("RECEIVER READ: %.*s\n", (int)size, view);
  void* writable = MapViewOfFile(section, FILE_MAP_WRITE, 0, 0, (SIZE_T)size);
  printf("WRITABLE VIEW: %s (error %lu)\n", writable ? "allowed" : "refused", writable ? 0 : GetLastError());
  fflush(stdout);
  if (writable) UnmapViewOfFile(writable);
  UnmapViewOfFile(view);
  CloseHandle(section);
  return writable ? 3 : 0;
}
