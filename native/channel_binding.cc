// The JavaScript face of the transport: NativeListener, NativeConnection and
// connect(). Unpacks arguments and converts results; sequencing,
// acknowledgements, JSON and policy live in src/channel.ts.
#include "channel_binding.h"

#include <string>

#include "addon_data.h"
#include "napi_error.h"
#include "notifier_binding.h"
#include "region_binding.h"

namespace memport {

namespace {

Napi::Value WrapInbound(Napi::Env env, InboundMessage message);

Napi::Value ErrorOrUndefined(Napi::Env env, const Error* error) {
  return error == nullptr ? env.Undefined() : ToJsError(env, *error).Value();
}

Napi::Object PeerToJs(Napi::Env env, const PeerIdentity& peer) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, static_cast<double>(peer.pid)));
  if (peer.uid >= 0) out.Set("uid", Napi::Number::New(env, static_cast<double>(peer.uid)));
  if (peer.gid >= 0) out.Set("gid", Napi::Number::New(env, static_cast<double>(peer.gid)));
  return out;
}

// References to JS functions may only be released on the JS thread while the
// environment lives. An observer can be destroyed on an I/O thread (it is
// shared with the backend), so its references are parked here and released
// through JsThread::Post, or abandoned when the environment is gone.
struct JsCallbacks {
  std::vector<Napi::FunctionReference> functions;
  Napi::ObjectReference owner;  // keeps the wrapping JS object alive while open
};

void ReleaseOnJsThread(const std::shared_ptr<NapiJsThread>& js, std::unique_ptr<JsCallbacks> callbacks) {
  if (!callbacks) return;
  if (!js->alive()) {
    for (auto& f : callbacks->functions) f.SuppressDestruct();
    callbacks->owner.SuppressDestruct();
    callbacks.release();  // the environment is gone; nothing can be released safely
    return;
  }
  JsCallbacks* raw = callbacks.release();
  js->Post([raw] { delete raw; });
}

// -----------------------------------------------------------------------------

class ConnectionObserverImpl : public ConnectionObserver {
 public:
  ConnectionObserverImpl(Napi::Env env, std::shared_ptr<NapiJsThread> js, std::unique_ptr<JsCallbacks> callbacks)
      : env_(env), js_(std::move(js)), callbacks_(std::move(callbacks)) {}
  ~ConnectionObserverImpl() override { ReleaseOnJsThread(js_, std::move(callbacks_)); }

  // onFrame(type, seq, message | undefined, data | undefined, refusal | undefined).
  // A MESSAGE arrives as an opaque handle (`message`): its regions validated
  // but not mapped, its data raw bytes held here, both counted against the
  // connection's budget until JS takes it (takeMessage) or releases it.
  // A MESSAGE refused for a bound comes as `refusal` (JS answers NACK).
  void OnFrame(InboundMessage message) override {
    if (!callbacks_ || closed_) return;
    Napi::HandleScope scope(env_);
    Napi::Value held = env_.Undefined();
    Napi::Value data = env_.Undefined();
    Napi::Value refusal = env_.Undefined();
    if (message.frame.type == FrameType::kMessage) {
      if (!message.refused.code.empty()) {
        refusal = ToJsError(env_, message.refused).Value();
      } else {
        held = WrapInbound(env_, std::move(message));
      }
    } else if (!message.frame.data.empty()) {
      data = Napi::Buffer<uint8_t>::Copy(env_, message.frame.data.data(), message.frame.data.size());
    }
    Call(0, {Napi::Number::New(env_, static_cast<uint8_t>(message.frame.type)),
             Napi::Number::New(env_, message.frame.seq), held, data, refusal});
  }

  void OnClosed(const Error& error) override {
    if (!callbacks_ || closed_) return;
    closed_ = true;
    Napi::HandleScope scope(env_);
    Call(1, {ToJsError(env_, error).Value()});
    if (held_ && js_->alive()) js_->Release();
    held_ = false;
    // Nothing is called after OnClosed: drop the references to the JS side
    // (we are on the JS thread) so the connection can be collected even if a
    // backend still holds this observer.
    callbacks_.reset();
  }

