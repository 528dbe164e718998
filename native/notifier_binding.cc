#include "notifier_binding.h"

#include <string>

#include "addon_data.h"
#include "core/owned_handles.h"
#include "napi_error.h"
#include "region_binding.h"
#include "worker_tokens.h"

namespace memport {

namespace {

struct PendingNotifier {
  Notifier notifier;
};

}  // namespace

Napi::Function NativeNotifier::Define(Napi::Env env) {
  return DefineClass(env, "NativeNotifier",
                     {
                         InstanceMethod<&NativeNotifier::Notify>("notify"),
                         InstanceMethod<&NativeNotifier::TryConsume>("tryConsume"),
                         InstanceMethod<&NativeNotifier::Arm>("arm"),
                         InstanceMethod<&NativeNotifier::Disarm>("disarm"),
                         InstanceMethod<&NativeNotifier::SetRef>("setRef"),
                         InstanceMethod<&NativeNotifier::Close>("close"),
                         InstanceMethod<&NativeNotifier::Closed>("closed"),
                         InstanceMethod<&NativeNotifier::OsHandle>("osHandle"),
                         InstanceMethod<&NativeNotifier::DuplicateInto>("duplicateInto"),
                         InstanceMethod<&NativeNotifier::DuplicateUnowned>("duplicateUnowned"),
                         InstanceMethod<&NativeNotifier::ForWorker>("forWorker"),
                     });
}

// Only C++ can pass the External that carries a notifier (Wrap below);
// constructed from JavaScript, a NativeNotifier is inert (closed).
// Constructors must not throw: a throwing ObjectWrap constructor leaves a
// dangling wrap.
NativeNotifier::NativeNotifier(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<NativeNotifier>(info),
      js_(AddonData::Get(info.Env()).js_thread),
      reporter_(std::make_shared<Reporter>(info.Env())) {
  if (info.Length() == 1 && info[0].IsExternal()) {
    notifier_ = std::move(info[0].As<Napi::External<PendingNotifier>>().Data()->notifier);
  }
}

// Finalized on the JS thread. An armed notifier is never collected (its
// callback reference keeps the JS object), so this is a closed or idle one,
// or the environment is ending.
NativeNotifier::~NativeNotifier() {
  notifier_.Close();
  if (held_ && js_->alive()) js_->Release();
  held_ = false;
  if (!js_->alive()) reporter_->on_ready.SuppressDestruct();
}

const Notifier* NativeNotifier::NotifierOf(Napi::Env env, const Napi::Value& value) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(AddonData::Get(env).notifier_constructor.Value())) {
    return nullptr;
  }
  return &Unwrap(value.As<Napi::Object>())->notifier_;
}

Napi::Object NativeNotifier::Wrap(Napi::Env env, Notifier notifier) {
  PendingNotifier pending{std::move(notifier)};
  auto token = Napi::External<PendingNotifier>::New(env, &pending);
  return AddonData::Get(env).notifier_constructor.New({token});
}

Notifier& NativeNotifier::notifier(Napi::Env env) {
  if (!notifier_.valid()) throw ToJsError(env, MakeError("CLOSED", "the notifier is closed"));
  return notifier_;
}

void NativeNotifier::UpdateHold() {
  const bool want = armed_ && ref_ && notifier_.valid();
  if (want == held_ || !js_->alive()) return;
  held_ = want;
  if (want) {
    js_->Hold();
  } else {
    js_->Release();
  }
}

void NativeNotifier::StopWatching() {
  notifier_.StopWatching();
  armed_ = false;
  reporter_->on_ready.Reset();
  UpdateHold();
}

// notify(): one notification pending (coalescing).
Napi::Value NativeNotifier::Notify(const Napi::CallbackInfo& info) {
  ValueOrThrow(info.Env(), notifier(info.Env()).Notify());
  return info.Env().Undefined();
}

// tryConsume(): true if a notification was pending (it is taken).
Napi::Value NativeNotifier::TryConsume(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), ValueOrThrow(info.Env(), notifier(info.Env()).TryConsume()));
}

// arm(onReady): until disarm()/close(), onReady() is called on the JS thread
// when a notification may be pending (JS then calls tryConsume). Call again
// after each report to keep watching (a no-op where the watch goes on).
Napi::Value NativeNotifier::Arm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Notifier& target = notifier(env);
  if (!info[0].IsFunction()) throw ToJsError(env, MakeError("INVALID_ARGUMENT", "onReady must be a function"));
  reporter_->on_ready = Napi::Persistent(info[0].As<Napi::Function>());
  std::weak_ptr<Reporter> weak = reporter_;
  std::shared_ptr<NapiJsThread> js = js_;
  Status watching = target.Watch(js_, [weak, js] {
    std::shared_ptr<Reporter> reporter = weak.lock();
    if (!reporter || reporter->on_ready.IsEmpty() || !js->alive()) return;
    Napi::HandleScope scope(reporter->env);
    try {
      reporter->on_ready.Call({});
    } catch (const Napi::Error& error) {
      // src/notifier.ts lets no exception escape; if one does, Node reports
      // it as uncaught, as for any event handler.
      napi_fatal_exception(reporter->env, error.Value());
    }
  });
  if (!watching.ok()) {
    StopWatching();
    throw ToJsError(env, watching.error());
  }
  armed_ = true;
  UpdateHold();
  return env.Undefined();
}

