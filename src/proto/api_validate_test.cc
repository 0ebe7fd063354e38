#include "proto/api_validate.h"

#include <gtest/gtest.h>

namespace spindle::proto {
namespace {

// Volume names accept and reject exactly the samples StorPool's own client tests use.
TEST(ApiValidate, VolumeNamesMatchReferenceSamples) {
  for (const char* ok : {"Volume", "0.-volume", "v0l.ume", "_0", "#:"}) {
    EXPECT_TRUE(ValidateVolumeName("n", ok).ok()) << ok;
  }
  for (const char* bad : {"Volu\"me", "*vol", "volume#", "volume*", "", "#", "list", "status",
                          "a b", "a/b", "~a.b.c"}) {
    EXPECT_FALSE(ValidateVolumeName("n", bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidateVolumeName("n", std::string(199, 'a')).ok());
  EXPECT_FALSE(ValidateVolumeName("n", std::string(200, 'a')).ok());
}

// "~globalId" is accepted only where the type allows it and only with three lowercase parts.
TEST(ApiValidate, GlobalIdForms) {
  EXPECT_TRUE(ValidateVolumeNameOrGlobalId("n", "~a.a.a").ok());
  EXPECT_TRUE(ValidateSnapshotNameOrGlobalId("n", "~f00.b4r.quuxquuxqu8x").ok());
  for (const char* bad : {"a", "a.a", "a.a.a.a", ".a.a", "a.a.", "a.a.a!", "a.a.a a", "A.a.a"}) {
    EXPECT_FALSE(IsGlobalId(bad)) << bad;
    EXPECT_FALSE(ValidateVolumeNameOrGlobalId("n", std::string("~") + bad).ok()) << bad;
  }
  EXPECT_TRUE(IsClusterId("x1.y2"));
  EXPECT_FALSE(IsClusterId("x1"));
}

// Snapshot names allow a leading '*' and '@'; not a leading '#'.
TEST(ApiValidate, SnapshotNames) {
  EXPECT_TRUE(ValidateSnapshotName("n", "*:").ok());
  EXPECT_TRUE(ValidateSnapshotName("n", "snap@1").ok());
  for (const char* bad : {"#vol", "volume#", "volume*", "status"}) {
    EXPECT_FALSE(ValidateSnapshotName("n", bad).ok()) << bad;
  }
}

// Templates and placement groups reject '.', ':', '#', '*' and the reserved "list".
TEST(ApiValidate, TemplateAndPlacementNames) {
  for (const char* bad : {".", ":", "#", "*", "list", "", "a.b"}) {
    EXPECT_FALSE(ValidateTemplateName("n", bad).ok()) << bad;
    EXPECT_FALSE(ValidatePlacementGroupName("n", bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidatePlacementGroupName("n", "hdd_1-x").ok());
  EXPECT_FALSE(ValidatePlacementGroupName("n", std::string(128, 'a')).ok());
  EXPECT_TRUE(ValidateTemplateName("n", std::string(199, 'a')).ok());
  EXPECT_TRUE(ValidateTagValue("v", "").ok());
  EXPECT_FALSE(ValidateTagName("v", "").ok());
}

// Numeric ranges match the reference's samples at their edges.
TEST(ApiValidate, NumericRanges) {
  for (int64_t v : {1, 616, 3128, 0, 4095}) EXPECT_TRUE(ValidateDiskId("d", v).ok()) << v;
  for (int64_t v : {-3, 8086, 4096}) EXPECT_FALSE(ValidateDiskId("d", v).ok()) << v;
  for (int64_t v : {1, 63, 4095, 32767}) EXPECT_TRUE(ValidateServerId("s", v).ok()) << v;
  for (int64_t v : {-1, 0, 32768}) EXPECT_FALSE(ValidateServerId("s", v).ok()) << v;
  for (int64_t v : {1, 63, 4095}) EXPECT_TRUE(ValidateClientId("c", v).ok()) << v;
  for (int64_t v : {-1, 0, 4096, 32768}) EXPECT_FALSE(ValidateClientId("c", v).ok()) << v;
  EXPECT_FALSE(ValidateReplication("r", 0).ok());
  EXPECT_FALSE(ValidateReplication("r", 4).ok());
  EXPECT_TRUE(ValidateReplication("r", 3).ok());
  EXPECT_TRUE(ValidateVolumeSize("s", 512).ok());
  EXPECT_FALSE(ValidateVolumeSize("s", 513).ok());
  EXPECT_FALSE(ValidateVolumeSize("s", 0).ok());
  EXPECT_TRUE(ValidateTargetsCount("t", 32768).ok());
  EXPECT_FALSE(ValidateTargetsCount("t", 3).ok());
  EXPECT_FALSE(ValidateTargetsCount("t", 65536).ok());
}

// KV bucket names, KV keys and disk descriptions follow the reference's rules (§2.1).
TEST(ApiValidate, KvsAndDiskDescription) {
  EXPECT_TRUE(ValidateKvsName("b", "#app.cfg:1").ok());
  EXPECT_FALSE(ValidateKvsName("b", "a/b").ok());
  EXPECT_FALSE(ValidateKvsName("b", std::string(1023, 'a')).ok());
  EXPECT_TRUE(ValidateKvsKeyName("k", "any/thing?%").ok());
  EXPECT_FALSE(ValidateKvsKeyName("k", "").ok());
  EXPECT_TRUE(ValidateDiskDescription("d", "").ok());
  EXPECT_TRUE(ValidateDiskDescription("d", "slot 1 - front_a").ok());
  EXPECT_FALSE(ValidateDiskDescription("d", std::string(31, 'a')).ok());
  EXPECT_FALSE(ValidateDiskDescription("d", "a.b").ok());
}

}  // namespace
}  // namespace spindle::proto
