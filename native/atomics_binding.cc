#include "atomics_binding.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "napi_error.h"

namespace memport {
namespace {

// The word at view[offset], checked: a Uint8Array, a whole-number offset, the
// four bytes inside the view, the address 4-aligned (an unaligned atomic is
// undefined behaviour, and a fault on arm64).
uint32_t* WordAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw ToJsError(env, MakeError("INVALID_ARGUMENT", "view must be a Uint8Array"));
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, info[0], &type, &length, &data, &buffer, &byte_offset) != napi_ok ||
      type != napi_uint8_array) {
    throw ToJsError(env, MakeError("INVALID_ARGUMENT", "view must be a Uint8Array"));
  }
  if (!info[1].IsNumber()) throw ToJsError(env, MakeError("INVALID_ARGUMENT", "byteOffset must be a number"));
  const double offset = info[1].As<Napi::Number>().DoubleValue();
  // Checked as a double first: NaN, negatives, fractions and huge values
  // never reach the size_t conversion.
  if (!std::isfinite(offset) || offset < 0 || std::floor(offset) != offset || data == nullptr ||
      length < 4 || offset > static_cast<double>(length - 4)) {
    throw ToJsError(env, MakeError("INVALID_ARGUMENT", "byteOffset must be a whole number from 0 to the view's length - 4 "
                                                       "(view length " + std::to_string(length) + ")"));
  }
  auto* byte = static_cast<uint8_t*>(data) + static_cast<size_t>(offset);
  if (reinterpret_cast<uintptr_t>(byte) % alignof(uint32_t) != 0) {
    throw ToJsError(env, MakeError("INVALID_ARGUMENT", "the word at byteOffset is not 4-byte aligned"));
  }
  return reinterpret_cast<uint32_t*>(byte);
}

// A uint32 argument (a JS number 0..2^32-1).
uint32_t Word(const Napi::Value& value, const char* what) {
  if (value.IsNumber()) {
    const double d = value.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && d >= 0 && d <= 4294967295.0 && std::floor(d) == d) return static_cast<uint32_t>(d);
  }
  throw ToJsError(value.Env(), MakeError("INVALID_ARGUMENT", std::string(what) + " must be a whole number from 0 to 2^32-1"));
}

Napi::Value Uint32(Napi::Env env, uint32_t value) { return Napi::Number::New(env, static_cast<double>(value)); }

// atomicLoad32(view, byteOffset) -> the word.
Napi::Value Load32(const Napi::CallbackInfo& info) {
  return Uint32(info.Env(), __atomic_load_n(WordAt(info), __ATOMIC_SEQ_CST));
}

// atomicStore32(view, byteOffset, value).
Napi::Value Store32(const Napi::CallbackInfo& info) {
  uint32_t* word = WordAt(info);
  __atomic_store_n(word, Word(info[2], "value"), __ATOMIC_SEQ_CST);
  return info.Env().Undefined();
}

// atomicCompareExchange32(view, byteOffset, expected, desired) -> the word as
// it was (equal to expected when the exchange happened).
Napi::Value CompareExchange32(const Napi::CallbackInfo& info) {
  uint32_t* word = WordAt(info);
  uint32_t expected = Word(info[2], "expected");
  const uint32_t desired = Word(info[3], "desired");
  __atomic_compare_exchange_n(word, &expected, desired, /*weak=*/false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return Uint32(info.Env(), expected);
}

// atomicAdd32(view, byteOffset, delta) -> the word before the addition
// (wrapping modulo 2^32; subtract by adding 2^32 - n).
Napi::Value Add32(const Napi::CallbackInfo& info) {
  uint32_t* word = WordAt(info);
  return Uint32(info.Env(), __atomic_fetch_add(word, Word(info[2], "delta"), __ATOMIC_SEQ_CST));
}

}  // namespace

void ExportAtomicsFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("atomicLoad32", Napi::Function::New(env, Load32, "atomicLoad32"));
  exports.Set("atomicStore32", Napi::Function::New(env, Store32, "atomicStore32"));
  exports.Set("atomicCompareExchange32", Napi::Function::New(env, CompareExchange32, "atomicCompareExchange32"));
  exports.Set("atomicAdd32", Napi::Function::New(env, Add32, "atomicAdd32"));
}

}  // namespace memport
