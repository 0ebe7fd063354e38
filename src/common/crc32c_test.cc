// CRC-32C matches the standard check value and extends across split buffers.
#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace spindle {
namespace {

TEST(Crc32c, CheckValue) {
  std::string s = "123456789";
  EXPECT_EQ(Crc32c(s.data(), s.size()), 0xe3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

TEST(Crc32c, Extend) {
  std::string a = "hello ", b = "world";
  std::string ab = a + b;
  EXPECT_EQ(Crc32cExtend(Crc32c(a.data(), a.size()), b.data(), b.size()),
            Crc32c(ab.data(), ab.size()));
}

}  // namespace
}  // namespace spindle
