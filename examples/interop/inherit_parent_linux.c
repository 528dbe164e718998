/*
 * The classic parent/child pattern on Linux, with memport in the child: the
 * parent creates an UNNAMED memfd (no MFD_CLOEXEC, so the child inherits it),
 * writes a message, seals its size (memport accepts only memory whose size
 * cannot change under it: F_SEAL_SHRINK | F_SEAL_GROW), and starts a Node
 * child with the fd number on its command line. The child adopts it with
 * SharedRegion.fromHandle (inherit-child.mjs), prints the message and writes
 * a reply, which the parent prints once the child has exited.
 *
 *   inherit_parent_linux <node> <inherit-child.mjs>
 *
 * Exit code: the child's, or 10+ for a failure here.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define REGION_SIZE 4096
#define REPLY_OFFSET 2048

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <node> <inherit-child.mjs>\n", argv[0]);
    return 10;
  }
  int fd = memfd_create("inherit-example", MFD_ALLOW_SEALING); /* inheritable: no MFD_CLOEXEC */
  if (fd < 0 || ftruncate(fd, REGION_SIZE) != 0) {
    perror("memfd_create/ftruncate");
    return 11;
  }
  char* view = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (view == MAP_FAILED) {
    perror("mmap");
    return 12;
  }
  strcpy(view, "Message from the C parent, through an inherited fd.");
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    perror("fcntl(F_ADD_SEALS)");
    return 13;
  }

  char fd_text[16], size_text[16];
  snprintf(fd_text, sizeof fd_text, "%d", fd);
  snprintf(size_text, sizeof size_text, "%d", REGION_SIZE);
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 14;
  }
  if (child == 0) {
    execl(argv[1], argv[1], argv[2], fd_text, size_text, (char*)NULL);
    perror("execl");
    _exit(15);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) {
    perror("waitpid");
    return 16;
  }
  printf("PARENT READ: %.*s\n", REGION_SIZE - REPLY_OFFSET, view + REPLY_OFFSET);
  munmap(view, REGION_SIZE);
  close(fd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 17;
}
