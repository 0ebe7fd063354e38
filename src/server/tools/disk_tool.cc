// spindle-disk: initialise and inspect Spindle disks, and read an object from a running server.
//   spindle-disk init --file PATH --disk-id N --cluster-id ID --size BYTES
//   spindle-disk info --file PATH                       (superblock + objects as JSON)
//   spindle-disk check --file PATH     (verifies every structure and block crc, read-only)
//   spindle-disk list-objects --file PATH   (one line per object, read-only:
//       "layer object version state blocks", state ok|outdated|undef, blocks = present blocks)
//   spindle-disk block-offset --file PATH --layer L --object I --block B   (read-only: prints
//       {"offset", "dirtyBlocks", "journalRecordsReplayed"}: where the block is stored in the
//       file; dirtyBlocks > 0 means some images are still only in the journal and the next
//       open writes them in place — corruption tests flip bytes at offset)
//   spindle-disk read-object --server HOST:PORT --disk N --layer L --object I
//       (HELLO, OBJECT_INFO, READ of the whole object; prints {"version", "state",
//        "blocks_present", "crc32c"} — integration tests compare replicas with it)
//   spindle-disk read-object --file PATH --layer L --object I [--out DATA]
//       (read-only, from a disk file: that layer's own content, no chain; prints the same
//        JSON plus "blocks_zeroed" and "map_crc32c" (of the present/zeroed maps); --out writes
//        the 32 MiB object, zeros where no block is present)
// GCC 12 reports a false -Wmismatched-new-delete on asio's coroutine frame allocator when a
// long coroutine is inlined; the frame is allocated and freed by the same asio operators.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <nlohmann/json.hpp>

#include "common/crc32c.h"
#include "env/env.h"
#include "net/rpc.h"
#include "proto/wire.h"
#include "server/disk_store/jstore.h"

