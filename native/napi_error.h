// The single helper that turns a core Error into a JavaScript exception with
// the structured fields src/errors.ts expects (code, osCode, syscall).
#pragma once

#include <napi.h>

#include "core/error.h"

namespace memport {

inline Napi::Error ToJsError(Napi::Env env, const Error& error) {
  Napi::Error js = Napi::Error::New(env, error.message);
  Napi::Object obj = js.Value();
  obj.Set("memport", Napi::Boolean::New(env, true));
  obj.Set("code", Napi::String::New(env, error.code));
  if (!error.syscall.empty()) {
    obj.Set("syscall", Napi::String::New(env, error.syscall));
    obj.Set("osCode", Napi::Number::New(env, static_cast<double>(error.os_code)));
  }
  return js;
}

template <typename T>
T ValueOrThrow(Napi::Env env, Result<T> result) {
  if (!result.ok()) throw ToJsError(env, result.error());
  return result.take();
}

}  // namespace memport
