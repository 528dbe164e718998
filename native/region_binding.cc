#include "region_binding.h"

#include <cmath>
#include <cstring>
#include <string>

#include "addon_data.h"
#include "core/owned_handles.h"
#include "napi_error.h"
#include "worker_tokens.h"

namespace memport {

namespace {

void ReleaseMappingRef(napi_env env, void* /*data*/, void* hint) {
  auto* ref = static_cast<std::shared_ptr<Mapping>*>(hint);
  if (AddonData::Get(env).buffer_refs.erase(ref) != 0) delete ref;
}

struct PendingRegion {
  SharedMemory memory;
  std::shared_ptr<Mapping> mapping;
  std::unique_ptr<ReceivedMappings::Lease> lease;
};

Error NoExternalBuffers() {
  return MakeError("UNSUPPORTED",
                   "this runtime forbids external ArrayBuffers (Electron's V8 sandbox), so views cannot be "
                   "zero-copy; use region.read(offset, length) and region.write(offset, bytes), which copy");
}

// Bounds of a copy request, checked against the mapping.
void CheckRange(Napi::Env env, const std::shared_ptr<Mapping>& mapping, uint64_t offset, uint64_t length) {
  if (mapping == nullptr) throw ToJsError(env, MakeError("CLOSED", "the region is closed"));
  if (offset > mapping->length() || length > mapping->length() - offset) {
    throw ToJsError(env, MakeError("INVALID_ARGUMENT", "range out of bounds"));
  }
}

}  // namespace

uint64_t ReadSize(const Napi::Value& value, uint64_t max, const char* what) {
  Napi::Env env = value.Env();
  if (!value.IsNumber()) {
    throw ToJsError(env, MakeError("INVALID_ARGUMENT", std::string(what) + " must be a number"));
  }
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || std::floor(d) != d || d > static_cast<double>(max)) {
    throw ToJsError(env, MakeError("INVALID_ARGUMENT", std::string(what) + " must be an integer from 0 to " +
                                                           std::to_string(max)));
  }
  return static_cast<uint64_t>(d);
}

Napi::Function NativeRegion::Define(Napi::Env env) {
  return DefineClass(env, "NativeRegion",
                     {
                         InstanceMethod<&NativeRegion::Size>("size"),
                         InstanceMethod<&NativeRegion::ReadOnly>("readOnly"),
                         InstanceMethod<&NativeRegion::Named>("named"),
                         InstanceMethod<&NativeRegion::Closed>("closed"),
                         InstanceMethod<&NativeRegion::WriteSharingAllowed>("writeSharingAllowed"),
                         InstanceMethod<&NativeRegion::MapArrayBuffer>("mapArrayBuffer"),
                         InstanceMethod<&NativeRegion::ToReadOnly>("toReadOnly"),
                         InstanceMethod<&NativeRegion::Close>("close"),
                         InstanceMethod<&NativeRegion::TryWriteEscalation>("tryWriteEscalation"),
                         InstanceMethod<&NativeRegion::DuplicateInto>("duplicateInto"),
                         InstanceMethod<&NativeRegion::OsHandle>("osHandle"),
                         InstanceMethod<&NativeRegion::CopyOut>("copyOut"),
                         InstanceMethod<&NativeRegion::CopyIn>("copyIn"),
                         InstanceMethod<&NativeRegion::ForWorker>("forWorker"),
                     });
}

// Only C++ can pass the External that carries a region (Wrap below);
// constructed from JavaScript, a NativeRegion is inert (closed). Constructors
// must not throw: a throwing ObjectWrap constructor leaves a dangling wrap.
NativeRegion::NativeRegion(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeRegion>(info) {
  if (info.Length() == 1 && info[0].IsExternal()) {
    auto* pending = info[0].As<Napi::External<PendingRegion>>().Data();
    memory_ = std::move(pending->memory);
    mapping_ = std::move(pending->mapping);
    lease_ = std::move(pending->lease);
  }
}

Napi::Object NativeRegion::Wrap(Napi::Env env, SharedMemory memory, std::shared_ptr<Mapping> mapping,
                                std::unique_ptr<ReceivedMappings::Lease> lease) {
  PendingRegion pending{std::move(memory), std::move(mapping), std::move(lease)};
  auto token = Napi::External<PendingRegion>::New(env, &pending);
  return AddonData::Get(env).region_constructor.New({token});
}

Napi::Value NativeRegion::Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(memory_.size()));
}

