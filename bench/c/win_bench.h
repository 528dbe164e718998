// Timing, failure and output helpers shared by the Windows baselines
// (cross-built with mingw-w64, run under Wine). Each program prints one JSON
// object of per-iteration samples in nanoseconds, as the Linux ones do
// (bench_clock.h).
#pragma once

#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char* what) {
  fprintf(stderr, "%s failed: error %lu\n", what, (unsigned long)GetLastError());
  exit(2);
}

// QueryPerformanceCounter, in nanoseconds.
static uint64_t now_ns(void) {
  static LARGE_INTEGER frequency;
  if (frequency.QuadPart == 0) QueryPerformanceFrequency(&frequency);
  LARGE_INTEGER t;
  QueryPerformanceCounter(&t);
  return (uint64_t)((double)t.QuadPart * 1e9 / (double)frequency.QuadPart);
}

// Prints {"roundtrip_ns":[...]} and a newline.
static void print_roundtrips(const uint64_t* samples, size_t n) {
  printf("{\"roundtrip_ns\":[");
  for (size_t i = 0; i < n; i++) printf(i ? ",%llu" : "%llu", (unsigned long long)samples[i]);
  printf("]}\n");
}
