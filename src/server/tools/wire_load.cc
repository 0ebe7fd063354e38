// spindle-wire-load: drives one server's disk over the wire protocol and checks what survives.
//   spindle-wire-load write  --server HOST:PORT --disk N --layer L --objects K --seconds S
//                            --log FILE [--seed X]
//   spindle-wire-load verify --server HOST:PORT --disk N --layer L --log FILE
// `write` sends random writes (512 B .. 1 MiB, sector aligned, some crossing object boundaries,
// so split in two) one at a time, each with the object's next version; before sending it
// appends "I obj version offset length seed" to the log and after the acknowledgement
// "A obj version". It stops after S seconds or when the server goes away (a crash test kills
// it). Data is a pure function of the seed, so the log is enough to rebuild every object.
// `verify` replays the log: for each object the server's version must be at least the highest
// acknowledged one and at most the highest intended one, and the object's bytes must equal the
// intents applied up to that version. An intent whose version is reused later was never
// applied (the writer learnt a lower version after a restart) and is dropped. Exit 0 = ok.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // as in disk_tool.cc

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <nlohmann/json.hpp>

#include "net/rpc.h"
#include "proto/wire.h"

namespace spindle::server {
namespace {

constexpr std::chrono::milliseconds kTimeout{10000};
constexpr uint32_t kMaxWriteBytes = 1024 * 1024;
constexpr uint32_t kMaxObjects = 64;

struct Args {
  std::string host;
  uint16_t port = 0;
  DiskId disk;
  LayerId layer;
  uint32_t objects = 4;
  double seconds = 5;
  std::string log;
  uint64_t seed = 1;
};

void Fill(uint64_t seed, std::span<uint8_t> out) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < out.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + i, &x, std::min<size_t>(8, out.size() - i));
  }
}

asio::awaitable<Result<uint64_t>> Version(net::RpcClient& c, const Args& a, uint32_t obj) {
  std::vector<uint8_t> p;
  proto::EncodePayload(proto::ObjectInfoRequest{a.disk, a.layer, ObjectIndex(obj)}, p);
  auto f = co_await c.Call(proto::MsgType::kObjectInfo, std::move(p), kTimeout);
  if (!f.ok()) co_return f.status();
  auto info = proto::DecodeObjectInfoResponse(f->payload);
  if (!info.ok()) co_return info.status();
  co_return info->version;
}

// One wire write of `len` bytes at `off` of object `obj`, data from `seed` at byte `skip`.
asio::awaitable<Status> WriteOne(net::RpcClient& c, const Args& a, uint32_t obj, uint64_t ver,
                                 uint32_t off, std::span<const uint8_t> data) {
  std::vector<uint32_t> crcs;
  proto::ComputeChunkCrcs(data, crcs);
  std::vector<uint8_t> p;
  proto::EncodePayload(
      proto::WriteRequest{a.disk, a.layer, ObjectIndex(obj), ver, off, 0, crcs, data}, p);
  auto f = co_await c.Call(proto::MsgType::kWrite, std::move(p), kTimeout);
  co_return f.ok() ? Status::Ok() : f.status();
}

asio::awaitable<Status> WriteLoop(net::RpcClient& c, const Args& a, std::ofstream& log) {
  std::vector<uint64_t> ver(a.objects);
  for (uint32_t o = 0; o < a.objects; ++o) {
    auto v = co_await Version(c, a, o);
    if (!v.ok()) co_return v.status();
    ver[o] = *v;
  }
  std::mt19937_64 rng(a.seed);
  const uint64_t space = uint64_t{a.objects} * kObjectSize;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(a.seconds);
  std::vector<uint8_t> buf(kMaxWriteBytes);
  while (std::chrono::steady_clock::now() < end) {
    // Mostly small writes; some large; sizes in sectors.
    uint32_t max_sectors = (rng() % 8 == 0) ? kMaxWriteBytes / 512 : 64;
    uint32_t len = static_cast<uint32_t>(1 + rng() % max_sectors) * 512;
    uint64_t start = (rng() % ((space - len) / 512)) * 512;
    if (rng() % 16 == 0 && a.objects > 1) {  // straddle an object boundary
      uint64_t boundary = (1 + rng() % (a.objects - 1)) * kObjectSize;
      start = boundary - std::min<uint64_t>(len / 2 / 512 * 512 + 512, boundary);
    }
    uint64_t seed = rng();
    Fill(seed, {buf.data(), len});
    for (uint64_t at = start; at < start + len;) {  // split per object
      uint32_t obj = static_cast<uint32_t>(at / kObjectSize);
      uint32_t off = static_cast<uint32_t>(at % kObjectSize);
      uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(start + len - at, kObjectSize - off));
      uint64_t v = ++ver[obj];
      // The seed line names the whole write; `at - start` locates this piece in it.
      log << "I " << obj << ' ' << v << ' ' << off << ' ' << n << ' ' << seed << ' ' << (at - start)
          << '\n'
          << std::flush;
      Status s = co_await WriteOne(c, a, obj, v, off, {buf.data() + (at - start), n});
      if (!s.ok()) co_return s;
      log << "A " << obj << ' ' << v << '\n' << std::flush;
      at += n;
    }
  }
  co_return Status::Ok();
}

struct Intent {
  uint64_t version, seed, skip;
  uint32_t offset, length;
};

struct LogState {
  std::map<uint32_t, std::vector<Intent>> intents;  // per object, version order
  std::map<uint32_t, uint64_t> acked;
};

