#include "client/volume.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include "client/nbd_server.h"
#include "client/volume_table.h"
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

// Reads start on the read tier: the tail alone by default, else spread by offset in 1 MiB
// stretches over the tier's replicas; every replica is in the order once, the rest tail first.
TEST(ReadOrder, SpreadsOverTheReadTierOnly) {
  const DiskSet set{DiskId(1), DiskId(2), DiskId(3)};
  EXPECT_EQ(ReadOrder(set, 1, 0), (DiskSet{DiskId(3), DiskId(2), DiskId(1)}));
  EXPECT_EQ(ReadOrder(set, 1, 5 * kReadSpreadBytes), (DiskSet{DiskId(3), DiskId(2), DiskId(1)}));
  EXPECT_EQ(ReadOrder(set, 2, 0), (DiskSet{DiskId(2), DiskId(3), DiskId(1)}));
  EXPECT_EQ(ReadOrder(set, 2, kReadSpreadBytes), (DiskSet{DiskId(3), DiskId(2), DiskId(1)}));
  EXPECT_EQ(ReadOrder(set, 3, 0), (DiskSet{DiskId(1), DiskId(3), DiskId(2)}));
  EXPECT_EQ(ReadOrder(set, 3, kReadSpreadBytes + 4096), (DiskSet{DiskId(2), DiskId(3), DiskId(1)}));
  EXPECT_EQ(ReadOrder(set, 3, 2 * kReadSpreadBytes), (DiskSet{DiskId(3), DiskId(2), DiskId(1)}));
  EXPECT_EQ(ReadOrder({DiskId(7)}, 3, kReadSpreadBytes), (DiskSet{DiskId(7)}));
}

// A new layer with the same globalId, name, size and rights is a switch of the same Volume
// object (its connections stay); SwitchLayer takes the new chain and fresh versions; a size
// change replaces the Volume instead.
// A second NBD server on the same Unix socket path (another spindle-block on the same
// config) is refused and leaves the first one's socket in place; a stale socket file (nobody
// accepts on it) is replaced.
TEST(NbdServer, LiveUnixSocketIsNotTakenOver) {
  asio::io_context io;
  ServerPool pool(io.get_executor(), ClientId(4));
  VolumeTable table(io.get_executor(), pool);
  const std::string path = "/tmp/spindle-nbd-test-" + std::to_string(::getpid()) + ".sock";
  NbdServerOptions o;
  o.unix_path = path;
  o.tcp = false;
  {
    NbdServer first(io, table, o);
    ASSERT_TRUE(first.Start().ok());
    {
      NbdServer second(io, table, o);
      Status s = second.Start();
      EXPECT_EQ(s.code(), Code::kAlreadyExists) << s.ToString();
      second.Stop();
    }
    asio::local::stream_protocol::socket c(io);
    asio::error_code ec;
    c.connect(asio::local::stream_protocol::endpoint(path), ec);
    EXPECT_FALSE(ec) << "the first server's socket is gone: " << ec.message();
    c.close();
    first.Stop();
  }
  // What a killed process leaves behind: the socket file, nobody accepting on it.
  {
    asio::local::stream_protocol::acceptor stale(io, asio::local::stream_protocol::endpoint(path));
    stale.close();
  }
  NbdServer third(io, table, o);
  EXPECT_TRUE(third.Start().ok());
  third.Stop();
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // Stop removed its own socket file
  ::unlink(path.c_str());
}

TEST(VolumeTable, LayerChangeIsASwitch) {
  asio::io_context io;
  ServerPool pool(io.get_executor(), ClientId(4));
  VolumeTable table(io.get_executor(), pool);
  VolumeSpec v;
  v.name = "v";
  v.global_id = "a.b.1";
  v.layer = LayerId(1);
  v.chain = {LayerId(1)};
  v.size_bytes = kObjectSize;
  v.disk_sets = {{DiskId(101)}};
  ClientState st;
  st.generation = 1;
  st.volumes = {v};
  ASSERT_TRUE(table.Apply(st).gone.empty());
  auto before = table.Find("v");
  auto old_versions = before->versions();
  st.generation = 2;
  st.volumes[0].layer = LayerId(2);
  st.volumes[0].chain = {LayerId(2), LayerId(1)};
  VolumeTable::Changes c = table.Apply(st);
  EXPECT_TRUE(c.gone.empty());
  ASSERT_EQ(c.switches.size(), 1u);
  EXPECT_EQ(c.switches[0].first, before);
  asio::co_spawn(io, before->SwitchLayer(c.switches[0].second), asio::detached);
  io.run();
  EXPECT_EQ(table.Find("v"), before);
  EXPECT_EQ(before->spec().layer, LayerId(2));
  EXPECT_EQ(before->spec().chain.size(), 2u);
  EXPECT_NE(before->versions(), old_versions);
  st.volumes[0].size_bytes = 2 * kObjectSize;
  c = table.Apply(st);
  EXPECT_EQ(c.gone.size(), 1u);
  EXPECT_TRUE(c.switches.empty());
}

}  // namespace
}  // namespace spindle::client
