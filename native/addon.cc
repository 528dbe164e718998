// Module entry: registers the binding's functions. Argument unpacking and
// result conversion only; see src/native/binding.ts for the exported shape.
#include <napi.h>

#include "addon_data.h"
#include "core/shared_memory.h"
#include "napi_error.h"
#include "region_binding.h"

namespace memport {
namespace {

// createRegion(size): a new writable region, already mapped.
Napi::Value CreateRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t size = ReadSize(info[0], SharedMemory::kMaxSize, "size");
  SharedMemory memory = ValueOrThrow(env, SharedMemory::Create(size));
  std::shared_ptr<Mapping> mapping = ValueOrThrow(env, memory.Map());
  return NativeRegion::Wrap(env, std::move(memory), std::move(mapping));
}

// countOpenHandles(): { value, exact } — see HandleCensus.
Napi::Value CountOpenHandlesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HandleCensus census = ValueOrThrow(env, CountOpenHandles());
  Napi::Object out = Napi::Object::New(env);
  out.Set("value", Napi::Number::New(env, static_cast<double>(census.value)));
  out.Set("exact", Napi::Boolean::New(env, census.exact));
  return out;
}

// setMaxBufferLength(n): the loader reports buffer.constants.MAX_LENGTH.
Napi::Value SetMaxBufferLength(const Napi::CallbackInfo& info) {
  AddonData::Get(info.Env()).max_buffer_length = ReadSize(info[0], SharedMemory::kMaxSize, "length");
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  Napi::Function region = NativeRegion::Define(env);
  data->region_constructor = Napi::Persistent(region);

  exports.Set("NativeRegion", region);
  exports.Set("createRegion", Napi::Function::New(env, CreateRegion, "createRegion"));
  exports.Set("countOpenHandles", Napi::Function::New(env, CountOpenHandlesJs, "countOpenHandles"));
  exports.Set("setMaxBufferLength", Napi::Function::New(env, SetMaxBufferLength, "setMaxBufferLength"));
  exports.Set("maxRegionSize", Napi::Number::New(env, static_cast<double>(SharedMemory::kMaxSize)));
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace
}  // namespace memport

// NODE_API_MODULE needs a plain identifier.
static Napi::Object InitMemport(Napi::Env env, Napi::Object exports) { return memport::Init(env, exports); }
NODE_API_MODULE(memport, InitMemport)