  void OnWriteDone(uint64_t write_id, const Error* error) override {
    if (!callbacks_) return;
    Napi::HandleScope scope(env_);
    Call(2, {Napi::Number::New(env_, static_cast<double>(write_id)), ErrorOrUndefined(env_, error)});
  }

 private:
  void Call(size_t index, std::initializer_list<napi_value> args) {
    if (!js_->alive()) return;
    Napi::FunctionReference& f = callbacks_->functions[index];
    if (f.IsEmpty()) return;
    // src/channel.ts never lets an exception escape these callbacks; if one
    // does, Node reports it as uncaught, as for any event handler.
    f.Call(args);
  }

  Napi::Env env_;
  std::shared_ptr<NapiJsThread> js_;
  std::unique_ptr<JsCallbacks> callbacks_;
  bool closed_ = false;
  bool held_ = false;  // this open connection keeps the event loop alive (JS thread only)

 public:
  // JS thread: whether this open connection keeps the event loop alive
  // (conn.ref()/unref()). Nothing to do once closed: OnClosed let go.
  void SetHeld(bool held) {
    if (closed_ || held == held_ || !js_->alive()) return;
    held_ = held;
    if (held) {
      js_->Hold();
    } else {
      js_->Release();
    }
  }
};

class ListenerObserverImpl : public ListenerObserver {
 public:
  ListenerObserverImpl(Napi::Env env, std::shared_ptr<NapiJsThread> js, std::unique_ptr<JsCallbacks> callbacks)
      : env_(env), js_(std::move(js)), callbacks_(std::move(callbacks)) {}
  ~ListenerObserverImpl() override { ReleaseOnJsThread(js_, std::move(callbacks_)); }

  void OnConnection(std::unique_ptr<Connection> connection) override {
    if (!callbacks_ || !js_->alive() || closed) return;  // dropping `connection` closes it
    Napi::HandleScope scope(env_);
    Napi::Object wrapped = NativeConnection::Wrap(env_, std::move(connection));
    callbacks_->functions[0].Call({wrapped});
  }

  void OnListenerError(const Error& error) override {
    if (!callbacks_ || !js_->alive() || closed) return;
    Napi::HandleScope scope(env_);
    callbacks_->functions[1].Call({ToJsError(env_, error).Value()});
  }

  bool closed = false;

 private:
  Napi::Env env_;
  std::shared_ptr<NapiJsThread> js_;
  std::unique_ptr<JsCallbacks> callbacks_;
};

std::unique_ptr<JsCallbacks> TakeCallbacks(const Napi::CallbackInfo& info, size_t first, size_t count) {
  auto callbacks = std::make_unique<JsCallbacks>();
  for (size_t i = first; i < first + count; ++i) {
    if (!info[i].IsFunction()) {
      throw ToJsError(info.Env(), MakeError("INVALID_ARGUMENT", "expected a callback function"));
    }
    callbacks->functions.push_back(Napi::Persistent(info[i].As<Napi::Function>()));
  }
  return callbacks;
}

// Tags the External that carries an InboundMessage, so no other External can
// pose as one.
constexpr napi_type_tag kInboundTag = {0x6d656d706f72742dULL, 0x696e626f756e6431ULL};

Napi::Value WrapInbound(Napi::Env env, InboundMessage message) {
  auto external = Napi::External<InboundMessage>::New(env, new InboundMessage(std::move(message)),
                                                      [](Napi::Env, InboundMessage* held) { delete held; });
  external.TypeTag(&kInboundTag);
  return external;
}

InboundMessage& UnwrapInbound(const Napi::Value& value) {
  if (!value.IsExternal() || !value.As<Napi::External<InboundMessage>>().CheckTypeTag(&kInboundTag)) {
    throw ToJsError(value.Env(), MakeError("INVALID_ARGUMENT", "not a received message"));
  }
  return *value.As<Napi::External<InboundMessage>>().Data();
}

// Empties a held message now (its handles closed unmapped, its data freed,
// its budget given back) rather than when the collector gets to it.
void ReleaseInbound(InboundMessage& message) {
  message.regions.clear();
  message.notifiers.clear();
  std::vector<uint8_t>().swap(message.frame.data);
  message.charge.reset();
}