namespace spindle::server {
namespace {

constexpr std::chrono::milliseconds kRpcTimeout{30000};

int Fail(const Status& s) {
  std::cerr << "spindle-disk: " << s.ToString() << "\n";
  return 1;
}

int Init(const std::string& file, uint32_t disk_id, const std::string& cluster, uint64_t size) {
  Status s = jdisk::JStore::Init(env::Env::Default(), file, {DiskId(disk_id), cluster, size, 0});
  if (!s.ok()) return Fail(s);
  std::cout << "OK\n";
  return 0;
}

// Inspection opens read-only: the journal is replayed in memory, nothing is written.
Result<std::unique_ptr<jdisk::JStore>> OpenReadOnly(const std::string& file) {
  jdisk::StoreOptions opts;
  opts.read_only = true;
  return jdisk::JStore::Open(env::Env::Default(), file, "", opts);
}

int Check(const std::string& file) {
  auto store = OpenReadOnly(file);
  if (!store.ok()) return Fail(store.status());
  std::vector<std::string> problems = (*store)->CheckIndex();
  auto bad_blocks = (*store)->Verify();
  if (!bad_blocks.ok()) return Fail(bad_blocks.status());
  const jdisk::OpenReport& r = (*store)->open_report();
  bool ok = problems.empty() && bad_blocks->empty();
  nlohmann::json out = {{"checkpointGeneration", r.checkpoint_generation},
                        {"otherCheckpointCopy", r.other_copy},
                        {"journalRecordsReplayed", r.replayed_records},
                        {"lastSeq", r.last_seq},
                        {"objects", (*store)->Stats().objects},
                        {"indexProblems", problems},
                        {"badBlocks", *bad_blocks},
                        {"ok", ok}};
  std::cout << out.dump(2) << "\n";
  return ok ? 0 : 1;
}

int Info(const std::string& file) {
  auto store = OpenReadOnly(file);
  if (!store.ok()) return Fail(store.status());
  const jdisk::Superblock& sb = (*store)->superblock();
  jdisk::StoreStats st = (*store)->Stats();
  nlohmann::json objects = nlohmann::json::array();
  for (const jdisk::ObjectEntry& e : (*store)->List()) {
    objects.push_back({{"layer", e.layer.value()},
                       {"object", e.object.value()},
                       {"chunks", e.chunks},
                       {"version", e.info.version},
                       {"state", static_cast<uint32_t>(e.info.state)},
                       {"blocks_present", e.info.blocks_present}});
  }
  nlohmann::json out = {{"formatVersion", sb.format_version}, {"diskId", sb.disk.value()},
                        {"clusterId", sb.cluster_id},         {"deviceBytes", sb.device_bytes},
                        {"journalBytes", sb.journal_bytes},   {"dataBytes", st.data_bytes},
                        {"onDiskBytes", st.on_disk_bytes},    {"bytesStored", st.bytes_stored},
                        {"initTime", sb.init_unix_seconds},   {"objects", std::move(objects)}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

const char* StateName(jdisk::ObjectState state) {
  switch (state) {
    case jdisk::ObjectState::kOk:
      return "ok";
    case jdisk::ObjectState::kOutdated:
      return "outdated";
    default:
      return "undef";
  }
}

int ListObjects(const std::string& file) {
  auto store = OpenReadOnly(file);
  if (!store.ok()) return Fail(store.status());
  for (const jdisk::ObjectEntry& e : (*store)->List()) {
    std::cout << e.layer.value() << " " << e.object.value() << " " << e.info.version << " "
              << StateName(e.info.state) << " " << e.info.blocks_present << "\n";
  }
  return 0;
}

int BlockOffset(const std::string& file, LayerId layer, ObjectIndex object, uint32_t block) {
  auto store = OpenReadOnly(file);
  if (!store.ok()) return Fail(store.status());
  auto at = (*store)->BlockOffset(layer, object, block);
  if (!at.ok()) return Fail(at.status());
  nlohmann::json j{{"offset", *at},
                   {"dirtyBlocks", (*store)->Stats().dirty_blocks},
                   {"journalRecordsReplayed", (*store)->open_report().replayed_records}};
  std::cout << j.dump() << "\n";
  return 0;
}

// One layer's own content of one object, from a disk file (JStore::Export).
int ReadObjectFromFile(const std::string& file, LayerId layer, ObjectIndex object,
                       const std::string& out_path) {
  auto store = OpenReadOnly(file);
  if (!store.ok()) return Fail(store.status());
  const jdisk::ObjectInfo info = (*store)->Info(layer, object);
  auto image = (*store)->Export(layer, object);
  if (!image.ok()) return Fail(image.status());
  std::vector<uint8_t> whole(kObjectSize, 0);
  std::vector<uint8_t> maps(2 * kBlocksPerObject);
  uint32_t present = 0, zeroed = 0;
  for (uint32_t b = 0; b < kBlocksPerObject; ++b) {
    maps[b] = image->present[b];
    maps[kBlocksPerObject + b] = image->zeroed[b];
    zeroed += image->zeroed[b];
    if (!image->present[b]) continue;
    std::memcpy(whole.data() + uint64_t{b} * kBlockSize,
                image->data.data() + uint64_t{present} * kBlockSize, kBlockSize);
    ++present;
  }
  if (!out_path.empty()) {
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(whole.data()),
              static_cast<std::streamsize>(whole.size()));
    if (!out) return Fail(Error(Code::kIoError, "cannot write {}", out_path));
  }
  nlohmann::json j{{"version", image->version},
                   {"state", static_cast<uint32_t>(info.state)},
                   {"blocks_present", present},
                   {"blocks_zeroed", zeroed},
                   {"crc32c", Crc32c(whole.data(), whole.size())},
                   {"map_crc32c", Crc32c(maps.data(), maps.size())}};
  std::cout << j.dump() << "\n";
  return 0;
}

struct ReadObjectArgs {
  std::string host;
  uint16_t port = 0;
  DiskId disk;
  LayerId layer;
  ObjectIndex object;
};

asio::awaitable<Result<nlohmann::json>> ReadObject(ReadObjectArgs a);

// Runs ReadObject and stores its result (co_spawn needs a default-constructible result).
asio::awaitable<void> ReadObjectInto(ReadObjectArgs a, std::optional<Result<nlohmann::json>>* out) {
  *out = co_await ReadObject(std::move(a));
}

asio::awaitable<Result<nlohmann::json>> Exchange(std::shared_ptr<net::RpcClient> client,
                                                 ReadObjectArgs a);

asio::awaitable<Result<nlohmann::json>> ReadObject(ReadObjectArgs a) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await net::RpcClient::Connect(ex, a.host, a.port, kRpcTimeout);
  if (!conn.ok()) co_return conn.status();
  auto result = co_await Exchange(*conn, std::move(a));
  (*conn)->Close();  // ends the client's reader so that io_context::run returns
  co_return result;
}

// HELLO, OBJECT_INFO, then READ of the whole object in its layer alone.
asio::awaitable<Result<nlohmann::json>> Exchange(std::shared_ptr<net::RpcClient> client,
                                                 ReadObjectArgs a) {
  std::vector<uint8_t> payload;
  proto::EncodePayload(proto::HelloRequest{proto::PeerKind::kTool, 0}, payload);
  auto hello_frame = co_await client->Call(proto::MsgType::kHello, payload, kRpcTimeout);
  if (!hello_frame.ok()) co_return hello_frame.status();
  auto hello = proto::DecodeHelloResponse(hello_frame->payload);
  if (!hello.ok()) co_return hello.status();
  if (std::find(hello->disks.begin(), hello->disks.end(), a.disk) == hello->disks.end()) {
    co_return Error(Code::kNotFound, "server {} has no disk {}", hello->server.value(),
                    a.disk.value());
  }
  proto::EncodePayload(proto::ObjectInfoRequest{a.disk, a.layer, a.object}, payload);
  auto info_frame = co_await client->Call(proto::MsgType::kObjectInfo, payload, kRpcTimeout);
  if (!info_frame.ok()) co_return info_frame.status();
  auto info = proto::DecodeObjectInfoResponse(info_frame->payload);
  if (!info.ok()) co_return info.status();
  proto::ReadRequest read{a.disk, a.object, 0, static_cast<uint32_t>(kObjectSize),
                          std::vector<LayerId>(1, a.layer)};
  proto::EncodePayload(read, payload);
  auto read_frame = co_await client->Call(proto::MsgType::kRead, payload, kRpcTimeout);
  if (!read_frame.ok()) co_return read_frame.status();
  auto data = proto::DecodeReadResponse(read_frame->payload);
  if (!data.ok()) co_return data.status();
  Status crc = proto::VerifyChunkCrcs(data->data, data->crcs);
  if (!crc.ok()) co_return crc;
  co_return nlohmann::json{{"version", info->version},
                           {"state", info->state},
                           {"blocks_present", info->blocks_present},
                           {"crc32c", Crc32c(data->data.data(), data->data.size())}};
}

int RunReadObject(const std::string& server, const ReadObjectArgs& partial) {
  ReadObjectArgs a = partial;
  auto colon = server.rfind(':');
  if (colon == std::string::npos) return Fail(Error(Code::kInvalidArgument, "--server HOST:PORT"));
  a.host = server.substr(0, colon);
  int port = std::atoi(server.c_str() + colon + 1);
  if (port <= 0 || port > 65535)
    return Fail(Error(Code::kInvalidArgument, "bad port in {}", server));
  a.port = static_cast<uint16_t>(port);
  asio::io_context io;
  std::optional<Result<nlohmann::json>> result;
  asio::co_spawn(io, ReadObjectInto(a, &result), asio::detached);
  io.run();
  if (!result || !result->ok()) {
    return Fail(result ? result->status() : Error(Code::kInternal, "no result"));
  }
  std::cout << (*result)->dump() << "\n";
  return 0;
}

}  // namespace
}  // namespace spindle::server

