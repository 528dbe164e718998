// Baselines for what memport does with one region inside one process.
//
//   memfd_lifecycle create <region-bytes> <iterations> <warmup>
//     memfd_create + ftruncate + mmap: the raw cost of "create + first view".
//     Teardown (munmap + close) happens outside the timed part, as in the Node
//     benchmark where region.close() is not timed.
//
//   memfd_lifecycle map-read <region-bytes> <iterations>
//     Reading every byte of a filled memfd (memchr for a byte that is not
//     there: the same libc routine Node's Buffer#indexOf(number) runs):
//       fresh_ns     mmap + read all + munmap each time (what a receiver that
//                    maps every received region afresh pays, page faults included)
//       populate_ns  the same with MAP_POPULATE (page tables filled in one go)
//       mapped_ns    read all through one mapping kept across iterations
//
// Prints one JSON object of sample arrays in nanoseconds.
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_clock.h"

static const int kAbsentByte = 0xFF;

static void create(size_t size, size_t iterations, size_t warmup) {
  uint64_t* samples = alloc_samples(iterations);
  for (size_t i = 0; i < warmup + iterations; i++) {
    const uint64_t t0 = now_ns();
    int fd = memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) die("memfd_create");
    if (ftruncate(fd, (off_t)size) != 0) die("ftruncate");
    void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) die("mmap");
    const uint64_t t1 = now_ns();
    munmap(p, size);
    close(fd);
    if (i >= warmup) samples[i - warmup] = t1 - t0;
  }
  printf("{");
  print_samples("create_ns", samples, iterations);
  printf("}\n");
}

static int read_all(const uint8_t* p, size_t size) {
  return memchr(p, kAbsentByte, size) != NULL;
}

static uint64_t time_fresh(int fd, size_t size, int flags) {
  const uint64_t t0 = now_ns();
  const uint8_t* p = mmap(NULL, size, PROT_READ, MAP_SHARED | flags, fd, 0);
  if (p == MAP_FAILED) die("mmap");
  if (read_all(p, size)) die("unexpected byte");
  munmap((void*)p, size);
  return now_ns() - t0;
}

static void map_read(size_t size, size_t iterations) {
  int fd = memfd_create("bench", MFD_CLOEXEC);
  if (fd < 0) die("memfd_create");
  if (ftruncate(fd, (off_t)size) != 0) die("ftruncate");
  uint8_t* mapped = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapped == MAP_FAILED) die("mmap");
  memset(mapped, 1, size);

  uint64_t* fresh = alloc_samples(iterations);
  uint64_t* populate = alloc_samples(iterations);
  uint64_t* kept = alloc_samples(iterations);
  // Interleaved so that drift (thermal, other load) hits all three alike.
  for (size_t i = 0; i < iterations + 1; i++) {
    const uint64_t f = time_fresh(fd, size, 0);
    const uint64_t fp = time_fresh(fd, size, MAP_POPULATE);
    const uint64_t t0 = now_ns();
    if (read_all(mapped, size)) die("unexpected byte");
    const uint64_t m = now_ns() - t0;
    if (i == 0) continue;  // warm-up
    fresh[i - 1] = f;
    populate[i - 1] = fp;
    kept[i - 1] = m;
  }
  printf("{");
  print_samples("fresh_ns", fresh, iterations);
  printf(",");
  print_samples("populate_ns", populate, iterations);
  printf(",");
  print_samples("mapped_ns", kept, iterations);
  printf("}\n");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: memfd_lifecycle create|map-read <bytes> <iterations> [warmup]\n");
    return 2;
  }
  const size_t size = arg_u64(argc, argv, 2, 1 << 20);
  const size_t iterations = arg_u64(argc, argv, 3, 1000);
  if (strcmp(argv[1], "create") == 0) {
    create(size, iterations, arg_u64(argc, argv, 4, 100));
  } else if (strcmp(argv[1], "map-read") == 0) {
    map_read(size, iterations);
  } else {
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
  }
  return 0;
}