PeerLimits ReadLimits(const Napi::Value& value) {
  PeerLimits limits;
  if (value.IsUndefined()) return limits;
  if (!value.IsObject()) throw ToJsError(value.Env(), MakeError("INVALID_ARGUMENT", "limits must be an object"));
  Napi::Object object = value.As<Napi::Object>();
  constexpr uint64_t kMax = uint64_t{1} << 53;
  limits.max_pending_data_bytes = ReadSize(object.Get("maxPendingDataBytes"), kMax, "maxPendingDataBytes");
  limits.max_pending_handles = ReadSize(object.Get("maxPendingHandles"), kMax, "maxPendingHandles");
  limits.max_pending_region_bytes = ReadSize(object.Get("maxPendingRegionBytes"), kMax, "maxPendingRegionBytes");
  limits.max_owed_control_frames = ReadSize(object.Get("maxOwedControlFrames"), kMax, "maxOwedControlFrames");
  limits.fd_reserve = ReadSize(object.Get("fdReserve"), kMax, "fdReserve");
  // Optional, so a caller that never heard of it keeps the safe default.
  Napi::Value named = object.Get("acceptNamedRegions");
  if (!named.IsUndefined() && !named.IsBoolean()) {
    throw ToJsError(value.Env(), MakeError("INVALID_ARGUMENT", "acceptNamedRegions must be a boolean"));
  }
  limits.accept_named_regions = named.IsBoolean() && named.As<Napi::Boolean>().Value();
  return limits;
}

std::string ReadName(const Napi::Value& value) {
  if (!value.IsString()) throw ToJsError(value.Env(), MakeError("INVALID_ARGUMENT", "the channel name must be a string"));
  return value.As<Napi::String>().Utf8Value();
}

}  // namespace

// =============================================================================
// NativeConnection

Napi::Function NativeConnection::Define(Napi::Env env) {
  return DefineClass(env, "NativeConnection",
                     {
                         InstanceMethod<&NativeConnection::Peer>("peer"),
                         InstanceMethod<&NativeConnection::PeerRunning>("peerRunning"),
                         InstanceMethod<&NativeConnection::Admit>("admit"),
                         InstanceMethod<&NativeConnection::Start>("start"),
                         InstanceMethod<&NativeConnection::TakeMessage>("takeMessage"),
                         InstanceMethod<&NativeConnection::ReleaseMessage>("releaseMessage"),
                         InstanceMethod<&NativeConnection::Write>("write"),
                         InstanceMethod<&NativeConnection::Close>("close"),
                         InstanceMethod<&NativeConnection::SetRef>("setRef"),
                     });
}

// Constructors must not throw (a throwing ObjectWrap constructor leaves a
// dangling wrap behind). Constructed from JavaScript, the object is inert:
// only C++ can pass the External that carries a real connection.
NativeConnection::NativeConnection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeConnection>(info) {
  if (info.Length() == 1 && info[0].IsExternal()) {
    connection_ = std::move(*info[0].As<Napi::External<std::unique_ptr<Connection>>>().Data());
  }
}

NativeConnection::~NativeConnection() {
  if (connection_) connection_->Close();
}

Napi::Object NativeConnection::Wrap(Napi::Env env, std::unique_ptr<Connection> connection) {
  auto token = Napi::External<std::unique_ptr<Connection>>::New(env, &connection);
  return AddonData::Get(env).connection_constructor.New({token});
}

Connection& NativeConnection::connection(Napi::Env env) {
  if (!connection_) throw ToJsError(env, MakeError("CLOSED", "not a live connection"));
  return *connection_;
}

Napi::Value NativeConnection::Peer(const Napi::CallbackInfo& info) {
  return PeerToJs(info.Env(), connection(info.Env()).peer());
}

// peerRunning(): false once the kernel says the peer process has exited.
Napi::Value NativeConnection::PeerRunning(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), connection_ && connection_->PeerRunning());
}

// admit(): throws PROTOCOL if the client sent anything before WELCOME
// (transport.h: Connection::Admit). Reads nothing.
Napi::Value NativeConnection::Admit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status admitted = connection(env).Admit();
  if (!admitted.ok()) throw ToJsError(env, admitted.error());
  return env.Undefined();
}

