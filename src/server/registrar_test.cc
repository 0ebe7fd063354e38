#include "server/registrar.h"

#include "server/test_util.h"

namespace spindle::server {
namespace {

// The ServiceRegister body carries the fields docs/formats/internal-api.md lists, with the
// disk's live statistics (slots used, bytes stored) after a write.
TEST(Registrar, BodyMatchesInternalApi) {
  testing::ScratchDir dir;
  auto store = dir.NewDisk(101, 3);
  ASSERT_TRUE(store->Write(LayerId(1), ObjectIndex(0), 1, 0, testing::Pattern(8192, 1)).ok());
  Registrar r(net::ApiEndpoint{}, {ServerId(2), NodeId(2), "127.0.0.1", 47002, 1700000000},
              {store.get()});
  nlohmann::json b = r.Body();
  EXPECT_EQ(b["type"], "server");
  EXPECT_EQ(b["id"], 2);
  EXPECT_EQ(b["nodeId"], 2);
  EXPECT_EQ(b["port"], 47002);
  EXPECT_EQ(b["startTime"], 1700000000);
  ASSERT_EQ(b["disks"].size(), 1u);
  const auto& d = b["disks"][0];
  EXPECT_EQ(d["id"], 101);
  EXPECT_EQ(d["device"], store->path());
  EXPECT_EQ(d["objectsCount"], 3);
  EXPECT_EQ(d["objectsAllocated"], 1);
  EXPECT_EQ(d["objectsOnDiskSize"], jdisk::kChunkBytes);  // thin: one 64 KiB chunk
  EXPECT_EQ(d["storedSize"], 8192);
  EXPECT_EQ(d["sectorsCount"], testing::ScratchDir::DiskBytes(3) / kSectorSize);
}

// With mgmt unreachable the registrar keeps retrying without blocking, and Stop() returns
// promptly.
TEST(Registrar, UnreachableMgmtRetriesAndStops) {
  testing::ScratchDir dir;
  auto store = dir.NewDisk(101, 1);
  net::ApiEndpoint ep;
  ep.port = 1;  // nothing listens on port 1 on loopback
  Registrar r(ep, {ServerId(1), NodeId(1), "127.0.0.1", 47001, 0}, {store.get()});
  auto t0 = std::chrono::steady_clock::now();
  r.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  r.Stop();
  EXPECT_EQ(r.registrations(), 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

}  // namespace
}  // namespace spindle::server
