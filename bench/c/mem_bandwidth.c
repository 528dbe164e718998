// The reference ceiling: how fast this machine reads and copies memory, so
// every throughput in the benchmark can also be read as a fraction of it.
//
//   mem_bandwidth <buffer-bytes> <passes>
//
// The buffer is far larger than the last-level cache (1 GiB by default) and
// faulted in before timing, so these are DRAM figures, not cache or page-fault
// figures. Three sample arrays, one per pass, in nanoseconds:
//   sum_ns     a vectorised sum of 64-bit words (plain sequential read)
//   memchr_ns  memchr for a byte that is not there (what Node's Buffer#indexOf
//              runs, i.e. the routine the Node consumers use to read every byte)
//   memcpy_ns  memcpy of the whole buffer into a second one (bytes copied / time)
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "bench_clock.h"

// Four independent accumulators so the loop is bound by loads, not by one
// dependency chain; -O3 turns it into wide vector loads.
static uint64_t sum_words(const uint64_t* words, size_t count) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= count; i += 4) {
    a += words[i];
    b += words[i + 1];
    c += words[i + 2];
    d += words[i + 3];
  }
  return a + b + c + d;
}

static void* map_filled(size_t size, int value) {
  void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  memset(p, value, size);  // fault every page in now: the timed passes see no page faults
  return p;
}

int main(int argc, char** argv) {
  const size_t size = arg_u64(argc, argv, 1, (size_t)1 << 30);
  const size_t passes = arg_u64(argc, argv, 2, 10);
  uint8_t* src = map_filled(size, 1);
  uint8_t* dst = map_filled(size, 2);

  uint64_t* sum_ns = alloc_samples(passes);
  uint64_t* memchr_ns = alloc_samples(passes);
  uint64_t* memcpy_ns = alloc_samples(passes);
  volatile uint64_t sink = 0;
  for (size_t i = 0; i < passes + 1; i++) {  // pass 0 warms up
    uint64_t t0 = now_ns();
    sink += sum_words((const uint64_t*)src, size / 8);
    uint64_t t1 = now_ns();
    sink += memchr(src, 0xFF, size) != NULL;
    uint64_t t2 = now_ns();
    memcpy(dst, src, size);
    uint64_t t3 = now_ns();
    sink += dst[size / 2];
    if (i == 0) continue;
    sum_ns[i - 1] = t1 - t0;
    memchr_ns[i - 1] = t2 - t1;
    memcpy_ns[i - 1] = t3 - t2;
  }
  printf("{\"bytes\":%zu,", size);
  print_samples("sum_ns", sum_ns, passes);
  printf(",");
  print_samples("memchr_ns", memchr_ns, passes);
  printf(",");
  print_samples("memcpy_ns", memcpy_ns, passes);
  printf("}\n");
  return (int)(sink & 0);
}
