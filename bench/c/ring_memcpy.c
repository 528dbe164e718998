// The memcpy baseline for memport's 1 MiB queue stream (section 6): the copy
// the stream's writer makes (writer.write(bytes): one record copied from the
// same source buffer into the next slot of a ring), done by C in one process
// with nothing else, so "the stream's GB/s as a fraction of memcpy bandwidth"
// compares like with like.
//
//   ring_memcpy <record-bytes> <slots> <dram-slots> <records-per-pass> <passes>
//
// Two series, one sample per pass, in nanoseconds PER RECORD:
//   ring_ns  memcpy into a ring of <slots> slots: the stream's own footprint
//            (8 x 1 MiB fits this machine's last-level cache, as the stream's does)
//   dram_ns  the same into a ring of <dram-slots> slots, far larger than the
//            last-level cache: memcpy bandwidth to and from DRAM
// Both rings are faulted in before timing; pass 0 of each warms up.
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "bench_clock.h"

static uint8_t* map_filled(size_t size, int value) {
  void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  memset(p, value, size);  // every page faulted in now
  return p;
}

static volatile uint64_t sink;

static void run(const uint8_t* src, size_t record, uint8_t* ring, size_t slots, size_t per_pass, uint64_t* samples, size_t passes) {
  size_t next = 0;
  for (size_t pass = 0; pass < passes + 1; pass++) {  // pass 0 warms up
    const uint64_t t0 = now_ns();
    for (size_t i = 0; i < per_pass; i++) {
      memcpy(ring + next * record, src, record);
      next = next + 1 == slots ? 0 : next + 1;
    }
    const uint64_t t1 = now_ns();
    sink += ring[(next * record) / 2];
    if (pass > 0) samples[pass - 1] = (t1 - t0) / per_pass;
  }
}

int main(int argc, char** argv) {
  const size_t record = arg_u64(argc, argv, 1, (size_t)1 << 20);
  const size_t slots = arg_u64(argc, argv, 2, 8);
  const size_t dram_slots = arg_u64(argc, argv, 3, 1024);
  const size_t per_pass = arg_u64(argc, argv, 4, 256);
  const size_t passes = arg_u64(argc, argv, 5, 20);
  uint8_t* src = map_filled(record, 1);
  uint8_t* ring = map_filled(record * slots, 2);
  uint64_t* ring_ns = alloc_samples(passes);
  run(src, record, ring, slots, per_pass, ring_ns, passes);
  munmap(ring, record * slots);
  uint8_t* dram = map_filled(record * dram_slots, 2);
  uint64_t* dram_ns = alloc_samples(passes);
  run(src, record, dram, dram_slots, per_pass, dram_ns, passes);
  printf("{\"record_bytes\":%zu,\"slots\":%zu,\"dram_slots\":%zu,", record, slots, dram_slots);
  print_samples("ring_ns", ring_ns, passes);
  printf(",");
  print_samples("dram_ns", dram_ns, passes);
  printf("}\n");
  return (int)(sink & 0);
}
