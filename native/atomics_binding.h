// Atomic operations on aligned 32-bit words inside a region's mapping, for
// the stream ring (src/stream/): JS Atomics work only on SharedArrayBuffers,
// and a region's views are external ArrayBuffers, while plain JS stores have
// no ordering guarantee on arm64. Every operation is sequentially consistent
// (so also acquire for loads, release for stores), which the ring's
// sleep/wake handshake needs (a Dekker-style store-then-load on both sides).
#pragma once

#include <napi.h>

namespace memport {

// Adds atomicLoad32, atomicStore32, atomicCompareExchange32 and atomicAdd32
// to the exports. Each takes (view: Uint8Array, byteOffset, ...) and throws
// INVALID_ARGUMENT for anything but a Uint8Array, an offset that is not a
// whole number, a word that does not lie wholly inside the view (a detached
// view has none), or a word address that is not a multiple of 4.
void ExportAtomicsFunctions(Napi::Env env, Napi::Object exports);

}  // namespace memport
