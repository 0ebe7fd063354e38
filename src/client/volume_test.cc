#include "client/volume.h"

#include <gtest/gtest.h>

#include "common/units.h"

namespace spindle::client {
namespace {

// A range inside one object stays one extent with its in-object offset.
TEST(SplitExtents, InsideOneObject) {
  auto e = SplitExtents(kObjectSize * 3 + 4096, 8192);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].object, 3u);
  EXPECT_EQ(e[0].offset, 4096u);
  EXPECT_EQ(e[0].length, 8192u);
  EXPECT_EQ(e[0].buffer_offset, 0u);
}

// A range crossing object boundaries is cut exactly at them, and the pieces cover the range
// contiguously in buffer order.
TEST(SplitExtents, CrossesBoundaries) {
  const uint64_t off = kObjectSize - 512;
  const uint64_t len = kObjectSize + 1024;
  auto e = SplitExtents(off, len);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].object, 0u);
  EXPECT_EQ(e[0].offset, kObjectSize - 512);
  EXPECT_EQ(e[0].length, 512u);
  EXPECT_EQ(e[1].object, 1u);
  EXPECT_EQ(e[1].offset, 0u);
  EXPECT_EQ(e[1].length, kObjectSize);
  EXPECT_EQ(e[1].buffer_offset, 512u);
  EXPECT_EQ(e[2].object, 2u);
  EXPECT_EQ(e[2].length, 512u);
  EXPECT_EQ(e[2].buffer_offset, 512u + kObjectSize);
}

// An aligned whole object is one extent; an empty range is none.
TEST(SplitExtents, WholeObjectAndEmpty) {
  auto e = SplitExtents(kObjectSize * 7, kObjectSize);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].object, 7u);
  EXPECT_EQ(e[0].length, kObjectSize);
  EXPECT_TRUE(SplitExtents(12345, 0).empty());
}

// Object i uses disk set i mod table size unless an override names another set.
TEST(DiskSetFor, ModuloAndOverride) {
  VolumeSpec v;
  v.disk_sets = {{DiskId(101), DiskId(201)}, {DiskId(102), DiskId(202)}};
  v.overrides[5] = {DiskId(301), DiskId(302)};
  EXPECT_EQ(DiskSetFor(v, 0)[0], DiskId(101));
  EXPECT_EQ(DiskSetFor(v, 3)[1], DiskId(202));
  EXPECT_EQ(DiskSetFor(v, 4)[0], DiskId(101));
  EXPECT_EQ(DiskSetFor(v, 5)[0], DiskId(301));
}

}  // namespace
}  // namespace spindle::client
