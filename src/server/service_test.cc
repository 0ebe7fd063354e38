// The service over a real RpcServer on loopback, driven by an RpcClient as spindle-block would.
#include "server/service.h"

// GCC 12 reports a false -Wmismatched-new-delete on asio's coroutine frame allocator when a
// long test coroutine is inlined; the frame is allocated and freed by the same asio operators.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "common/crc32c.h"
#include "server/test_util.h"

namespace spindle::server {
namespace {

using namespace std::chrono_literals;
using testing::Pattern;
using testing::RunCoroutine;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stores_.push_back(std::make_unique<ObjectStore>(io_, pool_, dir_.NewDisk(101)));
    stores_.push_back(std::make_unique<ObjectStore>(io_, pool_, dir_.NewDisk(102)));
    service_ = std::make_unique<Service>(
        ServerId(1), std::vector<ObjectStore*>{stores_[0].get(), stores_[1].get()});
    rpc_ = std::make_unique<net::RpcServer>(io_, service_->Handler());
    ASSERT_TRUE(rpc_->Listen("127.0.0.1", 0).ok());
  }
  void TearDown() override {
    rpc_->Stop();
    testing::Drain(io_);
    pool_.join();
  }

  asio::awaitable<std::shared_ptr<net::RpcClient>> Connect() {
    auto c = co_await net::RpcClient::Connect(io_.get_executor(), "127.0.0.1", rpc_->port(), 2s);
    EXPECT_TRUE(c.ok());
    co_return c.ok() ? *c : nullptr;
  }
  static std::vector<LayerId> Chain9() { return std::vector<LayerId>(1, LayerId(9)); }
  template <typename Msg>
  static std::vector<uint8_t> Encode(const Msg& m) {
    std::vector<uint8_t> out;
    proto::EncodePayload(m, out);
    return out;
  }
  static proto::WriteRequest WriteOf(uint32_t disk, uint64_t version, uint32_t offset,
                                     const std::vector<uint8_t>& data,
                                     std::vector<uint32_t>& crcs) {
    proto::ComputeChunkCrcs(data, crcs);
    return proto::WriteRequest{DiskId(disk), LayerId(9), ObjectIndex(4), version,
                               offset,       0,          crcs,           data};
  }

  asio::awaitable<void> HelloWriteReadInfoBody();
  asio::awaitable<void> RejectsBadCrcUnknownDiskBadRangeBody();
  asio::awaitable<void> ReadOfCorruptedBlockIsCorruptionBody();
  asio::awaitable<void> TrimAndBlockStatusBody();

  testing::ScratchDir dir_;
  asio::io_context io_;
  asio::thread_pool pool_{2};
  std::vector<std::unique_ptr<ObjectStore>> stores_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<net::RpcServer> rpc_;
};

// HELLO names the server and its disks; a write then reads back through the wire with valid
// per-chunk crcs, and OBJECT_INFO reports its version, state and blocks.
asio::awaitable<void> ServiceTest::HelloWriteReadInfoBody() {
  auto c = co_await Connect();
  auto hello = co_await c->Call(proto::MsgType::kHello,
                                Encode(proto::HelloRequest{proto::PeerKind::kClient, 3}), 2s);
  auto h = proto::DecodeHelloResponse(hello->payload);
  EXPECT_EQ(h->server, ServerId(1));
  EXPECT_TRUE(h.ok());
  if (h.ok()) {
    EXPECT_EQ(h->disks.size(), 2u);
    EXPECT_TRUE(h->disks.size() == 2 && h->disks[0] == DiskId(101) && h->disks[1] == DiskId(102));
  }

  auto data = Pattern(3 * 4096 + 512, 1);
  std::vector<uint32_t> crcs;
  auto w = co_await c->Call(proto::MsgType::kWrite, Encode(WriteOf(102, 1, 1024, data, crcs)), 2s);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(proto::DecodeWriteResponse(w->payload)->version, 1u);

  proto::ReadRequest rr{DiskId(102), ObjectIndex(4), 1024, static_cast<uint32_t>(data.size()),
                        Chain9()};
  auto r = co_await c->Call(proto::MsgType::kRead, Encode(rr), 2s);
  auto rd = proto::DecodeReadResponse(r->payload);
  EXPECT_TRUE(rd.ok());
  EXPECT_EQ(rd->version, 1u);
  EXPECT_EQ(std::vector<uint8_t>(rd->data.begin(), rd->data.end()), data);
  EXPECT_TRUE(proto::VerifyChunkCrcs(rd->data, rd->crcs).ok());

  auto i = co_await c->Call(
      proto::MsgType::kObjectInfo,
      Encode(proto::ObjectInfoRequest{DiskId(102), LayerId(9), ObjectIndex(4)}), 2s);
  auto info = proto::DecodeObjectInfoResponse(i->payload);
  EXPECT_EQ(info->version, 1u);
  EXPECT_EQ(info->state, 1u);
  EXPECT_EQ(info->blocks_present, 4u);
}

