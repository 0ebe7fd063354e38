// Size arguments and size display for the CLI: "100G", "+1G", "512", "1.5T" (binary units)
// and the StorPool-style "3.5 TiB" rendering.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace spindle::cli {

struct SizeArg {
  uint64_t bytes = 0;
  bool relative = false;  // written with a leading '+': grow by `bytes`
};

// Parses digits with an optional fraction and an optional K/M/G/T/P suffix (binary; "KB",
// "KiB" also accepted). The result is rounded down to whole bytes and must not overflow.
Result<SizeArg> ParseSize(std::string_view text);

// "0 B", "512 B", "1 KiB", "3.5 TiB", "468 GiB": one decimal below 10 units, none above.
std::string FormatSize(uint64_t bytes);

}  // namespace spindle::cli