Napi::Value NativeRegion::ReadOnly(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), memory_.read_only());
}

// named(): opened or created by name here, or received flagged named (then
// the name is not known here).
Napi::Value NativeRegion::Named(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), memory_.named());
}

Napi::Value NativeRegion::Closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), mapping_ == nullptr);
}

Napi::Value NativeRegion::WriteSharingAllowed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), memory_.WriteSharingAllowed());
}

void NativeRegion::ForgetDeadBuffers() {
  std::vector<Napi::Reference<Napi::ArrayBuffer>> live;
  for (auto& ref : buffers_) {
    if (!ref.Value().IsEmpty()) live.push_back(std::move(ref));
  }
  buffers_ = std::move(live);
  prune_at_ = buffers_.size() * 2 + 16;
}

// mapArrayBuffer(offset, length, track = true): an external ArrayBuffer over
// those bytes of the mapping, no copy. Each one holds the mapping alive until
// V8 frees it. Untracked (the region's whole-mapping buffer, which JS holds
// until close and hands to close()), it skips the weak reference close()
// would otherwise need: creating that reference was a measurable part of
// creating a region.
Napi::Value NativeRegion::MapArrayBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (mapping_ == nullptr) throw ToJsError(env, MakeError("CLOSED", "the region is closed"));
  const uint64_t offset = ReadSize(info[0], mapping_->length(), "offset");
  const uint64_t length = ReadSize(info[1], mapping_->length() - offset, "length");
  if (length == 0) throw ToJsError(env, MakeError("INVALID_ARGUMENT", "length must be at least 1"));
  AddonData& data = AddonData::Get(env);
  if (data.external_buffers_forbidden) throw ToJsError(env, NoExternalBuffers());
  if (length > data.max_buffer_length) {
    throw ToJsError(env, MakeError("UNSUPPORTED", "this Node.js cannot create an ArrayBuffer of " +
                                                      std::to_string(length) + " bytes (limit " +
                                                      std::to_string(data.max_buffer_length) + ")"));
  }

  auto* hint = new std::shared_ptr<Mapping>(mapping_);
  data.buffer_refs.insert(hint);
  napi_value buffer = nullptr;
  napi_status status = napi_create_external_arraybuffer(env, mapping_->data() + offset, static_cast<size_t>(length),
                                                        ReleaseMappingRef, hint, &buffer);
  if (status != napi_ok) {
    ReleaseMappingRef(env, nullptr, hint);
    // Electron's V8 sandbox forbids memory that V8 did not allocate.
    if (status == napi_no_external_buffers_allowed) {
      data.external_buffers_forbidden = true;
      throw ToJsError(env, NoExternalBuffers());
    }
    // Anything else pending (e.g. a RangeError for a length over this Node's
    // limit) is turned into a typed error rather than left to escape.
    napi_value pending;
    if (napi_get_and_clear_last_exception(env, &pending) != napi_ok) pending = nullptr;
    throw ToJsError(env, MakeError("UNSUPPORTED", "this Node.js cannot create an ArrayBuffer of " +
                                                      std::to_string(length) + " bytes"));
  }
  const bool track = !(info.Length() > 2 && info[2].IsBoolean() && !info[2].As<Napi::Boolean>().Value());
  if (track) {
    if (buffers_.size() >= prune_at_) ForgetDeadBuffers();
    buffers_.push_back(Napi::Weak(Napi::ArrayBuffer(env, buffer)));
  }
  return Napi::Value(env, buffer);
}

