/*
 * The "second process" of the classic Win32 named-shared-memory example
 * (Microsoft Learn, "Creating Named Shared Memory"), written from its
 * description: open the mapping by name, map a view, and print the
 * NUL-terminated message the first process left there.
 *
 *   second_process.exe [name]      default Local\MyFileMappingObject
 *
 * Exit codes: 0 ok, 1 OpenFileMapping failed, 2 MapViewOfFile failed.
 */
#include <windows.h>
#include <stdio.h>

#define BUF_SIZE 256

int main(int argc, char** argv) {
  const char* name = argc > 1 ? argv[1] : "Local\\MyFileMappingObject";

  HANDLE mapping = OpenFileMappingA(FILE_MAP_READ, /* read access is all it needs */
                                    FALSE,         /* do not inherit the handle */
                                    name);
  if (mapping == NULL) {
    printf("Could not open file mapping object (%lu).\n", GetLastError());
    return 1;
  }
  const char* view = (const char*)MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, BUF_SIZE);
  if (view == NULL) {
    printf("Could not map view of file (%lu).\n", GetLastError());
    CloseHandle(mapping);
    return 2;
  }
  /* At most BUF_SIZE bytes, whether or not the writer terminated the string. */
  printf("%.*s\n", BUF_SIZE, view);
  UnmapViewOfFile(view);
  CloseHandle(mapping);
  return 0;
}
