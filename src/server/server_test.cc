#include "server/server.h"

#include <gtest/gtest.h>

namespace spindle::server {
namespace {

// The keys a server cannot start without.
Config MinimalConfig() {
  Config c;
  c.Set("SP_OURID", "1");
  c.Set("SP_SERVER_DISKS", "/tmp/a.img");
  c.Set("SP_CLUSTER_ID", "a.b");
  return c;
}

// SP_SERVER_DISK_THREADS: 0 (auto: sized for the disks) by default, 0..kMaxDiskThreads, the rest
// refused naming the key.
TEST(ServerOptions, DiskThreads) {
  Config c = MinimalConfig();
  auto o = ServerOptions::FromConfig(c);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->disk_threads, 0u);
  c.Set("SP_SERVER_DISK_THREADS", "16");
  o = ServerOptions::FromConfig(c);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->disk_threads, 16u);
  for (const char* bad : {"-1", "65", "many"}) {
    c.Set("SP_SERVER_DISK_THREADS", bad);
    o = ServerOptions::FromConfig(c);
    EXPECT_FALSE(o.ok()) << bad;
    if (!o.ok()) {
      EXPECT_NE(o.status().message().find("SP_SERVER_DISK_THREADS"), std::string::npos);
    }
  }
}

// SP_CACHE_SIZE: MiB per server, kDefaultCacheMb unless set, 0 turns the cache off; out of range
// or not a number is refused naming the key.
TEST(ServerOptions, CacheSize) {
  Config c = MinimalConfig();
  auto o = ServerOptions::FromConfig(c);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->cache_bytes, static_cast<uint64_t>(kDefaultCacheMb) * kMiB);
  c.Set("SP_CACHE_SIZE", "0");
  o = ServerOptions::FromConfig(c);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->cache_bytes, 0u);
  c.Set("SP_CACHE_SIZE", "256");
  o = ServerOptions::FromConfig(c);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->cache_bytes, 256 * kMiB);
  for (const char* bad : {"-1", "99999999", "lots"}) {
    c.Set("SP_CACHE_SIZE", bad);
    o = ServerOptions::FromConfig(c);
    ASSERT_FALSE(o.ok()) << bad;
    EXPECT_NE(o.status().message().find("SP_CACHE_SIZE"), std::string::npos)
        << o.status().ToString();
  }
}

}  // namespace
}  // namespace spindle::server
