// Per-environment state of the addon (worker threads each get their own).
#pragma once

#include <napi.h>

#include <memory>
#include <unordered_set>

#include "core/shared_memory.h"
#include "js_thread.h"
#include "received_mappings.h"

namespace memport {

struct AddonData {
  Napi::FunctionReference region_constructor;
  Napi::FunctionReference connection_constructor;
  Napi::FunctionReference listener_constructor;
  Napi::FunctionReference notifier_constructor;
  std::shared_ptr<NapiJsThread> js_thread;
  // Mapping references held by live external ArrayBuffers. Node calls an
  // external buffer's finalizer itself when creating the buffer fails, so the
  // creator cannot know whether to free it; this set makes the release
  // exactly-once either way (finalizers run on the JS thread: no lock).
  std::unordered_set<std::shared_ptr<Mapping>*> buffer_refs;
  // Largest external ArrayBuffer this runtime accepts (buffer.constants.MAX_LENGTH),
  // told by the loader; until then, Node 20's 4 GiB.
  uint64_t max_buffer_length = uint64_t{1} << 32;
  // Set once the runtime refuses an external ArrayBuffer (Electron's V8
  // sandbox), or by the test hook that simulates it.
  bool external_buffers_forbidden = false;
  // Mappings of received regions kept for when the same memory comes again.
  ReceivedMappings received_mappings;

  static AddonData& Get(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

}  // namespace memport
