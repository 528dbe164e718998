// Module entry: registers the binding's functions. Argument unpacking and
// result conversion only; see src/native/binding.ts for the exported shape.
#include <napi.h>

#include "addon_data.h"
#include "atomics_binding.h"
#include "channel_binding.h"
#include "core/frame.h"
#include "core/inbox.h"
#include "core/shared_memory.h"
#include "core/transport.h"
#include "napi_error.h"
#include "notifier_binding.h"
#include "region_binding.h"

namespace memport {
namespace {

// Bumped whenever the binding's shape changes (src/native/binding.ts, which
// holds the version it expects: the loader refuses any other).
constexpr int kAbiVersion = 15;

Napi::Number Number(Napi::Env env, uint64_t value) { return Napi::Number::New(env, static_cast<double>(value)); }

// protocol: the wire format's limits, defined once in native/core/frame.h.
// Every value is below 2^53, so a JS number holds it exactly.
Napi::Object ProtocolConstants(Napi::Env env) {
  Napi::Object protocol = Napi::Object::New(env);
  protocol.Set("version", Number(env, kProtocolVersion));
  protocol.Set("maxRegionsPerMessage", Number(env, kMaxRegionsPerFrame));
  protocol.Set("maxDataBytes", Number(env, kMaxDataLength));
  protocol.Set("maxFrameBytes", Number(env, kMaxFrameSize));
  protocol.Set("maxRegionBytes", Number(env, kMaxRegionSize));
  protocol.Set("messageWindow", Number(env, kMessageWindow));
  Napi::Object types = Napi::Object::New(env);
  types.Set("welcome", Number(env, static_cast<uint8_t>(FrameType::kWelcome)));
  types.Set("reject", Number(env, static_cast<uint8_t>(FrameType::kReject)));
  types.Set("message", Number(env, static_cast<uint8_t>(FrameType::kMessage)));
  types.Set("ack", Number(env, static_cast<uint8_t>(FrameType::kAck)));
  types.Set("nack", Number(env, static_cast<uint8_t>(FrameType::kNack)));
  protocol.Set("frameTypes", types);
  return protocol;
}

// defaultLimits: PeerLimits' defaults (native/core/inbox.h), which
// src/limits.ts publishes as DEFAULT_LIMITS.
Napi::Object DefaultLimits(Napi::Env env) {
  const PeerLimits defaults;
  Napi::Object limits = Napi::Object::New(env);
  limits.Set("maxPendingDataBytes", Number(env, defaults.max_pending_data_bytes));
  limits.Set("maxPendingHandles", Number(env, defaults.max_pending_handles));
  limits.Set("maxPendingRegionBytes", Number(env, defaults.max_pending_region_bytes));
  limits.Set("maxOwedControlFrames", Number(env, defaults.max_owed_control_frames));
  limits.Set("fdReserve", Number(env, defaults.fd_reserve));
  limits.Set("acceptNamedRegions", Napi::Boolean::New(env, defaults.accept_named_regions));
  return limits;
}

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

// forbidExternalBuffers(): test hook that makes this environment behave as
// Electron's V8 sandbox does (views refused, copies still work).
Napi::Value ForbidExternalBuffers(const Napi::CallbackInfo& info) {
  AddonData::Get(info.Env()).external_buffers_forbidden = info[0].ToBoolean();
  return info.Env().Undefined();
}

// externalBuffersAllowed(): false once the runtime refused one (or the hook says so).
Napi::Value ExternalBuffersAllowed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !AddonData::Get(info.Env()).external_buffers_forbidden);
}

// receivedMappings(): { entries, bytes, hits, misses } of the cache of
// received regions' mappings (test hook and diagnostics).
Napi::Value ReceivedMappingsStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReceivedMappings::Stats stats = AddonData::Get(env).received_mappings.stats();
  Napi::Object out = Napi::Object::New(env);
  out.Set("entries", Napi::Number::New(env, static_cast<double>(stats.entries)));
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(stats.bytes)));
  out.Set("hits", Napi::Number::New(env, static_cast<double>(stats.hits)));
  out.Set("misses", Napi::Number::New(env, static_cast<double>(stats.misses)));
  return out;
}

// setReceivedMappingLimits(entries, bytes): test hook.
Napi::Value SetReceivedMappingLimits(const Napi::CallbackInfo& info) {
  const uint64_t entries = ReadSize(info[0], 1u << 20, "entries");
  const uint64_t bytes = ReadSize(info[1], SharedMemory::kMaxSize, "bytes");
  AddonData::Get(info.Env()).received_mappings.SetLimits(static_cast<size_t>(entries), bytes);
  return info.Env().Undefined();
}