// disarm(): no more reports; idempotent.
Napi::Value NativeNotifier::Disarm(const Napi::CallbackInfo& info) {
  StopWatching();
  return info.Env().Undefined();
}

// setRef(ref): whether an armed notifier (a wait pending) keeps the event loop alive.
Napi::Value NativeNotifier::SetRef(const Napi::CallbackInfo& info) {
  ref_ = info[0].ToBoolean();
  UpdateHold();
  return info.Env().Undefined();
}

// close(): stops watching and closes the handle; idempotent.
Napi::Value NativeNotifier::Close(const Napi::CallbackInfo& info) {
  StopWatching();
  notifier_.Close();
  return info.Env().Undefined();
}

Napi::Value NativeNotifier::Closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !notifier_.valid());
}

// osHandle(): the eventfd (Linux) or Event HANDLE value (Windows); -1 once closed.
Napi::Value NativeNotifier::OsHandle(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), notifier_.valid() ? static_cast<double>(notifier_.raw()) : -1);
}

// duplicateInto(pid): Windows only; the value, valid in `pid`, of a handle
// with exactly SYNCHRONIZE | EVENT_MODIFY_STATE.
Napi::Value NativeNotifier::DuplicateInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t pid = ReadSize(info[0], 0xFFFFFFFFu, "pid");
  return Napi::Number::New(env, ValueOrThrow(env, notifier(env).DuplicateIntoProcess(static_cast<int64_t>(pid))));
}

// duplicateUnowned(access): test hook; a second handle to this notifier in
// this process that memport does not own, as if it had just arrived
// (Windows: with `access`, 0 for the sharing rights; Linux: a dup).
Napi::Value NativeNotifier::DuplicateUnowned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t access = ReadSize(info[0], 0xFFFFFFFFu, "access");
  const RawHandle copy = ValueOrThrow(env, notifier(env).DuplicateUnowned(static_cast<uint32_t>(access)));
  return Napi::Number::New(env, static_cast<double>(copy));
}

// forWorker(): a second handle to this notifier's object, parked in the token
// table (worker_tokens.h); returns its id.
Napi::Value NativeNotifier::ForWorker(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Notifier copy = ValueOrThrow(env, notifier(env).DuplicateInProcess());
  return Napi::Number::New(env, static_cast<double>(ParkToken(std::move(copy), &AddonData::Get(env))));
}

namespace {

// adoptNotifierToken(id): the notifier a token stands for, now owned by this
// thread. NOT_FOUND when the token was adopted already, dropped, or never
// existed; INVALID_ARGUMENT (the token left pending) when it is a region's.
Napi::Value AdoptNotifierToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t id = ReadSize(info[0], uint64_t{1} << 53, "token id");
  TokenHandle handle = ValueOrThrow(env, AdoptToken(id, "notifier", [](const TokenHandle& pending) -> Status {
    if (std::holds_alternative<Notifier>(pending)) return Ok();
    return MakeError("INVALID_ARGUMENT", "this token is a region's; adopt it with SharedRegion.fromWorkerToken()");
  }));
  return NativeNotifier::Wrap(env, std::move(std::get<Notifier>(handle)));
}

// createNotifier(): a new notifier with nothing pending.
Napi::Value CreateNotifier(const Napi::CallbackInfo& info) {
  return NativeNotifier::Wrap(info.Env(), ValueOrThrow(info.Env(), Notifier::Create()));
}

// notifierFromHandle(value): adopts an fd (Linux) or HANDLE value (Windows)
// after checking it is a notifier (Notifier::FromReceived). A value of the
// wrong kind is refused and left open: it may be somebody else's.
Napi::Value NotifierFromHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t value = ReadSize(info[0], 0xFFFFFFFFu, "handle");
  return NativeNotifier::Wrap(env, ValueOrThrow(env, Notifier::FromReceived(static_cast<RawHandle>(value))));
}

// closeUnownedHandle(value): test hook; closes a handle value that memport
// does not own (INVALID_HANDLE if it was not open) (one a test duplicated and memport refused to adopt, which
// JavaScript has no other way to close on Windows). A value memport owns is
// refused with ALREADY_EXISTS, so this can never close one of memport's own.
Napi::Value CloseUnownedHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const RawHandle raw = static_cast<RawHandle>(ReadSize(info[0], 0xFFFFFFFFu, "handle"));
  if (OwnedHandles().Contains(raw)) {
    throw ToJsError(env, MakeError("ALREADY_EXISTS", "handle " + std::to_string(raw) + " belongs to a live memport "
                                                     "object; close that object instead"));
  }
  ValueOrThrow(env, Notifier::CloseUnowned(raw));
  return env.Undefined();
}

}  // namespace

void ExportNotifierFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("createNotifier", Napi::Function::New(env, CreateNotifier, "createNotifier"));
  exports.Set("closeUnownedHandle", Napi::Function::New(env, CloseUnownedHandle, "closeUnownedHandle"));
  exports.Set("notifierFromHandle", Napi::Function::New(env, NotifierFromHandle, "notifierFromHandle"));
  exports.Set("adoptNotifierToken", Napi::Function::New(env, AdoptNotifierToken, "adoptNotifierToken"));
}

}  // namespace memport
