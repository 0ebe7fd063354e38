// Sizes and the fixed geometry of the data model (DESIGN.md §4).
#pragma once

#include <cstdint>

namespace spindle {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;
inline constexpr uint64_t kTiB = 1024 * kGiB;

inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint64_t kBlockSize = 4 * kKiB;    // the store's block
inline constexpr uint64_t kObjectSize = 32 * kMiB;  // a volume is cut into these
inline constexpr uint64_t kBlocksPerObject = kObjectSize / kBlockSize;  // 8192

}  // namespace spindle