int main(int argc, char** argv) {
  using namespace spindle::server;
  CLI::App app{"spindle-disk: Spindle disk tool"};
  app.require_subcommand(1);
  std::string file, cluster, server;
  uint32_t disk_id = 0, object = 0;
  uint64_t size = 0, layer = 0;
  auto* init = app.add_subcommand("init", "write a superblock (creates a sparse file)");
  init->add_option("--file", file, "disk file or block device")->required();
  init->add_option("--disk-id", disk_id, "disk id 0..4095")->required();
  init->add_option("--cluster-id", cluster, "cluster id (SP_CLUSTER_ID)")->required();
  init->add_option("--size", size, "size in bytes (0: current size)");
  auto* info = app.add_subcommand("info", "print superblock and objects as JSON");
  info->add_option("--file", file, "disk file or block device")->required();
  auto* check = app.add_subcommand("check", "verify every structure and block, read-only");
  check->add_option("--file", file, "disk file or block device")->required();
  auto* list = app.add_subcommand("list-objects", "one line per object, read-only");
  list->add_option("--file", file, "disk file or block device")->required();
  uint32_t block = 0;
  auto* offset = app.add_subcommand("block-offset", "where a stored block is in the file");
  offset->add_option("--file", file, "disk file or block device (read-only)")->required();
  offset->add_option("--layer", layer, "layer id")->required();
  offset->add_option("--object", object, "object index")->required();
  offset->add_option("--block", block, "4 KiB block within the object")->required();
  auto* read = app.add_subcommand("read-object",
                                  "read one object from a server, or one layer's own content "
                                  "of it from a disk file");
  std::string out;
  auto* read_server = read->add_option("--server", server, "HOST:PORT");
  auto* read_file = read->add_option("--file", file, "disk file or block device (read-only)");
  read_server->excludes(read_file);
  auto* read_disk =
      read->add_option("--disk", disk_id, "disk id (with --server)")->needs(read_server);
  read->add_option("--layer", layer, "layer id")->required();
  read->add_option("--object", object, "object index")->required();
  read->add_option("--out", out, "write the object's bytes here (with --file)")->needs(read_file);
  CLI11_PARSE(app, argc, argv);
  if (init->parsed()) return Init(file, disk_id, cluster, size);
  if (info->parsed()) return Info(file);
  if (check->parsed()) return Check(file);
  if (list->parsed()) return ListObjects(file);
  if (offset->parsed()) {
    return BlockOffset(file, spindle::LayerId(layer), spindle::ObjectIndex(object), block);
  }
  if (!file.empty()) {
    return ReadObjectFromFile(file, spindle::LayerId(layer), spindle::ObjectIndex(object), out);
  }
  if (server.empty() || read_disk->count() == 0) {
    return Fail(spindle::Error(spindle::Code::kInvalidArgument,
                               "read-object needs --server and --disk, or --file"));
  }
  ReadObjectArgs a;
  a.disk = spindle::DiskId(disk_id);
  a.layer = spindle::LayerId(layer);
  a.object = spindle::ObjectIndex(object);
  return RunReadObject(server, a);
}
