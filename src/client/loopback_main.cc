// spindle-block-loopback: a TEST tool, not a product binary. Runs the client's NBD server
// and volume I/O against three in-memory replica servers (real net::RpcServer, real wire
// protocol) with a fixed state: "vol1" (rw, 256 MiB, 3 replicas) and "ro1" (ro, 64 MiB), so
// NBD clients and tests/integration/test_nbd_bad_input.py can run without a cluster.
//   spindle-block-loopback --socket /tmp/x/nbd.sock [--port 0]
#include <algorithm>
#include <array>
#include <csignal>
#include <cstring>
#include <map>
#include <tuple>

#include <CLI/CLI.hpp>
#include <asio.hpp>

#include "client/nbd_server.h"
#include "client/server_pool.h"
#include "client/volume_table.h"
#include "common/log.h"
#include "common/units.h"
#include "net/rpc.h"

namespace spindle::client {
namespace {

// Sparse in-memory replicas of all disks of one server: 4 KiB blocks per (disk, layer, object).
class MemoryServer {
 public:
  asio::awaitable<net::Reply> Handle(net::Frame f) {
    std::span<const uint8_t> p(f.payload);
    switch (static_cast<proto::MsgType>(f.header.type)) {
      case proto::MsgType::kHello:
        co_return Encoded(proto::HelloResponse{ServerId(1), {}});
      case proto::MsgType::kObjectInfo: {
        auto r = proto::DecodeObjectInfoRequest(p);
        if (!r.ok()) co_return net::Reply::Fail(r.status());
        auto& o = objects_[Key{r->disk.value(), r->layer.value(), r->object.value()}];
        co_return Encoded(proto::ObjectInfoResponse{o.version, 1, 0});
      }
      case proto::MsgType::kWrite: {
        auto r = proto::DecodeWriteRequest(p);
        if (!r.ok()) co_return net::Reply::Fail(r.status());
        co_return Write(*r);
      }
      case proto::MsgType::kRead: {
        auto r = proto::DecodeReadRequest(p);
        if (!r.ok()) co_return net::Reply::Fail(r.status());
        co_return Read(*r);
      }
      case proto::MsgType::kTrim: {
        auto r = proto::DecodeTrimRequest(p);
        if (!r.ok()) co_return net::Reply::Fail(r.status());
        co_return Trim(*r);
      }
      case proto::MsgType::kBlockStatus: {
        auto r = proto::DecodeBlockStatusRequest(p);
        if (!r.ok()) co_return net::Reply::Fail(r.status());
        co_return BlockStatus(*r);
      }
    }
    co_return net::Reply::Fail(Error(Code::kUnimplemented, "type {}", f.header.type));
  }

 private:
  using Key = std::tuple<uint32_t, uint64_t, uint32_t>;
  using Block = std::array<uint8_t, kBlockSize>;
  struct Object {
    uint64_t version = 0;
    std::map<uint32_t, Block> blocks;
  };

  template <typename M>
  static net::Reply Encoded(const M& m) {
    std::vector<uint8_t> out;
    proto::EncodePayload(m, out);
    return net::Reply::Ok(std::move(out));
  }

  // Calls fn(block index, offset in block, offset in data, length) per 4 KiB block touched.
  template <typename Fn>
  static void ForBlocks(uint64_t offset, uint64_t length, Fn fn) {
    for (uint64_t done = 0; done < length;) {
      const uint64_t pos = offset + done;
      const uint64_t n = std::min(length - done, kBlockSize - pos % kBlockSize);
      fn(static_cast<uint32_t>(pos / kBlockSize), pos % kBlockSize, done, n);
      done += n;
    }
  }

  net::Reply Write(const proto::WriteRequest& r) {
    SP_ASSERT(proto::VerifyChunkCrcs(r.data, r.crcs).ok());
    auto& o = objects_[Key{r.disk.value(), r.layer.value(), r.object.value()}];
    if (r.version <= o.version) return Encoded(proto::WriteResponse{o.version});
    ForBlocks(r.offset, r.data.size(), [&](uint32_t b, uint64_t in_block, uint64_t at, uint64_t n) {
      auto [it, fresh] = o.blocks.try_emplace(b);
      if (fresh) it->second.fill(0);
      std::memcpy(it->second.data() + in_block, r.data.data() + at, n);
    });
    o.version = r.version;
    return Encoded(proto::WriteResponse{o.version});
  }