Result<LogState> ReadLog(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(Code::kNotFound, "cannot read log {}", path);
  LogState st;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    char kind = 0;
    uint32_t obj = 0;
    uint64_t ver = 0;
    ls >> kind >> obj >> ver;
    if (kind == 'A') {
      st.acked[obj] = std::max(st.acked[obj], ver);
    } else if (kind == 'I') {
      Intent i{ver, 0, 0, 0, 0};
      ls >> i.offset >> i.length >> i.seed >> i.skip;
      if (!ls) break;  // a torn last line of a killed writer is not an error
      auto& v = st.intents[obj];
      while (!v.empty() && v.back().version >= ver) v.pop_back();  // never applied
      v.push_back(i);
    }
  }
  return st;
}

asio::awaitable<Result<std::vector<uint8_t>>> ReadObject(net::RpcClient& c, const Args& a,
                                                         uint32_t obj) {
  std::vector<uint8_t> p;
  proto::EncodePayload(
      proto::ReadRequest{
          a.disk, ObjectIndex(obj), 0, static_cast<uint32_t>(kObjectSize), {a.layer}},
      p);
  auto f = co_await c.Call(proto::MsgType::kRead, std::move(p), kTimeout);
  if (!f.ok()) co_return f.status();
  auto r = proto::DecodeReadResponse(f->payload);
  if (!r.ok()) co_return r.status();
  co_return std::vector<uint8_t>(r->data.begin(), r->data.end());
}

asio::awaitable<Status> Verify(net::RpcClient& c, const Args& a, nlohmann::json& report) {
  auto log = ReadLog(a.log);
  if (!log.ok()) co_return log.status();
  LogState& st = *log;
  int bad = 0;
  uint64_t checked_versions = 0;
  std::vector<uint8_t> expect(kObjectSize), data(kMaxWriteBytes);
  for (auto& [obj, intents] : st.intents) {
    auto v = co_await Version(c, a, obj);
    if (!v.ok()) co_return v.status();
    uint64_t acked = st.acked.count(obj) ? st.acked[obj] : 0;
    uint64_t intended = intents.empty() ? 0 : intents.back().version;
    if (*v < acked || *v > intended) {
      report["errors"].push_back(
          fmt::format("object {}: version {} outside [{}, {}]", obj, *v, acked, intended));
      ++bad;
      continue;
    }
    std::fill(expect.begin(), expect.end(), 0);
    for (const Intent& i : intents) {
      if (i.version > *v) break;
      Fill(i.seed, {data.data(), i.skip + i.length});
      std::memcpy(expect.data() + i.offset, data.data() + i.skip, i.length);
    }
    auto got = co_await ReadObject(c, a, obj);
    if (!got.ok()) co_return got.status();
    if (*got != expect) {
      size_t at = std::mismatch(got->begin(), got->end(), expect.begin()).first - got->begin();
      report["errors"].push_back(
          fmt::format("object {} version {}: data differs at byte {}", obj, *v, at));
      ++bad;
    }
    checked_versions += *v;
  }
  report["objects"] = st.intents.size();
  report["versionsChecked"] = checked_versions;
  report["ok"] = bad == 0;
  co_return bad == 0 ? Status::Ok() : Error(Code::kCorruption, "{} objects wrong", bad);
}

template <typename F>
int RunClient(const Args& a, F body) {
  asio::io_context io;
  std::optional<Status> result;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto conn = co_await net::RpcClient::Connect(ex, a.host, a.port, kTimeout);
        if (!conn.ok()) {
          result = conn.status();
          co_return;
        }
        Status s = co_await body(**conn);
        (*conn)->Close();
        result = s;
      },
      asio::detached);
  io.run();
  if (!result || !result->ok()) {
    std::cerr << "spindle-wire-load: " << (result ? result->ToString() : "no result") << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace spindle::server

int main(int argc, char** argv) {
  using namespace spindle;
  using namespace spindle::server;
  CLI::App app{"spindle-wire-load: crash-test writer and verifier for one server disk"};
  app.require_subcommand(1);
  Args a;
  std::string server;
  uint32_t disk = 0;
  uint64_t layer = 1;
  for (auto* sub : {app.add_subcommand("write", "random writes, logged"),
                    app.add_subcommand("verify", "check the server against the log")}) {
    sub->add_option("--server", server, "HOST:PORT")->required();
    sub->add_option("--disk", disk)->required();
    sub->add_option("--layer", layer);
    sub->add_option("--log", a.log)->required();
    if (sub->get_name() == "write") {
      sub->add_option("--objects", a.objects)->check(CLI::Range(1u, kMaxObjects));
      sub->add_option("--seconds", a.seconds);
      sub->add_option("--seed", a.seed);
    }
  }
  CLI11_PARSE(app, argc, argv);
  auto colon = server.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "--server must be HOST:PORT\n";
    return 2;
  }
  a.host = server.substr(0, colon);
  a.port = static_cast<uint16_t>(std::stoi(server.substr(colon + 1)));
  a.disk = DiskId(disk);
  a.layer = LayerId(layer);
  if (app.got_subcommand("write")) {
    std::ofstream log(a.log, std::ios::app);
    int rc = RunClient(a, [&](net::RpcClient& c) { return WriteLoop(c, a, log); });
    return rc == 0 ? 0 : 3;  // 3: stopped by an error (expected when the server is killed)
  }
  nlohmann::json report = {{"errors", nlohmann::json::array()}};
  int rc = RunClient(a, [&](net::RpcClient& c) { return Verify(c, a, report); });
  std::cout << report.dump() << "\n";
  return rc;
}
