// Status/Result carry values and errors, and the propagation macros stop at the first error.
#include "common/status.h"

#include <gtest/gtest.h>

namespace spindle {
namespace {

Result<int> Half(int v) {
  if (v % 2 != 0) return Error(Code::kInvalidArgument, "{} is odd", v);
  return v / 2;
}

Result<int> Quarter(int v) {
  SP_ASSIGN_OR_RETURN(int h, Half(v));
  return Half(h);
}

TEST(Status, OkAndError) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = Error(Code::kNotFound, "volume {} missing", "v1");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.ToString(), "not found: volume v1 missing");
}

TEST(Result, PropagatesFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 is odd");
}

}  // namespace
}  // namespace spindle
