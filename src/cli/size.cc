#include "cli/size.h"

#include <cctype>
#include <cmath>

#include <fmt/format.h>

#include "common/units.h"

namespace spindle::cli {
namespace {

// Longest accepted size argument; anything longer is a typo or an attack on the parser.
constexpr size_t kMaxSizeChars = 40;

Result<uint64_t> SuffixMultiplier(std::string_view suffix) {
  if (suffix.empty() || suffix == "B") return uint64_t{1};
  char c = static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
  std::string_view rest = suffix.substr(1);
  if (!(rest.empty() || rest == "B" || rest == "b" || rest == "iB" || rest == "ib")) {
    return Error(Code::kInvalidArgument, "bad size suffix '{}'", suffix);
  }
  switch (c) {
    case 'K':
      return kKiB;
    case 'M':
      return kMiB;
    case 'G':
      return kGiB;
    case 'T':
      return kTiB;
    case 'P':
      return kTiB * 1024;
    default:
      return Error(Code::kInvalidArgument, "bad size suffix '{}'", suffix);
  }
}

}  // namespace

Result<SizeArg> ParseSize(std::string_view text) {
  SizeArg out;
  if (text.size() > kMaxSizeChars) return Error(Code::kInvalidArgument, "size too long");
  std::string_view s = text;
  if (!s.empty() && s[0] == '+') {
    out.relative = true;
    s.remove_prefix(1);
  }
  size_t i = 0;
  uint64_t whole = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (whole > (UINT64_MAX - 9) / 10) return Error(Code::kInvalidArgument, "size too large");
    whole = whole * 10 + static_cast<uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == 0) return Error(Code::kInvalidArgument, "bad size '{}'", text);
  uint64_t frac = 0, frac_div = 1;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (frac_div < 1000000000) {
        frac = frac * 10 + static_cast<uint64_t>(s[i] - '0');
        frac_div *= 10;
      }
      ++i;
    }
  }
  SP_ASSIGN_OR_RETURN(uint64_t mult, SuffixMultiplier(s.substr(i)));
  if (whole != 0 && mult > UINT64_MAX / whole) {
    return Error(Code::kInvalidArgument, "size '{}' too large", text);
  }
  // frac < frac_div <= 1e9 and mult <= 2^50, so the product may overflow: divide first when
  // the multiplier is large (binary multipliers keep this exact for usual fractions).
  unsigned __int128 part = static_cast<unsigned __int128>(frac) * mult / frac_div;
  unsigned __int128 total = static_cast<unsigned __int128>(whole) * mult + part;
  if (total > UINT64_MAX) return Error(Code::kInvalidArgument, "size '{}' too large", text);
  out.bytes = static_cast<uint64_t>(total);
  return out;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  if (v < 10.0) {
    double r = std::round(v * 10.0) / 10.0;
    if (r == std::floor(r)) return fmt::format("{:.0f} {}", r, kUnits[u]);
    return fmt::format("{:.1f} {}", r, kUnits[u]);
  }
  return fmt::format("{:.0f} {}", std::round(v), kUnits[u]);
}

}  // namespace spindle::cli
