/*
 * The classic parent/child pattern on Windows, with memport in the child: the
 * parent creates an UNNAMED pagefile-backed mapping whose handle is
 * inheritable, writes a message, starts a Node child with bInheritHandles=TRUE
 * and puts the handle's value on the child's command line. The child adopts
 * it with SharedRegion.fromHandle (inherit-child.mjs), prints the message and
 * writes a reply, which the parent prints once the child has exited.
 *
 *   inherit_parent_win.exe <node.exe> <inherit-child.mjs>
 *
 * Exit code: the child's, or 10+ for a failure here.
 */
#include <windows.h>
#include <stdio.h>
#include <string.h>

#define REGION_SIZE 4096
#define REPLY_OFFSET 2048

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <node.exe> <inherit-child.mjs>\n", argv[0]);
    return 10;
  }
  /* Inheritable, and no name: only this process and its children can reach it. */
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, /*lpSecurityDescriptor=*/NULL, /*bInheritHandle=*/TRUE};
  HANDLE mapping = CreateFileMappingW(INVALID_HANDLE_VALUE, &inherit, PAGE_READWRITE, 0, REGION_SIZE, /*lpName=*/NULL);
  if (mapping == NULL) {
    fprintf(stderr, "CreateFileMapping failed (%lu)\n", GetLastError());
    return 11;
  }
  char* view = (char*)MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, REGION_SIZE);
  if (view == NULL) {
    fprintf(stderr, "MapViewOfFile failed (%lu)\n", GetLastError());
    return 12;
  }
  strcpy(view, "Message from the C parent, through an inherited handle.");

  char command[2 * MAX_PATH + 64];
  snprintf(command, sizeof command, "\"%s\" \"%s\" %llu %d", argv[1], argv[2],
           (unsigned long long)(ULONG_PTR)mapping, REGION_SIZE);
  STARTUPINFOA startup = {sizeof startup};
  PROCESS_INFORMATION child;
  if (!CreateProcessA(NULL, command, NULL, NULL, /*bInheritHandles=*/TRUE, 0, NULL, NULL, &startup, &child)) {
    fprintf(stderr, "CreateProcess failed (%lu)\n", GetLastError());
    return 13;
  }
  WaitForSingleObject(child.hProcess, INFINITE);
  DWORD code = 14;
  GetExitCodeProcess(child.hProcess, &code);
  CloseHandle(child.hThread);
  CloseHandle(child.hProcess);

  printf("PARENT READ: %.*s\n", REGION_SIZE - REPLY_OFFSET, view + REPLY_OFFSET);
  fflush(stdout);
  UnmapViewOfFile(view);
  CloseHandle(mapping);
  return (int)code;
}