Napi::Value NativeRegion::ToReadOnly(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (mapping_ == nullptr) throw ToJsError(env, MakeError("CLOSED", "the region is closed"));
  if (memory_.named()) {
    // Anyone who knows the name can open it for write, so a read-only twin
    // would promise what the OS does not hold to.
    throw ToJsError(env, MakeError("UNSUPPORTED", "a region opened by name has no read-only twin: anyone who knows "
                                                  "the name may open it for writing; open it with { readOnly: true } "
                                                  "for a read-only handle of your own"));
  }
  SharedMemory twin = ValueOrThrow(env, memory_.DuplicateReadOnly());
  std::shared_ptr<Mapping> mapping = ValueOrThrow(env, twin.Map());
  return Wrap(env, std::move(twin), std::move(mapping));
}

// close(): every ArrayBuffer handed out is detached (views become zero-length
// instead of dangling), the OS handle is closed now, and the mapping goes when
// V8 has released the last detached buffer — unless the received-mappings
// cache keeps it for the next time this memory arrives. Returns true then, so
// JS can schedule the cache's trim. close(untracked) also detaches that
// buffer, if it is one over this whole mapping.
Napi::Value NativeRegion::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (mapping_ && info.Length() > 0 && info[0].IsArrayBuffer()) {
    Napi::ArrayBuffer untracked = info[0].As<Napi::ArrayBuffer>();
    if (!untracked.IsDetached() && untracked.Data() == mapping_->data() && untracked.ByteLength() == mapping_->length()) {
      untracked.Detach();
    }
  }
  for (auto& ref : buffers_) {
    Napi::ArrayBuffer buffer = ref.Value();
    if (!buffer.IsEmpty() && !buffer.IsDetached()) buffer.Detach();
  }
  buffers_.clear();
  const bool kept = lease_ != nullptr;
  if (kept) {
    if (mapping_) mapping_->ParkWhenReleased();
    lease_.reset();
  } else if (mapping_) {
    mapping_->Retire();
  }
  mapping_.reset();
  memory_.Close();
  return Napi::Boolean::New(env, kept);
}

// copyOut(offset, length): a new Buffer (V8-allocated) with those bytes.
Napi::Value NativeRegion::CopyOut(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t offset = ReadSize(info[0], SharedMemory::kMaxSize, "offset");
  const uint64_t length = ReadSize(info[1], AddonData::Get(env).max_buffer_length, "length");
  CheckRange(env, mapping_, offset, length);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(length));
  // Through SharedMemory: a named object may have shrunk since it was mapped.
  ValueOrThrow(env, memory_.ReadAt(*mapping_, offset, out.Data(), length));
  return out;
}

// copyIn(offset, source: Uint8Array): copies the bytes into the region.
Napi::Value NativeRegion::CopyIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t offset = ReadSize(info[0], SharedMemory::kMaxSize, "offset");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw ToJsError(env, MakeError("INVALID_ARGUMENT", "bytes must be a Uint8Array"));
  }
  Napi::Uint8Array source = info[1].As<Napi::Uint8Array>();
  CheckRange(env, mapping_, offset, source.ByteLength());
  ValueOrThrow(env, memory_.WriteAt(*mapping_, offset, source.Data(), source.ByteLength()));
  return env.Undefined();
}

namespace {

std::string ReadName(const Napi::Value& value) {
  if (!value.IsString()) throw ToJsError(value.Env(), MakeError("INVALID_ARGUMENT", "the name must be a string"));
  std::string name = value.As<Napi::String>().Utf8Value();
  // src/region.ts checks names; this only keeps a NUL from cutting one short.
  if (name.empty() || name.find('\0') != std::string::npos) {
    throw ToJsError(value.Env(), MakeError("INVALID_ARGUMENT", "the name must be non-empty and contain no NUL"));
  }
  return name;
}

// openNamedRegion(name, readOnly, size): size 0 = the object's own size.
Napi::Value OpenNamedRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = ReadName(info[0]);
  const bool read_only = info[1].ToBoolean();
  const uint64_t size = ReadSize(info[2], SharedMemory::kMaxSize, "size");
  SharedMemory memory = ValueOrThrow(env, SharedMemory::OpenNamed(name, read_only, size));
  std::shared_ptr<Mapping> mapping = ValueOrThrow(env, memory.Map());
  return NativeRegion::Wrap(env, std::move(memory), std::move(mapping));
}

