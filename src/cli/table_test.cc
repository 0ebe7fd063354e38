#include "cli/table.h"

#include <gtest/gtest.h>

namespace spindle::cli {
namespace {

// Columns are padded to their widest cell, framed by '-' rules and '|' separators, and
// right-aligned columns pad on the left.
TEST(TableTest, RendersStorPoolStyle) {
  Table t({"disk", "size"});
  t.SetAlign(1, Align::kRight);
  t.AddRow({"101", "1 GiB"});
  t.AddRow({"2", "10 GiB"});
  EXPECT_EQ(t.Render(),
            "-----------------\n"
            "| disk | size   |\n"
            "-----------------\n"
            "| 101  |  1 GiB |\n"
            "| 2    | 10 GiB |\n"
            "-----------------\n");
}

// A table without rows still shows its header, and short rows are padded.
TEST(TableTest, EmptyAndShortRows) {
  Table t({"a", "bb"});
  EXPECT_EQ(t.Render(), "----------\n| a | bb |\n----------\n----------\n");
  t.AddRow({"x"});
  EXPECT_NE(t.Render().find("| x |    |"), std::string::npos);
}

}  // namespace
}  // namespace spindle::cli
