// The memport wire format, version 1 (docs/PROTOCOL.md is the normative text).
// Platform-neutral, allocation-bounded, and the target of the frame fuzzer.
//
// Every frame travels as one transport message (a SOCK_SEQPACKET packet on
// Linux, a PIPE_TYPE_MESSAGE message on Windows), little-endian:
//
//   header (16 bytes)
//     0  u32  magic         'M' 'P' 'R' 'T'
//     4  u8   version       1
//     5  u8   type          FrameType
//     6  u16  region_count  0..kMaxRegionsPerFrame
//     8  u32  seq           message number (MESSAGE) or the one answered (ACK/NACK)
//     12 u32  data_length   0..kMaxDataLength
//   region_count descriptors (16 bytes each): one per handle the frame carries
//     0  u64  size          a region: 1..kMaxRegionSize; a notifier: 0
//     8  u32  flags         bit 0: read-only; bit 1: named (memory the sender
//                           opened or created by name; the receiver takes it
//                           only when it opted in); bit 2: a notifier (an
//                           eventfd / an Event, not a region); bit 3: a
//                           stream member (see StreamMembersValid); every
//                           other bit must be 0
//     12 u32  handle        Linux: index of the fd in SCM_RIGHTS (== descriptor index)
//                           Windows: the handle value in the receiver's table
//   data (data_length bytes)
//
// The frame's length must equal 16 + 16 * region_count + data_length exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "error.h"

namespace memport {

enum class FrameType : uint8_t {
  kWelcome = 1,  // listener -> client: admitted; no regions, no data
  kReject = 2,   // listener -> client: refused; data = UTF-8 reason; then EOF
  kMessage = 3,  // regions and/or data (UTF-8 JSON)
  kAck = 4,      // ownership of MESSAGE `seq` taken; no regions, no data
  kNack = 5,     // MESSAGE `seq` refused after its handles were taken and released; data = UTF-8 JSON {code,message}
};

constexpr uint32_t kFrameMagic = 0x5452504D;  // "MPRT" read as little-endian u32
constexpr uint8_t kProtocolVersion = 1;
constexpr size_t kHeaderSize = 16;
constexpr size_t kDescriptorSize = 16;
constexpr uint16_t kMaxRegionsPerFrame = 64;
constexpr uint32_t kMaxDataLength = 128 * 1024;
constexpr uint64_t kMaxRegionSize = uint64_t{1} << 47;
constexpr size_t kMaxFrameSize = kHeaderSize + kDescriptorSize * kMaxRegionsPerFrame + kMaxDataLength;
constexpr uint32_t kRegionReadOnly = 1u << 0;
// Named shared memory (SharedRegion.openNamed/createNamed): no seals on Linux,
// possibly a named section on Windows. Receivers that did not opt in
// (acceptNamedRegions) release it and answer NACK UNSUPPORTED; protocol
// version 1 receivers from before this bit drop the connection (unknown flag).
constexpr uint32_t kRegionNamed = 1u << 1;
constexpr uint32_t kKnownRegionFlags = kRegionReadOnly | kRegionNamed;
// The descriptor carries a notifier (core/notifier.h), not a region: size 0,
// no other flag. Protocol version 1 receivers from before this bit drop the
// connection (unknown flag).
constexpr uint32_t kDescriptorNotifier = 1u << 2;
// The descriptor is part of a stream reader the frame hands over (docs/PROTOCOL.md
// section 6, "Readers over connections"): on a region (the stream's data,
// read-only, then the reader's control region, writable; never named) or on a
// notifier (the reader's wake-up, then the writer's). Receivers from before
// this bit drop the connection (unknown flag).
constexpr uint32_t kDescriptorStream = 1u << 3;
// Regions and notifiers one stream reader takes in a frame: two of each.
constexpr size_t kStreamRegions = 2;
constexpr size_t kStreamNotifiers = 2;
// MESSAGE frames one sender may have unacknowledged at once (docs/PROTOCOL.md
// section 3, "Window"); enforced by the receiver, which drops a peer past it.
constexpr uint32_t kMessageWindow = 256;

struct RegionDescriptor {
  uint64_t size = 0;
  uint32_t flags = 0;
  uint32_t handle = 0;
  bool read_only() const { return (flags & kRegionReadOnly) != 0; }
  bool named() const { return (flags & kRegionNamed) != 0; }
  bool notifier() const { return (flags & kDescriptorNotifier) != 0; }
  bool stream() const { return (flags & kDescriptorStream) != 0; }
};

// Whether a descriptor's size and flags are well-formed: a region's size in
// 1..kMaxRegionSize with only region flags, or a notifier's (size 0, only the
// notifier flag), either possibly a stream member (a region then not named).
bool DescriptorShapeValid(const RegionDescriptor& descriptor);

// How many stream readers `descriptors` hand over, or -1 when their stream
// members are not laid out as the protocol requires: among the regions (in
// frame order) the stream members are the last 2k, in pairs (read-only data,
// writable control); among the notifiers the last 2k, and no others.
int StreamCount(const std::vector<RegionDescriptor>& descriptors);

struct Frame {
  FrameType type = FrameType::kMessage;
  uint32_t seq = 0;
  std::vector<RegionDescriptor> regions;
  std::vector<uint8_t> data;
  // Stream readers the frame hands over: the last 2 * streams regions and the
  // last 2 * streams notifiers are their members (kDescriptorStream). Set by
  // the sender before Write (which flags those descriptors) and by DecodeFrame.
  uint16_t streams = 0;
};

// Serialises `frame`; fails with INVALID_ARGUMENT when it breaks a cap.
Result<std::vector<uint8_t>> EncodeFrame(const Frame& frame);

// Parses exactly `length` bytes. Checks every field and cap before allocating;
// any violation is a PROTOCOL error (the caller drops the connection).
Result<Frame> DecodeFrame(const uint8_t* bytes, size_t length);

}  // namespace memport