// createNamedRegion(name, size, readOnly). If mapping fails, the new name is
// removed again (Linux) so a failed create leaves nothing behind.
Napi::Value CreateNamedRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = ReadName(info[0]);
  const uint64_t size = ReadSize(info[1], SharedMemory::kMaxSize, "size");
  const bool read_only = info[2].ToBoolean();
  SharedMemory memory = ValueOrThrow(env, SharedMemory::CreateNamed(name, size, read_only));
  Result<std::shared_ptr<Mapping>> mapping = memory.Map();
  if (!mapping.ok()) {
    memory.Close();
    SharedMemory::UnlinkNamed(name);
    throw ToJsError(env, mapping.error());
  }
  return NativeRegion::Wrap(env, std::move(memory), mapping.take());
}

// unlinkNamedRegion(name): Linux shm_unlink; UNSUPPORTED on Windows.
Napi::Value UnlinkNamedRegion(const Napi::CallbackInfo& info) {
  ValueOrThrow(info.Env(), SharedMemory::UnlinkNamed(ReadName(info[0])));
  return info.Env().Undefined();
}

// regionFromHandle(value, size, readOnly): adopts a Windows handle value or an
// inherited Linux fd after validating it (SharedMemory::FromReceived). A value
// a live region of this process already owns is refused first, with what to
// do instead: owning it twice would let the second close() close whatever the
// number is given to next (FromReceived repeats the check under the lock).
Napi::Value RegionFromHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t value = ReadSize(info[0], 0xFFFFFFFFu, "handle");
  const uint64_t size = ReadSize(info[1], SharedMemory::kMaxSize, "size");
  const bool read_only = info[2].ToBoolean();
  const RawHandle raw = static_cast<RawHandle>(value);
  if (OwnedHandles().Contains(raw)) {
    throw ToJsError(env, MakeError("ALREADY_EXISTS",
                                   "handle " + std::to_string(value) + " already belongs to a live memport region in "
                                   "this process, and one handle must have one owner; use that region, or for a "
                                   "second, independent region over the same memory (another thread's, say) pass "
                                   "region.forWorker() to SharedRegion.fromWorkerToken()"));
  }
  SharedMemory memory = ValueOrThrow(env, SharedMemory::FromReceived(raw, size, read_only));
  std::shared_ptr<Mapping> mapping = ValueOrThrow(env, memory.Map());
  return NativeRegion::Wrap(env, std::move(memory), std::move(mapping));
}

// adoptRegionToken(id, size, readOnly): the region a token stands for, now
// owned by this thread. NOT_FOUND when the token was adopted already, dropped,
// or never existed; INVALID_ARGUMENT when size or mode are not the token's
// (the token is then left pending for its rightful adopter).
Napi::Value AdoptRegionToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t id = ReadSize(info[0], uint64_t{1} << 53, "token id");
  const uint64_t size = ReadSize(info[1], SharedMemory::kMaxSize, "size");
  const bool read_only = info[2].ToBoolean();
  TokenHandle handle = ValueOrThrow(env, AdoptToken(id, "region", [&](const TokenHandle& pending) -> Status {
    const SharedMemory* memory = std::get_if<SharedMemory>(&pending);
    if (memory == nullptr) return MakeError("INVALID_ARGUMENT", "this token is a notifier's; adopt it with Notifier.fromWorkerToken()");
    if (memory->size() != size || memory->read_only() != read_only) {
      return MakeError("INVALID_ARGUMENT", "the token's size or readOnly was changed after region.forWorker() made it; "
                                           "pass the token as it was made");
    }
    return Ok();
  }));
  SharedMemory memory = std::move(std::get<SharedMemory>(handle));
  std::shared_ptr<Mapping> mapping = ValueOrThrow(env, memory.Map());
  return NativeRegion::Wrap(env, std::move(memory), std::move(mapping));
}

