// Baseline for memport's notifier round trip on Linux, with nothing but the
// kernel: two processes ping-pong through two eventfds (blocking reads, one
// 8-byte write per wake-up). What a Notifier pair costs at the least.
//
//   eventfd_pingpong <iterations> <warmup>
//
// Prints {"roundtrip_ns":[...]}: one sample per ping + pong, as the parent
// sees it. The child is a fork, as the Node benchmark's peer is a second
// process on the same machine.
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_clock.h"

static void signal_fd(int fd) {
  const uint64_t one = 1;
  if (write(fd, &one, sizeof one) != sizeof one) die("write(eventfd)");
}

static int wait_fd(int fd) {
  uint64_t value = 0;
  return read(fd, &value, sizeof value) == sizeof value;
}

int main(int argc, char** argv) {
  const size_t iterations = arg_u64(argc, argv, 1, 20000);
  const size_t warmup = arg_u64(argc, argv, 2, 2000);
  const int ping = eventfd(0, EFD_CLOEXEC);
  const int pong = eventfd(0, EFD_CLOEXEC);
  if (ping < 0 || pong < 0) die("eventfd");
  const pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    for (size_t i = 0; i < iterations + warmup; i++) {
      if (!wait_fd(ping)) _exit(2);
      signal_fd(pong);
    }
    _exit(0);
  }
  uint64_t* samples = alloc_samples(iterations);
  for (size_t i = 0; i < iterations + warmup; i++) {
    const uint64_t t0 = now_ns();
    signal_fd(ping);
    if (!wait_fd(pong)) die("read(eventfd)");
    if (i >= warmup) samples[i - warmup] = now_ns() - t0;
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("the child");
  printf("{");
  print_samples("roundtrip_ns", samples, iterations);
  printf("}\n");
  return 0;
}
