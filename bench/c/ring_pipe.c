// Context for memport's 1 MiB queue stream (section 6): the same data flow in
// C with nothing else. A forked reader and the writer share an anonymous
// MAP_SHARED ring of <slots> slots; the writer memcpy's each record in from
// one source buffer and publishes it by advancing a position; the reader reads
// every byte (memchr for a byte the writer never writes) and releases it by
// advancing its own. Each side spins on the other's position, yielding the
// CPU while it waits (no futex, no syscall per record while both are busy).
// Unlike ring_memcpy, every record crosses from the writer's core to the
// reader's, as a stream's do.
//
//   ring_pipe <record-bytes> <slots> <records-per-pass> <passes>
//
// Prints {"pipe_ns":[...]}: per pass, nanoseconds per record, as the writer
// sees it from its first copy to the reader's release of the pass's last record.
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_clock.h"

struct positions {
  _Alignas(64) atomic_uint_fast64_t written;
  _Alignas(64) atomic_uint_fast64_t released;
  _Alignas(64) atomic_int failed;
};

int main(int argc, char** argv) {
  const size_t record = arg_u64(argc, argv, 1, (size_t)1 << 20);
  const size_t slots = arg_u64(argc, argv, 2, 8);
  const size_t per_pass = arg_u64(argc, argv, 3, 256);
  const size_t passes = arg_u64(argc, argv, 4, 20);
  const size_t total = per_pass * (passes + 1);  // pass 0 warms up
  struct positions* pos = mmap(NULL, sizeof *pos, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint8_t* ring = mmap(NULL, record * slots, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint8_t* src = malloc(record);
  if (pos == MAP_FAILED || ring == MAP_FAILED || src == NULL) die("mmap");
  memset(ring, 1, record * slots);
  memset(src, 1, record);
  atomic_store(&pos->written, 0);
  atomic_store(&pos->released, 0);
  const pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    for (uint64_t seq = 0; seq < total; seq++) {
      while (atomic_load_explicit(&pos->written, memory_order_acquire) <= seq) sched_yield();
      if (memchr(ring + (seq % slots) * record, 0xFF, record) != NULL) atomic_store(&pos->failed, 1);
      atomic_store_explicit(&pos->released, seq + 1, memory_order_release);
    }
    _exit(0);
  }
  uint64_t* samples = alloc_samples(passes);
  for (size_t pass = 0; pass < passes + 1; pass++) {
    const uint64_t t0 = now_ns();
    for (size_t i = 0; i < per_pass; i++) {
      const uint64_t seq = pass * per_pass + i;
      while (seq - atomic_load_explicit(&pos->released, memory_order_acquire) >= slots) sched_yield();
      memcpy(ring + (seq % slots) * record, src, record);
      atomic_store_explicit(&pos->written, seq + 1, memory_order_release);
    }
    while (atomic_load_explicit(&pos->released, memory_order_acquire) < (pass + 1) * per_pass) sched_yield();
    if (pass > 0) samples[pass - 1] = (now_ns() - t0) / per_pass;
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || atomic_load(&pos->failed)) die("the reader");
  printf("{");
  print_samples("pipe_ns", samples, passes);
  printf("}\n");
  return 0;
}