// start(onFrame, onClosed, onWriteDone, limits?): begins reading. The JS
// object stays alive (and keeps the event loop alive) until the connection closes.
Napi::Value NativeConnection::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (started_) throw ToJsError(env, MakeError("INVALID_ARGUMENT", "already started"));
  const PeerLimits limits = ReadLimits(info[3]);
  std::unique_ptr<JsCallbacks> callbacks = TakeCallbacks(info, 0, 3);
  callbacks->owner = Napi::Persistent(Value());
  started_ = true;
  Connection& live = connection(env);
  std::shared_ptr<NapiJsThread> js = AddonData::Get(env).js_thread;
  auto observer = std::make_shared<ConnectionObserverImpl>(env, js, std::move(callbacks));
  observer->SetHeld(ref_);
  observer_ = observer;
  live.Start(observer, limits);
  return env.Undefined();
}

// setRef(ref): whether this connection keeps the event loop alive while open
// (conn.ref()/unref(), as net.Socket has).
Napi::Value NativeConnection::SetRef(const Napi::CallbackInfo& info) {
  ref_ = info[0].ToBoolean().Value();
  if (observer_) static_cast<ConnectionObserverImpl*>(observer_.get())->SetHeld(ref_);
  return info.Env().Undefined();
}

// takeMessage(message) -> [regions: NativeRegion[], data: Uint8Array | undefined,
// notifiers: NativeNotifier[], streams: number] (the last 2 * streams regions
// and notifiers are the members of stream readers, frame.h kDescriptorStream):
// the application receives it, so its regions are mapped now (memory received
// before may still be mapped: ReceivedMappings) and its budget is given back.
// If one region cannot be mapped, every region is released and the error
// thrown (JS answers NACK). Either way the message is empty afterwards.
Napi::Value NativeConnection::TakeMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  InboundMessage& message = UnwrapInbound(info[0]);
  ReceivedMappings& cache = AddonData::Get(env).received_mappings;
  std::vector<ReceivedMappings::Acquired> mappings;
  for (SharedMemory& memory : message.regions) {
    Result<ReceivedMappings::Acquired> mapping = cache.Acquire(memory);
    if (!mapping.ok()) {
      ReleaseInbound(message);
      throw ToJsError(env, mapping.error());
    }
    mappings.push_back(mapping.take());
  }
  Napi::Array regions = Napi::Array::New(env, message.regions.size());
  for (size_t i = 0; i < message.regions.size(); ++i) {
    regions.Set(static_cast<uint32_t>(i), NativeRegion::Wrap(env, std::move(message.regions[i]),
                                                            std::move(mappings[i].mapping),
                                                            std::move(mappings[i].lease)));
  }
  Napi::Value data = env.Undefined();
  if (!message.frame.data.empty()) {
    data = Napi::Buffer<uint8_t>::Copy(env, message.frame.data.data(), message.frame.data.size());
  }
  Napi::Array notifiers = Napi::Array::New(env, message.notifiers.size());
  for (size_t i = 0; i < message.notifiers.size(); ++i) {
    notifiers.Set(static_cast<uint32_t>(i), NativeNotifier::Wrap(env, std::move(message.notifiers[i])));
  }
  const uint32_t streams = message.frame.streams;
  ReleaseInbound(message);
  Napi::Array out = Napi::Array::New(env, 4);
  out.Set(0u, regions);
  out.Set(1u, data);
  out.Set(2u, notifiers);
  out.Set(3u, Napi::Number::New(env, streams));
  return out;
}

// releaseMessage(message): drops a message nobody will receive.
Napi::Value NativeConnection::ReleaseMessage(const Napi::CallbackInfo& info) {
  ReleaseInbound(UnwrapInbound(info[0]));
  return info.Env().Undefined();
}

