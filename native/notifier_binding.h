// NativeNotifier: the JavaScript face of one Notifier (native/core/notifier.h).
// Only unpacks arguments and converts results; the wait queue, timeouts and
// wake policy live in src/notifier.ts.
#pragma once

#include <napi.h>

#include <memory>

#include "core/notifier.h"
#include "js_thread.h"

namespace memport {

class NativeNotifier : public Napi::ObjectWrap<NativeNotifier> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, Notifier notifier);
  explicit NativeNotifier(const Napi::CallbackInfo& info);
  ~NativeNotifier() override;
  // The notifier behind a JS object, for a message that carries it
  // (channel_binding.cc); nullptr if `value` is not a NativeNotifier.
  static const Notifier* NotifierOf(Napi::Env env, const Napi::Value& value);

 private:
  Napi::Value Notify(const Napi::CallbackInfo& info);
  Napi::Value TryConsume(const Napi::CallbackInfo& info);
  Napi::Value Arm(const Napi::CallbackInfo& info);
  Napi::Value Disarm(const Napi::CallbackInfo& info);
  Napi::Value SetRef(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);
  Napi::Value OsHandle(const Napi::CallbackInfo& info);
  Napi::Value DuplicateInto(const Napi::CallbackInfo& info);
  Napi::Value DuplicateUnowned(const Napi::CallbackInfo& info);
  Napi::Value ForWorker(const Napi::CallbackInfo& info);
  Notifier& notifier(Napi::Env env);  // throws CLOSED once closed
  void StopWatching();
  void UpdateHold();

  // What a report from the watch reaches: shared (weakly) with the callback
  // the core holds, so a report that arrives after disarm(), close() or this
  // object's end finds nothing to call. JS thread only.
  struct Reporter {
    explicit Reporter(Napi::Env e) : env(e) {}
    Napi::Env env;
    Napi::FunctionReference on_ready;
  };

  Notifier notifier_;
  std::shared_ptr<NapiJsThread> js_;
  std::shared_ptr<Reporter> reporter_;
  bool armed_ = false;
  bool ref_ = true;
  bool held_ = false;  // keeps the event loop alive: armed (a wait pending) and ref'd
};

// Adds createNotifier, notifierFromHandle, adoptNotifierToken and
// closeUnownedHandle to the exports.
void ExportNotifierFunctions(Napi::Env env, Napi::Object exports);

}  // namespace memport
