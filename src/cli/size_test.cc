#include "cli/size.h"

#include <gtest/gtest.h>

namespace spindle::cli {
namespace {

// Suffixes are binary, '+' marks a relative size, and junk or overflow is rejected.
TEST(SizeTest, ParsesSuffixesAndGrow) {
  EXPECT_EQ(ParseSize("512")->bytes, 512u);
  EXPECT_EQ(ParseSize("1K")->bytes, 1024u);
  EXPECT_EQ(ParseSize("100G")->bytes, 100ull << 30);
  EXPECT_EQ(ParseSize("2TiB")->bytes, 2ull << 40);
  EXPECT_EQ(ParseSize("1.5M")->bytes, 3ull << 19);
  EXPECT_EQ(ParseSize("10m")->bytes, 10ull << 20);
  auto grow = ParseSize("+1G");
  ASSERT_TRUE(grow.ok());
  EXPECT_TRUE(grow->relative);
  EXPECT_EQ(grow->bytes, 1ull << 30);
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("G").ok());
  EXPECT_FALSE(ParseSize("10X").ok());
  EXPECT_FALSE(ParseSize("-1G").ok());
  EXPECT_FALSE(ParseSize("99999999999P").ok());
}

// Display uses one decimal below 10 units and none above, like StorPool's tables.
TEST(SizeTest, Formats) {
  EXPECT_EQ(FormatSize(0), "0 B");
  EXPECT_EQ(FormatSize(512), "512 B");
  EXPECT_EQ(FormatSize(1024), "1 KiB");
  EXPECT_EQ(FormatSize(3584ull << 30), "3.5 TiB");
  EXPECT_EQ(FormatSize(468ull << 30), "468 GiB");
}

}  // namespace
}  // namespace spindle::cli
