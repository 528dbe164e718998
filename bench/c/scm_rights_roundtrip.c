// Baseline for memport's handoff round trip on Linux, with nothing but the
// kernel: one process sends a memfd over an AF_UNIX SOCK_SEQPACKET socket
// (SCM_RIGHTS, the transport docs/PROTOCOL.md uses); the other receives the
// fd, mmaps it, reads one byte, unmaps, closes and answers with one byte.
//
//   scm_rights_roundtrip <region-bytes> <iterations> <warmup>
//
// Prints {"roundtrip_ns":[...]} with one sample per measured round trip, as
// seen by the sender. The receiver is a fork()ed child: two processes on the
// same machine, no CPU pinning, exactly like the Node benchmarks.
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_clock.h"

static int send_fd(int sock, int fd) {
  char byte = 'R';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

// Returns the received fd, or -1 at end of stream.
static int receive_fd(int sock) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0) return -1;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return fd;
}

static void receiver(int sock, size_t size) {
  for (;;) {
    int fd = receive_fd(sock);
    if (fd < 0) _exit(0);
    const volatile uint8_t* p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) die("mmap (receiver)");
    char ack = (char)p[0];
    munmap((void*)p, size);
    close(fd);
    if (send(sock, &ack, 1, MSG_NOSIGNAL) != 1) die("send ack");
  }
}

int main(int argc, char** argv) {
  const size_t size = arg_u64(argc, argv, 1, 1 << 20);
  const size_t iterations = arg_u64(argc, argv, 2, 10000);
  const size_t warmup = arg_u64(argc, argv, 3, 1000);

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(sv[0]);
    receiver(sv[1], size);
  }
  close(sv[1]);

  int fd = memfd_create("bench", MFD_CLOEXEC);
  if (fd < 0) die("memfd_create");
  if (ftruncate(fd, (off_t)size) != 0) die("ftruncate");
  uint8_t* region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (region == MAP_FAILED) die("mmap");
  memset(region, 1, size);  // the pages exist before the first handoff, as in the Node benchmark

  uint64_t* samples = alloc_samples(iterations);
  for (size_t i = 0; i < warmup + iterations; i++) {
    const uint64_t t0 = now_ns();
    char ack;
    if (send_fd(sv[0], fd) != 0) die("sendmsg");
    if (recv(sv[0], &ack, 1, 0) != 1) die("recv ack");
    const uint64_t t1 = now_ns();
    if (i >= warmup) samples[i - warmup] = t1 - t0;
  }
  close(sv[0]);
  waitpid(child, NULL, 0);

  printf("{");
  print_samples("roundtrip_ns", samples, iterations);
  printf("}\n");
  return 0;
}