// dropRegionToken(id): closes a token's handle (a region's or a notifier's)
// if nobody adopted it; true if one was pending.
Napi::Value DropRegionToken(const Napi::CallbackInfo& info) {
  const uint64_t id = ReadSize(info[0], uint64_t{1} << 53, "token id");
  return Napi::Boolean::New(info.Env(), DropToken(id));
}

}  // namespace

// forWorker(): a duplicate of this region's handle, parked in the token table;
// returns its id.
Napi::Value NativeRegion::ForWorker(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (mapping_ == nullptr) throw ToJsError(env, MakeError("CLOSED", "the region is closed"));
  // Once a read-only twin exists, Linux refuses every new writable mapping of
  // the memory (F_SEAL_FUTURE_WRITE), so a worker could never map the token;
  // Windows is held to the same rule, so code behaves alike on both.
  if (!memory_.read_only() && !memory_.named() && !memory_.WriteSharingAllowed()) {
    throw ToJsError(env, MakeError("ACCESS_DENIED", "this region has a read-only twin, so no new writable handle to "
                                                    "its memory may be made; give the worker twin.forWorker() "
                                                    "(read-only), or make its token before toReadOnly()"));
  }
  SharedMemory copy = ValueOrThrow(env, memory_.DuplicateInProcess());
  return Napi::Number::New(env, static_cast<double>(ParkToken(std::move(copy), &AddonData::Get(env))));
}

void ExportRegionFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("regionFromHandle", Napi::Function::New(env, RegionFromHandle, "regionFromHandle"));
  exports.Set("adoptRegionToken", Napi::Function::New(env, AdoptRegionToken, "adoptRegionToken"));
  exports.Set("dropRegionToken", Napi::Function::New(env, DropRegionToken, "dropRegionToken"));
  // A token nobody adopted before its creator's environment ended (a worker
  // that made one and exited) is closed with it, not kept until process exit.
  const void* creator = &AddonData::Get(env);
  env.AddCleanupHook([creator] { DropTokensOf(creator); });
  exports.Set("openNamedRegion", Napi::Function::New(env, OpenNamedRegion, "openNamedRegion"));
  exports.Set("createNamedRegion", Napi::Function::New(env, CreateNamedRegion, "createNamedRegion"));
  exports.Set("unlinkNamedRegion", Napi::Function::New(env, UnlinkNamedRegion, "unlinkNamedRegion"));
}

// osHandle(): the fd (Linux) or HANDLE value (Windows); -1 once closed.
Napi::Value NativeRegion::OsHandle(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), memory_.valid() ? static_cast<double>(memory_.raw()) : -1);
}

// duplicateInto(pid, readOnly): Windows only; the handle value valid in `pid`.
Napi::Value NativeRegion::DuplicateInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (mapping_ == nullptr) throw ToJsError(env, MakeError("CLOSED", "the region is closed"));
  const uint64_t pid = ReadSize(info[0], 0xFFFFFFFFu, "pid");
  const bool read_only = info[1].ToBoolean() || memory_.read_only();
  return Napi::Number::New(env, ValueOrThrow(env, memory_.DuplicateIntoProcess(static_cast<int64_t>(pid), read_only)));
}

// tryWriteEscalation(): { [path]: succeeded } for every path the OS offers.
Napi::Value NativeRegion::TryWriteEscalation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  for (const auto& attempt : ValueOrThrow(env, memory_.TryWriteEscalation())) {
    out.Set(attempt.path, Napi::Boolean::New(env, attempt.succeeded));
  }
  return out;
}

}  // namespace memport
