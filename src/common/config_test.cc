// The config parser applies globals, then the chosen section, and later files override
// earlier ones; malformed lines are errors naming the file and line.
#include "common/config.h"

#include <gtest/gtest.h>

namespace spindle {
namespace {

TEST(Config, SectionOverridesGlobal) {
  Config c;
  ASSERT_TRUE(c.Parse("[node1]\nSP_OURID=1\n[node2]\nSP_OURID=2\n\nSP_X=3\n", "node2", "t").ok());
  // SP_X sits inside [node2] too, since sections run to the next header.
  EXPECT_EQ(c.GetOr("SP_OURID", ""), "2");
  EXPECT_EQ(c.GetOr("SP_X", ""), "3");
  Config g;
  ASSERT_TRUE(g.Parse("SP_CLUSTER_NAME=a\n# comment\n[h]\nSP_CLUSTER_NAME=b\n", "other", "t").ok());
  EXPECT_EQ(g.GetOr("SP_CLUSTER_NAME", ""), "a");
}

TEST(Config, LaterFileWins) {
  Config c;
  ASSERT_TRUE(c.Parse("SP_API_HTTP_PORT=81\n", "h", "a").ok());
  ASSERT_TRUE(c.Parse("SP_API_HTTP_PORT = \"8081\"\n", "h", "b").ok());
  EXPECT_EQ(*c.GetInt("SP_API_HTTP_PORT", 0), 8081);
  EXPECT_EQ(*c.GetInt("SP_MISSING", 7), 7);
}

TEST(Config, BadLinesAreErrors) {
  Config c;
  Status s = c.Parse("SP_A=1\nthis is not a key\n", "h", "file.conf");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("file.conf:2"), std::string::npos);
  ASSERT_TRUE(c.Parse("SP_N=12x\n", "h", "f").ok());
  EXPECT_FALSE(c.GetInt("SP_N", 0).ok());
}

}  // namespace
}  // namespace spindle
