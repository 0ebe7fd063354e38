#include "client/block_service.h"

#include <gtest/gtest.h>

namespace spindle::client {
namespace {

// SP_BLOCK_POLL_US defaults to 50 µs, takes 0..kMaxPollWindowUs and refuses the rest naming
// the key.
TEST(BlockOptions, PollWindow) {
  Config c;
  c.Set("SP_OURID", "4");
  auto o = BlockOptions::FromConfig(c);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->poll_window, std::chrono::microseconds(50));
  c.Set("SP_BLOCK_POLL_US", "0");
  o = BlockOptions::FromConfig(c);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->poll_window, std::chrono::microseconds(0));
  for (const char* bad : {"-1", "10001", "fast"}) {
    c.Set("SP_BLOCK_POLL_US", bad);
    o = BlockOptions::FromConfig(c);
    EXPECT_FALSE(o.ok()) << bad;
    if (!o.ok()) {
      EXPECT_NE(o.status().message().find("SP_BLOCK_POLL_US"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace spindle::client
