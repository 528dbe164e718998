#include "frame.h"

#include <cstring>
#include <string>

namespace memport {

namespace {

void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint16_t GetU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool KnownType(uint8_t type) { return type >= 1 && type <= 5; }

Error Violation(const std::string& what) { return MakeError("PROTOCOL", "malformed frame from peer: " + what); }

}  // namespace

bool DescriptorShapeValid(const RegionDescriptor& descriptor) {
  const uint32_t flags = descriptor.flags & ~kDescriptorStream;
  if (descriptor.notifier()) return flags == kDescriptorNotifier && descriptor.size == 0;
  if (descriptor.stream() && descriptor.named()) return false;
  return descriptor.size >= 1 && descriptor.size <= kMaxRegionSize && (flags & ~kKnownRegionFlags) == 0;
}

int StreamCount(const std::vector<RegionDescriptor>& descriptors) {
  // Walks each kind in frame order: once a stream member is seen, every later
  // handle of that kind must be one, and regions alternate data / control.
  size_t regions = 0;
  size_t notifiers = 0;
  bool in_regions = false;
  bool in_notifiers = false;
  for (const RegionDescriptor& descriptor : descriptors) {
    if (descriptor.notifier()) {
      if (descriptor.stream()) {
        in_notifiers = true;
        ++notifiers;
      } else if (in_notifiers) {
        return -1;
      }
      continue;
    }
    if (!descriptor.stream()) {
      if (in_regions) return -1;
      continue;
    }
    in_regions = true;
    const bool data = regions % kStreamRegions == 0;
    // The data goes out read-only; the control region both sides write.
    if (descriptor.read_only() != data) return -1;
    ++regions;
  }
  if (regions % kStreamRegions != 0 || regions / kStreamRegions != notifiers / kStreamNotifiers ||
      notifiers % kStreamNotifiers != 0) {
    return -1;
  }
  return static_cast<int>(regions / kStreamRegions);
}

Result<std::vector<uint8_t>> EncodeFrame(const Frame& frame) {
  // Everything is checked before anything is allocated, and nothing a peer
  // would have to drop (DecodeFrame's rules) is ever produced.
  if (frame.regions.size() > kMaxRegionsPerFrame) {
    return MakeError("INVALID_ARGUMENT", "at most " + std::to_string(kMaxRegionsPerFrame) + " regions per message");
  }
  if (frame.data.size() > kMaxDataLength) {
    return MakeError("INVALID_ARGUMENT", "message data is " + std::to_string(frame.data.size()) + " bytes; the limit is " +
                                             std::to_string(kMaxDataLength) + " (put bulk bytes in a region)");
  }
  const uint8_t type = static_cast<uint8_t>(frame.type);
  if (!KnownType(type)) return MakeError("INVALID_ARGUMENT", "unknown frame type " + std::to_string(type));
  const bool control = frame.type == FrameType::kWelcome || frame.type == FrameType::kAck;
  if (control && (!frame.regions.empty() || !frame.data.empty())) {
    return MakeError("INVALID_ARGUMENT", "WELCOME and ACK frames carry no payload");
  }
  if (frame.type != FrameType::kMessage && !frame.regions.empty()) {
    return MakeError("INVALID_ARGUMENT", "only MESSAGE frames carry regions");
  }
  for (const RegionDescriptor& region : frame.regions) {
    if (!DescriptorShapeValid(region)) return MakeError("INVALID_ARGUMENT", "handle descriptor out of range");
  }
  if (StreamCount(frame.regions) != frame.streams) {
    return MakeError("INVALID_ARGUMENT", "the frame's stream members are not laid out as the protocol requires");
  }
  std::vector<uint8_t> out(kHeaderSize + kDescriptorSize * frame.regions.size() + frame.data.size());
  uint8_t* p = out.data();
  PutU32(p, kFrameMagic);
  p[4] = kProtocolVersion;
  p[5] = static_cast<uint8_t>(frame.type);
  PutU16(p + 6, static_cast<uint16_t>(frame.regions.size()));
  PutU32(p + 8, frame.seq);
  PutU32(p + 12, static_cast<uint32_t>(frame.data.size()));
  p += kHeaderSize;
  for (const RegionDescriptor& region : frame.regions) {
    PutU64(p, region.size);
    PutU32(p + 8, region.flags);
    PutU32(p + 12, region.handle);
    p += kDescriptorSize;
  }
  if (!frame.data.empty()) std::memcpy(p, frame.data.data(), frame.data.size());
  return out;
}

Result<Frame> DecodeFrame(const uint8_t* bytes, size_t length) {
  if (length < kHeaderSize) return Violation("shorter than a header (" + std::to_string(length) + " bytes)");
  if (length > kMaxFrameSize) return Violation("longer than the " + std::to_string(kMaxFrameSize) + "-byte cap");
  if (GetU32(bytes) != kFrameMagic) return Violation("bad magic");
  if (bytes[4] != kProtocolVersion) return Violation("unsupported protocol version " + std::to_string(bytes[4]));
  if (!KnownType(bytes[5])) return Violation("unknown frame type " + std::to_string(bytes[5]));
  const uint16_t region_count = GetU16(bytes + 6);
  const uint32_t data_length = GetU32(bytes + 12);
  if (region_count > kMaxRegionsPerFrame) return Violation("too many regions (" + std::to_string(region_count) + ")");
  if (data_length > kMaxDataLength) return Violation("data longer than the cap");
  // All three terms are capped above, so this sum cannot overflow.
  const size_t expected = kHeaderSize + kDescriptorSize * size_t{region_count} + size_t{data_length};
  if (expected != length) {
    return Violation("length " + std::to_string(length) + " does not match the header (" + std::to_string(expected) + ")");
  }

  Frame frame;
  frame.type = static_cast<FrameType>(bytes[5]);
  frame.seq = GetU32(bytes + 8);
  const bool control = frame.type == FrameType::kWelcome || frame.type == FrameType::kAck;
  if (control && (region_count != 0 || data_length != 0)) return Violation("control frame with a payload");
  if (frame.type != FrameType::kMessage && region_count != 0) return Violation("regions on a non-message frame");

  const uint8_t* p = bytes + kHeaderSize;
  frame.regions.resize(region_count);
  for (uint16_t i = 0; i < region_count; ++i, p += kDescriptorSize) {
    RegionDescriptor& region = frame.regions[i];
    region.size = GetU64(p);
    region.flags = GetU32(p + 8);
    region.handle = GetU32(p + 12);
    const uint32_t flags = region.flags & ~kDescriptorStream;
    if (region.notifier()) {
      if (flags != kDescriptorNotifier) return Violation("a notifier descriptor with region flags");
      if (region.size != 0) return Violation("a notifier descriptor with a size");
      continue;
    }
    if (region.size == 0 || region.size > kMaxRegionSize) return Violation("region size out of range");
    if ((flags & ~kKnownRegionFlags) != 0) return Violation("unknown region flags");
    if (region.stream() && region.named()) return Violation("a named region as a stream member");
  }
  const int streams = StreamCount(frame.regions);
  if (streams < 0) return Violation("stream members not in pairs of (read-only data, control) regions and two notifiers each");
  frame.streams = static_cast<uint16_t>(streams);
  frame.data.assign(p, p + data_length);
  return frame;
}

}  // namespace memport
