#include "transport.h"

namespace memport {

Status ValidateChannelName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.';
  for (char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                         c == '_' || c == '-';
    ok = ok && allowed;
  }
  if (!ok) {
    return MakeError("INVALID_ARGUMENT",
                     "a channel name is 1 to 64 characters of A-Z a-z 0-9 . _ - and does not start with '.'");
  }
  return Ok();
}

std::string CanonicalChannelName(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

}  // namespace memport