  // Whole blocks are dropped, partial ones zero-filled (one-layer semantics: this test tool
  // keeps no "trimmed" marker for chains).
  net::Reply Trim(const proto::TrimRequest& r) {
    auto& o = objects_[Key{r.disk.value(), r.layer.value(), r.object.value()}];
    if (r.version <= o.version) return Encoded(proto::WriteResponse{o.version});
    ForBlocks(r.offset, r.length, [&](uint32_t b, uint64_t in_block, uint64_t, uint64_t n) {
      auto it = o.blocks.find(b);
      if (it == o.blocks.end()) return;
      if (n == kBlockSize) {
        o.blocks.erase(it);
      } else {
        std::memset(it->second.data() + in_block, 0, n);
      }
    });
    o.version = r.version;
    return Encoded(proto::WriteResponse{o.version});
  }

  net::Reply BlockStatus(const proto::BlockStatusRequest& r) {
    proto::BlockStatusResponse resp;
    resp.blocks = static_cast<uint32_t>(r.length / kBlockSize);
    resp.bitmap.assign((resp.blocks + 7) / 8, 0);
    for (uint32_t i = 0; i < resp.blocks; ++i) {
      const uint32_t b = static_cast<uint32_t>(r.offset / kBlockSize) + i;
      for (LayerId layer : r.chain) {
        auto o = objects_.find(Key{r.disk.value(), layer.value(), r.object.value()});
        if (o != objects_.end() && o->second.blocks.count(b) != 0) {
          resp.bitmap[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
          break;
        }
      }
    }
    return Encoded(resp);
  }

  net::Reply Read(const proto::ReadRequest& r) {
    std::vector<uint8_t> data(r.length, 0);
    ForBlocks(r.offset, r.length, [&](uint32_t b, uint64_t in_block, uint64_t at, uint64_t n) {
      for (LayerId layer : r.chain) {
        auto o = objects_.find(Key{r.disk.value(), layer.value(), r.object.value()});
        if (o == objects_.end()) continue;
        auto blk = o->second.blocks.find(b);
        if (blk == o->second.blocks.end()) continue;
        std::memcpy(data.data() + at, blk->second.data() + in_block, n);
        break;
      }
    });
    std::vector<uint32_t> crcs;
    proto::ComputeChunkCrcs(data, crcs);
    auto top = objects_.find(Key{r.disk.value(), r.chain[0].value(), r.object.value()});
    proto::ReadResponse resp{top == objects_.end() ? 0 : top->second.version, crcs, data};
    return Encoded(resp);
  }

  std::map<Key, Object> objects_;
};

VolumeSpec Spec(std::string name, std::string gid, uint64_t layer, uint64_t size, bool ro) {
  VolumeSpec v;
  v.name = std::move(name);
  v.global_id = std::move(gid);
  v.read_only = ro;
  v.layer = LayerId(layer);
  v.chain = {LayerId(layer)};
  v.size_bytes = size;
  v.replication = 3;
  v.disk_sets = {{DiskId(101), DiskId(201), DiskId(301)}, {DiskId(201), DiskId(301), DiskId(101)}};
  return v;
}

}  // namespace
}  // namespace spindle::client

int main(int argc, char** argv) {
  using namespace spindle;          // NOLINT
  using namespace spindle::client;  // NOLINT
  CLI::App app{"spindle-block-loopback: NBD server over in-memory replicas (tests only)"};
  std::string socket_path;
  uint16_t port = 0;
  app.add_option("--socket", socket_path, "Unix socket path")->required();
  app.add_option("--port", port, "TCP port on 127.0.0.1 (0: any)");
  CLI11_PARSE(app, argc, argv);
  InitLogging("spindle-block-loopback", "debug");

  asio::io_context io(1);
  std::vector<std::unique_ptr<MemoryServer>> stores;
  std::vector<std::unique_ptr<net::RpcServer>> servers;
  ClientState state;
  state.generation = 1;
  for (uint32_t s = 1; s <= 3; ++s) {
    auto* store = stores.emplace_back(std::make_unique<MemoryServer>()).get();
    auto& srv = servers.emplace_back(std::make_unique<net::RpcServer>(
        io, [store](net::Frame f) { return store->Handle(std::move(f)); }));
    if (!srv->Listen("127.0.0.1", 0).ok()) return 1;
    state.disks[DiskId(s * 100 + 1)] = DiskEndpoint{ServerId(s), "127.0.0.1", srv->port(), true};
  }
  state.volumes.push_back(Spec("vol1", "a.b.1", 7, 256 * kMiB, false));
  state.volumes.push_back(Spec("ro1", "a.b.2", 8, 64 * kMiB, true));

  ServerPool pool(io.get_executor(), ClientId(1));
  VolumeTable table(io.get_executor(), pool);
  (void)table.Apply(state);
  NbdServer nbd(io, table, NbdServerOptions{socket_path, "127.0.0.1", port, true});
  if (auto s = nbd.Start(); !s.ok()) {
    SP_LOG_ERROR("{}", s.ToString());
    return 1;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code&, int) {
    nbd.Stop();
    pool.CloseAll();
    for (auto& s : servers) s->Stop();
  });
  io.run();
  return 0;
}