// trimReceivedMappings(idleMs): retires kept mappings idle that long; true
// while idle ones remain (JS then schedules another trim).
Napi::Value TrimReceivedMappings(const Napi::CallbackInfo& info) {
  const uint64_t idle_ms = ReadSize(info[0], 1u << 30, "idleMs");
  return Napi::Boolean::New(info.Env(), AddonData::Get(info.Env()).received_mappings.Trim(static_cast<int64_t>(idle_ms)));
}

// releaseParkedMappings(): unmaps closed regions' ranges whose grace has run
// out (shared_memory.h, Mapping::Retire); true while more may follow.
Napi::Value ReleaseParkedMappings(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Mapping::ReleaseDue());
}

// parkedMappings(): how many closed regions' ranges are parked now (testing).
Napi::Value ParkedMappings(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Mapping::Parked()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  data->js_thread = NapiJsThread::Create(env);
  if (!data->js_thread) throw ToJsError(env, MakeError("OS", "could not create memport's thread-safe function"));
  env.AddCleanupHook([data] { data->js_thread->Shutdown(); });
  Napi::Function region = NativeRegion::Define(env);
  data->region_constructor = Napi::Persistent(region);
  Napi::Function connection = NativeConnection::Define(env);
  data->connection_constructor = Napi::Persistent(connection);

  exports.Set("NativeRegion", region);
  exports.Set("createRegion", Napi::Function::New(env, CreateRegion, "createRegion"));
  exports.Set("NativeConnection", connection);
  Napi::Function listener = NativeListener::Define(env);
  data->listener_constructor = Napi::Persistent(listener);
  exports.Set("NativeListener", listener);
  exports.Set("listen", Napi::Function::New(env, ListenJs, "listen"));
  exports.Set("connect", Napi::Function::New(env, ConnectJs, "connect"));
  exports.Set("channelAddress", Napi::Function::New(env, ChannelAddressJs, "channelAddress"));
  ExportRegionFunctions(env, exports);
  Napi::Function notifier = NativeNotifier::Define(env);
  data->notifier_constructor = Napi::Persistent(notifier);
  exports.Set("NativeNotifier", notifier);
  ExportNotifierFunctions(env, exports);
  ExportAtomicsFunctions(env, exports);
  exports.Set("forbidExternalBuffers", Napi::Function::New(env, ForbidExternalBuffers, "forbidExternalBuffers"));
  exports.Set("externalBuffersAllowed", Napi::Function::New(env, ExternalBuffersAllowed, "externalBuffersAllowed"));
  exports.Set("countOpenHandles", Napi::Function::New(env, CountOpenHandlesJs, "countOpenHandles"));
  exports.Set("setMaxBufferLength", Napi::Function::New(env, SetMaxBufferLength, "setMaxBufferLength"));
  exports.Set("receivedMappings", Napi::Function::New(env, ReceivedMappingsStats, "receivedMappings"));
  exports.Set("setReceivedMappingLimits", Napi::Function::New(env, SetReceivedMappingLimits, "setReceivedMappingLimits"));
  exports.Set("parkedMappings", Napi::Function::New(env, ParkedMappings, "parkedMappings"));
  exports.Set("releaseParkedMappings", Napi::Function::New(env, ReleaseParkedMappings, "releaseParkedMappings"));
  exports.Set("trimReceivedMappings", Napi::Function::New(env, TrimReceivedMappings, "trimReceivedMappings"));
  exports.Set("parkedGraceMs", Napi::Number::New(env, static_cast<double>(Mapping::kRetiredGraceMs)));
  exports.Set("receivedMappingIdleMs", Napi::Number::New(env, static_cast<double>(ReceivedMappings::kIdleMs)));
  exports.Set("maxRegionSize", Napi::Number::New(env, static_cast<double>(SharedMemory::kMaxSize)));
  exports.Set("protocol", ProtocolConstants(env));
  exports.Set("defaultLimits", DefaultLimits(env));
  // The write id whose completion is never reported (native/core/transport.h).
  exports.Set("unreportedWrite", Number(env, kUnreportedWrite));
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  return exports;
}

}  // namespace
}  // namespace memport

// NODE_API_MODULE needs a plain identifier.
static Napi::Object InitMemport(Napi::Env env, Napi::Object exports) { return memport::Init(env, exports); }
NODE_API_MODULE(memport, InitMemport)