// A write whose data does not match its crcs is refused with kCorruption and nothing is
// stored; a disk the server does not own is kNotFound; a bad range is kInvalidArgument.
asio::awaitable<void> ServiceTest::RejectsBadCrcUnknownDiskBadRangeBody() {
  auto c = co_await Connect();
  auto data = Pattern(8192, 2);
  std::vector<uint32_t> crcs;
  auto req = WriteOf(101, 1, 0, data, crcs);
  crcs[1] ^= 1;
  auto bad = co_await c->Call(proto::MsgType::kWrite, Encode(req), 2s);
  EXPECT_EQ(bad.status().code(), Code::kCorruption);
  EXPECT_EQ(stores_[0]->Info(LayerId(9), ObjectIndex(4)).version, 0u);

  auto unknown = co_await c->Call(proto::MsgType::kWrite, Encode(WriteOf(7, 1, 0, data, crcs)), 2s);
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
  auto unknown_info =
      co_await c->Call(proto::MsgType::kObjectInfo,
                       Encode(proto::ObjectInfoRequest{DiskId(7), LayerId(9), ObjectIndex(4)}), 2s);
  EXPECT_EQ(unknown_info.status().code(), Code::kNotFound);

  proto::ReadRequest past_end{DiskId(101), ObjectIndex(0),
                              static_cast<uint32_t>(kObjectSize - 4096), 8192, Chain9()};
  auto range = co_await c->Call(proto::MsgType::kRead, Encode(past_end), 2s);
  EXPECT_TRUE(range.status().code() == Code::kInvalidArgument) << range.status().ToString();
}

// Stored data damaged on disk makes a READ answer kCorruption over the wire.
asio::awaitable<void> ServiceTest::ReadOfCorruptedBlockIsCorruptionBody() {
  auto c = co_await Connect();
  auto data = Pattern(4096, 3);
  std::vector<uint32_t> crcs;
  auto w = co_await c->Call(proto::MsgType::kWrite, Encode(WriteOf(101, 1, 0, data, crcs)), 2s);
  EXPECT_TRUE(w.ok());
  // Write the journaled block in place, then damage it there.
  jdisk::JStore& js = stores_[0]->mutable_store();
  EXPECT_TRUE(js.Checkpoint().ok());
  auto at = js.BlockOffset(LayerId(9), ObjectIndex(4), 0);
  EXPECT_TRUE(at.ok());
  {
    std::string path = js.path();
    std::FILE* f = std::fopen(path.c_str(), "r+b");
    std::fseek(f, static_cast<long>(*at + 10), SEEK_SET);
    std::fputc(data[10] ^ 0xff, f);
    std::fclose(f);
  }
  proto::ReadRequest rr{DiskId(101), ObjectIndex(4), 0, 4096, Chain9()};
  auto r = co_await c->Call(proto::MsgType::kRead, Encode(rr), 2s);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
}

// TRIM is versioned like WRITE over the wire and makes its range read as zeros;
// BLOCK_STATUS then reports the trimmed blocks as holes and the rest as data, and refuses a
// range that is not 4 KiB-aligned.
asio::awaitable<void> ServiceTest::TrimAndBlockStatusBody() {
  auto c = co_await Connect();
  auto data = Pattern(4 * 4096, 4);
  std::vector<uint32_t> crcs;
  auto w = co_await c->Call(proto::MsgType::kWrite, Encode(WriteOf(101, 1, 0, data, crcs)), 2s);
  EXPECT_TRUE(w.ok());
  proto::TrimRequest trim{DiskId(101), LayerId(9), ObjectIndex(4), 2, 4096, 2 * 4096};
  auto t = co_await c->Call(proto::MsgType::kTrim, Encode(trim), 2s);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(proto::DecodeWriteResponse(t->payload)->version, 2u);

  proto::ReadRequest rr{DiskId(101), ObjectIndex(4), 0, 4 * 4096, Chain9()};
  auto r = co_await c->Call(proto::MsgType::kRead, Encode(rr), 2s);
  auto rd = proto::DecodeReadResponse(r->payload);
  std::fill(data.begin() + 4096, data.begin() + 3 * 4096, 0);
  EXPECT_TRUE(rd.ok() && std::vector<uint8_t>(rd->data.begin(), rd->data.end()) == data);

  proto::BlockStatusRequest bs{DiskId(101), ObjectIndex(4), 0, 6 * 4096, Chain9()};
  auto b = co_await c->Call(proto::MsgType::kBlockStatus, Encode(bs), 2s);
  auto st = proto::DecodeBlockStatusResponse(b->payload);
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(st->blocks, 6u);
  EXPECT_EQ(st->bitmap, std::vector<uint8_t>{0x09});  // blocks 0 and 3
  bs.offset = 512;
  auto bad = co_await c->Call(proto::MsgType::kBlockStatus, Encode(bs), 2s);
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

TEST_F(ServiceTest, TrimAndBlockStatus) {
  RunCoroutine(io_, TrimAndBlockStatusBody());
}
TEST_F(ServiceTest, HelloWriteReadInfo) {
  RunCoroutine(io_, HelloWriteReadInfoBody());
}
TEST_F(ServiceTest, RejectsBadCrcUnknownDiskBadRange) {
  RunCoroutine(io_, RejectsBadCrcUnknownDiskBadRangeBody());
}
TEST_F(ServiceTest, ReadOfCorruptedBlockIsCorruption) {
  RunCoroutine(io_, ReadOfCorruptedBlockIsCorruptionBody());
}

}  // namespace
}  // namespace spindle::server
