// NativeListener / NativeConnection: JS wrappers of the transport objects.
#pragma once

#include <napi.h>

#include <memory>

#include "core/transport.h"
#include "js_thread.h"

namespace memport {

class NativeConnection : public Napi::ObjectWrap<NativeConnection> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::unique_ptr<Connection> connection);
  explicit NativeConnection(const Napi::CallbackInfo& info);
  ~NativeConnection() override;

 private:
  Napi::Value Peer(const Napi::CallbackInfo& info);
  Napi::Value PeerRunning(const Napi::CallbackInfo& info);
  Napi::Value Admit(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value TakeMessage(const Napi::CallbackInfo& info);
  Napi::Value ReleaseMessage(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value SetRef(const Napi::CallbackInfo& info);
  Connection& connection(Napi::Env env);  // throws CLOSED when inert

  std::unique_ptr<Connection> connection_;
  std::shared_ptr<ConnectionObserver> observer_;  // set by start(); holds the loop while open
  bool started_ = false;
  bool ref_ = true;
};

class NativeListener : public Napi::ObjectWrap<NativeListener> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeListener(const Napi::CallbackInfo& info);
  ~NativeListener() override;

 private:
  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value SetRef(const Napi::CallbackInfo& info);
  void CloseListener();

  std::shared_ptr<NapiJsThread> js_;
  bool held_ = false;  // keeps the event loop alive while open (JS thread only)
  std::shared_ptr<ListenerObserver> observer_;
  std::unique_ptr<Listener> listener_;
};

Napi::Value ListenJs(const Napi::CallbackInfo& info);
Napi::Value ConnectJs(const Napi::CallbackInfo& info);
Napi::Value ChannelAddressJs(const Napi::CallbackInfo& info);

}  // namespace memport
