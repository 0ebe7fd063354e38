// Strong id types, so a DiskId can never be passed where a ServerId is expected, and the
// numeric ranges StorPool's API enforces for each.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace spindle {

template <typename Tag, typename Rep>
class StrongId {
 public:
  using rep = Rep;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : v_(v) {}
  constexpr Rep value() const { return v_; }
  auto operator<=>(const StrongId&) const = default;

 private:
  Rep v_{};
};

using DiskId = StrongId<struct DiskIdTag, uint32_t>;      // 0..4095
using ServerId = StrongId<struct ServerIdTag, uint32_t>;  // 1..32767
using ClientId = StrongId<struct ClientIdTag, uint32_t>;  // 1..4095
using NodeId = StrongId<struct NodeIdTag, uint32_t>;      // 0..63
using LayerId = StrongId<struct LayerIdTag, uint64_t>;    // mgmt-assigned, never reused
using ObjectIndex = StrongId<struct ObjectIndexTag, uint32_t>;
using Generation = StrongId<struct GenerationTag, int64_t>;

inline constexpr uint32_t kMaxDiskId = 4095;
inline constexpr uint32_t kMaxServerId = 32767;
inline constexpr uint32_t kMaxClientId = 4095;
inline constexpr uint32_t kMaxNodeId = 63;
inline constexpr uint32_t kNoDiskId = 4294967294u;  // DiskIdOrNoDiskId's "no disk"

}  // namespace spindle

template <typename Tag, typename Rep>
struct std::hash<spindle::StrongId<Tag, Rep>> {
  size_t operator()(const spindle::StrongId<Tag, Rep>& id) const {
    return std::hash<Rep>()(id.value());
  }
};
