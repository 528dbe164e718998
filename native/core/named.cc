// What both backends do with a named object once the OS has opened it, and
// the words both use to explain a refusal (SECURITY.md, "Named shared
// memory"). The OS calls themselves are in native/linux/named_shm_linux.cc
// and native/win/named_section_win.cc.
#include "named.h"

#include <memory>
#include <string>
#include <utility>

#include "shared_memory.h"

namespace memport {

std::string QuotedName(const std::string& name) { return "'" + name + "'"; }

std::string NamedExistsMessage(const std::string& name) {
  return QuotedName(name) +
         " already exists: createNamed never opens an object somebody else made (it could have been planted there); "
         "choose another name, or openNamed it if you trust its creator";
}

std::string NamedAccessRefusedMessage(const std::string& name, bool read_only) {
  return "the OS refused " + std::string(read_only ? "read" : "read-write") + " access to " + QuotedName(name) +
         (read_only ? "" : "; if you may only read it, open it with { readOnly: true }");
}

std::string NamedRegionRefusedMessage() {
  return "the receiver does not accept named shared memory: it must connect/listen with { acceptNamedRegions: true }, "
         "or send region.copyToUnnamed()";
}

Result<SharedMemory> SharedMemory::FromNamedObject(OsHandle handle, const std::string& name, uint64_t object_size,
                                                   uint64_t size, bool read_only) {
  if (object_size == 0) {
    return MakeError("INVALID_ARGUMENT", QuotedName(name) + " is empty (0 bytes): its creator has not sized it yet");
  }
  if (size > object_size) {
    return MakeError("INVALID_ARGUMENT", "asked for " + std::to_string(size) + " bytes, but " + QuotedName(name) +
                                             " is " + std::to_string(object_size) +
                                             " bytes; a view past its end would fault");
  }
  const uint64_t region_size = size == 0 ? object_size : size;
  if (region_size > kMaxSize) return MakeError("INVALID_ARGUMENT", QuotedName(name) + " is larger than 2^47 bytes");
  SharedMemory memory(std::move(handle), region_size, read_only, std::make_shared<SharingPolicy>());
  memory.named_ = true;
  return memory;
}

}  // namespace memport