// write(id, type, seq, regions: NativeRegion[], data?: Uint8Array,
// notifiers?: NativeNotifier[], streams?: number: the last 2 * streams regions
// and notifiers are stream readers' members). Throws a
// native error (nothing sent) on immediate failure; returns true when the
// frame was handed to the OS already (no onWriteDone follows for `id`).
Napi::Value NativeConnection::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t id = ReadSize(info[0], uint64_t{1} << 53, "write id");
  const uint64_t type = ReadSize(info[1], 255, "frame type");
  const uint64_t seq = ReadSize(info[2], 0xFFFFFFFFu, "seq");
  if (!info[3].IsArray()) throw ToJsError(env, MakeError("INVALID_ARGUMENT", "regions must be an array"));
  Napi::Array list = info[3].As<Napi::Array>();
  if (list.Length() > kMaxRegionsPerFrame) {
    throw ToJsError(env, MakeError("INVALID_ARGUMENT", "at most " + std::to_string(kMaxRegionsPerFrame) +
                                                           " regions per message"));
  }
  std::vector<const SharedMemory*> regions;
  const Napi::FunctionReference& region_class = AddonData::Get(env).region_constructor;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    if (!item.IsObject() || !item.As<Napi::Object>().InstanceOf(region_class.Value())) {
      throw ToJsError(env, MakeError("INVALID_ARGUMENT", "regions must be SharedRegion objects"));
    }
    const SharedMemory& memory = NativeRegion::Unwrap(item.As<Napi::Object>())->memory();
    if (!memory.valid()) throw ToJsError(env, MakeError("CLOSED", "region " + std::to_string(i) + " is closed"));
    if (!memory.read_only() && !memory.WriteSharingAllowed()) {
      throw ToJsError(env, MakeError("ACCESS_DENIED", "region " + std::to_string(i) +
                                                          " has a read-only twin, so no writable handle to it may be "
                                                          "given out; send the read-only twin instead"));
    }
    regions.push_back(&memory);
  }
  Frame frame;
  frame.type = static_cast<FrameType>(type);
  frame.seq = static_cast<uint32_t>(seq);
  if (info.Length() > 4 && info[4].IsTypedArray()) {
    Napi::Uint8Array data = info[4].As<Napi::Uint8Array>();
    frame.data.assign(data.Data(), data.Data() + data.ByteLength());
  }
  std::vector<const Notifier*> notifiers;
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    if (!info[5].IsArray()) throw ToJsError(env, MakeError("INVALID_ARGUMENT", "notifiers must be an array"));
    Napi::Array given = info[5].As<Napi::Array>();
    if (list.Length() + given.Length() > kMaxRegionsPerFrame) {
      throw ToJsError(env, MakeError("INVALID_ARGUMENT", "at most " + std::to_string(kMaxRegionsPerFrame) +
                                                             " handles (regions and notifiers) per message"));
    }
    for (uint32_t i = 0; i < given.Length(); ++i) {
      const Notifier* notifier = NativeNotifier::NotifierOf(env, given.Get(i));
      if (notifier == nullptr) throw ToJsError(env, MakeError("INVALID_ARGUMENT", "notifiers must be Notifier objects"));
      if (!notifier->valid()) throw ToJsError(env, MakeError("CLOSED", "notifier " + std::to_string(i) + " is closed"));
      notifiers.push_back(notifier);
    }
  }
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    frame.streams = static_cast<uint16_t>(ReadSize(info[6], kMaxRegionsPerFrame / kStreamRegions, "streams"));
  }
  bool completed = false;
  Status written = connection(env).WriteInline(id, std::move(frame), regions, &completed, notifiers);
  if (!written.ok()) throw ToJsError(env, written.error());
  return Napi::Boolean::New(env, completed);
}

Napi::Value NativeConnection::Close(const Napi::CallbackInfo& info) {
  if (connection_) connection_->Close();
  return info.Env().Undefined();
}

// =============================================================================
// NativeListener

Napi::Function NativeListener::Define(Napi::Env env) {
  return DefineClass(env, "NativeListener",
                     {
                         InstanceMethod<&NativeListener::Address>("address"),
                         InstanceMethod<&NativeListener::Close>("close"),
                         InstanceMethod<&NativeListener::SetRef>("setRef"),
                     });
}

struct PendingListener {
  std::shared_ptr<ListenerObserver> observer;
  std::unique_ptr<Listener> listener;
};

