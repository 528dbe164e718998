// Timing and output helpers shared by the Linux baselines. Every program prints
// one JSON object on stdout: arrays of per-iteration samples in nanoseconds,
// which bench/run.mjs turns into median/p99 the same way as for Node.
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// CLOCK_MONOTONIC: the clock Node's process.hrtime uses, so both sides of a
// comparison are read from the same source.
static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void die(const char* what) {
  perror(what);
  exit(2);
}

static inline uint64_t arg_u64(int argc, char** argv, int i, uint64_t fallback) {
  return i < argc ? strtoull(argv[i], NULL, 0) : fallback;
}

// Prints `"name":[a,b,...]` (no surrounding braces; the caller adds them).
static inline void print_samples(const char* name, const uint64_t* samples, size_t n) {
  printf("\"%s\":[", name);
  for (size_t i = 0; i < n; i++) printf(i ? ",%llu" : "%llu", (unsigned long long)samples[i]);
  printf("]");
}

static inline uint64_t* alloc_samples(size_t n) {
  uint64_t* s = calloc(n ? n : 1, sizeof *s);
  if (s == NULL) die("calloc");
  return s;
}
