/*
 * The "first process" of the classic Win32 named-shared-memory example
 * (Microsoft Learn, "Creating Named Shared Memory"), written from its
 * description: create a pagefile-backed file mapping with a name, write a
 * message into a view, and keep the mapping alive until told to stop.
 *
 *   first_process.exe [name] [message]
 *     name     default Local\MyFileMappingObject
 *     message  default "Message from first process."
 *
 * Prints "READY" once the message is in place, then waits for a line (or end
 * of input) on stdin before closing — the original waits for a key press.
 * Exit codes: 0 ok, 1 CreateFileMapping failed, 2 MapViewOfFile failed,
 * 3 the name already existed (this program, like memport's createNamed,
 * refuses to use an object it did not create).
 */
#include <windows.h>
#include <stdio.h>
#include <string.h>

#define BUF_SIZE 256

int main(int argc, char** argv) {
  const char* name = argc > 1 ? argv[1] : "Local\\MyFileMappingObject";
  const char* message = argc > 2 ? argv[2] : "Message from first process.";

  HANDLE mapping = CreateFileMappingA(INVALID_HANDLE_VALUE, /* use the paging file */
                                      NULL,                 /* default security */
                                      PAGE_READWRITE,       /* read/write access */
                                      0,                    /* maximum size, high DWORD */
                                      BUF_SIZE,             /* maximum size, low DWORD */
                                      name);
  if (mapping == NULL) {
    printf("Could not create file mapping object (%lu).\n", GetLastError());
    return 1;
  }
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    printf("%s already exists; not using somebody else's object.\n", name);
    CloseHandle(mapping);
    return 3;
  }
  char* view = (char*)MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, BUF_SIZE);
  if (view == NULL) {
    printf("Could not map view of file (%lu).\n", GetLastError());
    CloseHandle(mapping);
    return 2;
  }
  size_t length = strlen(message);
  if (length >= BUF_SIZE) length = BUF_SIZE - 1;
  CopyMemory(view, message, length);
  view[length] = '\0';

  printf("READY\n");
  fflush(stdout);
  char line[16];
  (void)fgets(line, sizeof line, stdin); /* until a line or end of input */

  UnmapViewOfFile(view);
  CloseHandle(mapping);
  return 0;
}