// Inert when constructed from JavaScript (see NativeConnection).
NativeListener::NativeListener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeListener>(info) {
  if (info.Length() == 1 && info[0].IsExternal()) {
    PendingListener* pending = info[0].As<Napi::External<PendingListener>>().Data();
    js_ = AddonData::Get(info.Env()).js_thread;
    observer_ = std::move(pending->observer);
    listener_ = std::move(pending->listener);
    js_->Hold();
    held_ = true;
  }
}

// listen(name, onConnection, onError, limits?): every failure happens here,
// before a wrapper object exists.
Napi::Value ListenJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = ReadName(info[0]);
  std::unique_ptr<JsCallbacks> callbacks = TakeCallbacks(info, 1, 2);
  std::shared_ptr<NapiJsThread> js = AddonData::Get(env).js_thread;
  PendingListener pending;
  pending.observer = std::make_shared<ListenerObserverImpl>(env, js, std::move(callbacks));
  pending.listener = ValueOrThrow(env, memport::Listen(name, js, pending.observer, ReadLimits(info[3])));
  auto token = Napi::External<PendingListener>::New(env, &pending);
  return AddonData::Get(env).listener_constructor.New({token});
}

NativeListener::~NativeListener() { CloseListener(); }

void NativeListener::CloseListener() {
  if (!listener_) return;  // also: inert, or already closed
  static_cast<ListenerObserverImpl*>(observer_.get())->closed = true;
  listener_->Close();
  listener_.reset();
  if (held_ && js_->alive()) js_->Release();
  held_ = false;
}

// setRef(ref): whether this open listener keeps the event loop alive
// (listener.ref()/unref(), as net.Server has).
Napi::Value NativeListener::SetRef(const Napi::CallbackInfo& info) {
  const bool ref = info[0].ToBoolean().Value();
  if (listener_ && ref != held_ && js_->alive()) {
    held_ = ref;
    if (ref) {
      js_->Hold();
    } else {
      js_->Release();
    }
  }
  return info.Env().Undefined();
}

Napi::Value NativeListener::Address(const Napi::CallbackInfo& info) {
  if (!listener_) return info.Env().Undefined();
  return Napi::String::New(info.Env(), listener_->address());
}

Napi::Value NativeListener::Close(const Napi::CallbackInfo& info) {
  CloseListener();
  return info.Env().Undefined();
}

// =============================================================================
// Module functions

// connect(name, timeoutMs, expectedServerPid, callback(error, connection))
Napi::Value ConnectJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = ReadName(info[0]);
  const uint64_t timeout_ms = ReadSize(info[1], 0xFFFFFFFFu, "timeoutMs");
  const uint64_t expected_pid = ReadSize(info[2], uint64_t{1} << 32, "expected pid");
  std::unique_ptr<JsCallbacks> callbacks = TakeCallbacks(info, 3, 1);
  std::shared_ptr<NapiJsThread> js = AddonData::Get(env).js_thread;
  js->Hold();
  // The callback references are released on the JS thread by this guard,
  // whichever way `done` ends (run, or dropped at teardown).
  struct Guard {
    std::shared_ptr<NapiJsThread> js;
    std::unique_ptr<JsCallbacks> callbacks;
    ~Guard() { ReleaseOnJsThread(js, std::move(callbacks)); }
  };
  auto guard = std::make_shared<Guard>();
  guard->js = js;
  guard->callbacks = std::move(callbacks);
  Connect(name, static_cast<uint32_t>(timeout_ms), static_cast<int64_t>(expected_pid), js,
          [env, js, guard](Result<std::unique_ptr<Connection>> result) {
            js->Release();
            if (!js->alive()) return;
            Napi::HandleScope scope(env);
            Napi::FunctionReference& callback = guard->callbacks->functions[0];
            if (result.ok()) {
              callback.Call({env.Undefined(), NativeConnection::Wrap(env, result.take())});
            } else {
              callback.Call({ToJsError(env, result.error()).Value()});
            }
          });
  return env.Undefined();
}

Napi::Value ChannelAddressJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, ValueOrThrow(env, ChannelAddress(ReadName(info[0]))));
}

}  // namespace memport
