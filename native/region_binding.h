// NativeRegion: the JavaScript face of one SharedMemory handle and its mapping.
// Only unpacks arguments and converts results; policy lives in src/region.ts.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "core/shared_memory.h"
#include "received_mappings.h"

namespace memport {

class NativeRegion : public Napi::ObjectWrap<NativeRegion> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps an already-mapped SharedMemory in a new JS object. A received
  // region's mapping may be shared with the cache (`lease` set).
  static Napi::Object Wrap(Napi::Env env, SharedMemory memory, std::shared_ptr<Mapping> mapping,
                           std::unique_ptr<ReceivedMappings::Lease> lease = nullptr);

  explicit NativeRegion(const Napi::CallbackInfo& info);

  const SharedMemory& memory() const { return memory_; }

 private:
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value ReadOnly(const Napi::CallbackInfo& info);
  Napi::Value Named(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);
  Napi::Value WriteSharingAllowed(const Napi::CallbackInfo& info);
  Napi::Value MapArrayBuffer(const Napi::CallbackInfo& info);
  Napi::Value ToReadOnly(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value TryWriteEscalation(const Napi::CallbackInfo& info);
  Napi::Value DuplicateInto(const Napi::CallbackInfo& info);
  Napi::Value OsHandle(const Napi::CallbackInfo& info);
  Napi::Value CopyOut(const Napi::CallbackInfo& info);
  Napi::Value CopyIn(const Napi::CallbackInfo& info);
  Napi::Value ForWorker(const Napi::CallbackInfo& info);

  void ForgetDeadBuffers();

  SharedMemory memory_;
  std::shared_ptr<Mapping> mapping_;
  // Set when the mapping belongs to the received-mappings cache: close()
  // hands it back instead of retiring it.
  std::unique_ptr<ReceivedMappings::Lease> lease_;
  // Weak references to every ArrayBuffer handed out, so close() can detach them.
  std::vector<Napi::Reference<Napi::ArrayBuffer>> buffers_;
  size_t prune_at_ = 16;
};

// Adds regionFromHandle, openNamedRegion, createNamedRegion, unlinkNamedRegion,
// adoptRegionToken and dropRegionToken to the exports.
void ExportRegionFunctions(Napi::Env env, Napi::Object exports);

// Reads a non-negative integer argument no larger than `max`, or throws INVALID_ARGUMENT.
uint64_t ReadSize(const Napi::Value& value, uint64_t max, const char* what);

}  // namespace memport
