// RpcServer and RpcClient on loopback: many concurrent calls complete with their own
// responses, server errors come back as Status, a garbage frame closes only that connection,
// and a call to a dead server fails with kUnavailable instead of hanging.
#include "net/rpc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

namespace spindle::net {
namespace {

using namespace std::chrono_literals;

// Echoes HELLO's peer id back as the server id after a delay that depends on the id, so
// responses come back out of order; OBJECT_INFO fails with kNotFound.
asio::awaitable<Reply> Handle(Frame f) {
  auto ex = co_await asio::this_coro::executor;
  if (f.header.type == static_cast<uint16_t>(proto::MsgType::kHello)) {
    auto req = proto::DecodeHelloRequest(f.payload);
    if (!req.ok()) co_return Reply::Fail(req.status());
    asio::steady_timer t(ex, std::chrono::milliseconds((100 - req->peer_id) % 7));
    asio::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::vector<uint8_t> out;
    proto::EncodePayload(proto::HelloResponse{ServerId(req->peer_id), {}}, out);
    co_return Reply::Ok(std::move(out));
  }
  co_return Reply::Fail(Error(Code::kNotFound, "no such object"));
}

// A client connected to `server`, or nullptr (the failure is reported).
asio::awaitable<std::shared_ptr<RpcClient>> ConnectTo(const RpcServer& server) {
  auto ex = co_await asio::this_coro::executor;
  auto c = co_await RpcClient::Connect(ex, "127.0.0.1", server.port(), 1s);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  co_return c.ok() ? *c : nullptr;
}

template <typename F>
void RunFor(asio::io_context& io, F&& body) {
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await body();
        done = true;
        io.stop();
      },
      asio::detached);
  io.run_for(10s);
  ASSERT_TRUE(done) << "test body did not finish in time";
}

// Runs call(i) for i in [0, count) all at once; returns when every one has finished.
template <typename F>
asio::awaitable<void> AllAtOnce(uint32_t count, F call) {
  auto ex = co_await asio::this_coro::executor;
  uint32_t finished = 0;
  asio::steady_timer all_done(ex, std::chrono::steady_clock::time_point::max());
  for (uint32_t i = 0; i < count; ++i) {
    asio::co_spawn(
        ex,
        [&, i]() -> asio::awaitable<void> {
          co_await call(i);
          if (++finished == count) all_done.cancel();
        },
        asio::detached);
  }
  asio::error_code ec;
  co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

TEST(Rpc, ConcurrentCallsAndErrors) {
  asio::io_context io;
  RpcServer server(io, Handle);
  ASSERT_TRUE(server.Listen("127.0.0.1", 0).ok());
  int matched = 0;
  RunFor(io, [&]() -> asio::awaitable<void> {
    std::shared_ptr<RpcClient> client = co_await ConnectTo(server);
    if (!client) co_return;
    co_await AllAtOnce(50, [&](uint32_t i) -> asio::awaitable<void> {
      const uint32_t peer = i + 1;
      std::vector<uint8_t> p;
      proto::EncodePayload(proto::HelloRequest{proto::PeerKind::kTool, peer}, p);
      auto r = co_await client->Call(proto::MsgType::kHello, std::move(p), 2s);
      if (r.ok()) {
        auto h = proto::DecodeHelloResponse(r->payload);
        if (h.ok() && h->server.value() == peer) ++matched;
      }
    });
    auto err = co_await client->Call(proto::MsgType::kObjectInfo, {}, 1s);
    EXPECT_EQ(err.status().code(), Code::kNotFound);
    EXPECT_EQ(err.status().message(), "no such object");
  });
  EXPECT_EQ(matched, 50);
}

TEST(Rpc, GarbageClosesOnlyThatConnection) {
  asio::io_context io;
  RpcServer server(io, Handle);
  ASSERT_TRUE(server.Listen("127.0.0.1", 0).ok());
  RunFor(io, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::socket raw(ex);
    asio::error_code ec;
    co_await raw.async_connect({asio::ip::make_address("127.0.0.1"), server.port()},
                               asio::redirect_error(asio::use_awaitable, ec));
    EXPECT_FALSE(ec);
    std::vector<uint8_t> junk(64, 0x5a);
    co_await asio::async_write(raw, asio::buffer(junk),
                               asio::redirect_error(asio::use_awaitable, ec));
    uint8_t b;
    co_await raw.async_read_some(asio::buffer(&b, 1),
                                 asio::redirect_error(asio::use_awaitable, ec));
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();

    auto c = co_await RpcClient::Connect(ex, "127.0.0.1", server.port(), 1s);
    EXPECT_TRUE(c.ok());
    if (!c.ok()) co_return;
    std::vector<uint8_t> p;
    proto::EncodePayload(proto::HelloRequest{proto::PeerKind::kTool, 9}, p);
    auto r = co_await (*c)->Call(proto::MsgType::kHello, std::move(p), 2s);
    EXPECT_TRUE(r.ok());
  });
}

TEST(Rpc, DeadServerIsUnavailable) {
  asio::io_context io;
  uint16_t port;
  {
    RpcServer server(io, Handle);
    ASSERT_TRUE(server.Listen("127.0.0.1", 0).ok());
    port = server.port();
  }
  RunFor(io, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto c = co_await RpcClient::Connect(ex, "127.0.0.1", port, 1s);
    EXPECT_EQ(c.status().code(), Code::kUnavailable);
  });
}

// READ here: the request is (u32 n, u32 seed); the answer is an 8-byte head (seed, n) then n
// bytes of a seed-dependent pattern, sent as a shared tail; seed 0 fails.
asio::awaitable<Reply> HandleBulk(Frame f) {
  if (f.header.type != static_cast<uint16_t>(proto::MsgType::kRead) || f.payload.size() != 8) {
    co_return Reply::Fail(Error(Code::kInvalidArgument, "bad request"));
  }
  uint32_t n, seed;
  std::memcpy(&n, f.payload.data(), 4);
  std::memcpy(&seed, f.payload.data() + 4, 4);
  if (seed == 0) co_return Reply::Fail(Error(Code::kNotFound, "no data"));
  auto data = std::make_shared<std::vector<uint8_t>>(n);
  for (uint32_t i = 0; i < n; ++i) (*data)[i] = static_cast<uint8_t>(i * seed + (i >> 8));
  std::vector<uint8_t> head(8);
  std::memcpy(head.data(), &seed, 4);
  std::memcpy(head.data() + 4, &n, 4);
  co_return Reply::Ok(std::move(head), SharedBytes{data, *data});
}

bool PatternOk(std::span<const uint8_t> got, uint32_t seed) {
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != static_cast<uint8_t>(i * seed + (i >> 8))) return false;
  }
  return true;
}

std::vector<uint8_t> BulkRequest(uint32_t n, uint32_t seed) {
  std::vector<uint8_t> p(8);
  std::memcpy(p.data(), &n, 4);
  std::memcpy(p.data() + 4, &seed, 4);
  return p;
}

// Asks for n bytes of seed's pattern with a sink of n bytes: whether they came back, in the
// sink or in the frame.
asio::awaitable<bool> BulkReadOk(RpcClient& client, uint32_t n, uint32_t seed) {
  std::vector<uint8_t> sink(n);
  auto r = co_await client.Call(proto::MsgType::kRead, BulkRequest(n, seed), {}, 5s, sink);
  if (!r.ok()) co_return false;
  std::span<const uint8_t> got =
      r->sunk ? std::span<const uint8_t>(sink) : std::span(r->payload).subspan(8);
  if (got.size() != n) co_return false;
  co_return PatternOk(got, seed);
}

// A call with a sink gets a large answer's data straight in it (only the head in the frame);
// an answer too short for the sink, or too small to be worth it, arrives whole in the frame;
// an error leaves the sink alone. Many such calls in flight together, mixed with small ones,
// each get their own data.
TEST(Rpc, BulkDataIntoTheCallersSink) {
  asio::io_context io;
  RpcServer server(io, HandleBulk);
  ASSERT_TRUE(server.Listen("127.0.0.1", 0).ok());
  int good = 0;
  RunFor(io, [&]() -> asio::awaitable<void> {
    std::shared_ptr<RpcClient> client = co_await ConnectTo(server);
    if (!client) co_return;
    struct Case {
      uint32_t n, sink, seed;
      bool sunk;
    };
    const Case cases[] = {{256 * 1024, 256 * 1024, 3, true},
                          {1000, 1000, 5, false},             // small: whole in the frame
                          {64 * 1024, 128 * 1024, 7, false},  // shorter than the sink
                          {40 * 1024, 40 * 1024, 0, false}};  // an error
    for (const Case& k : cases) {
      std::vector<uint8_t> sink(k.sink, 0xee);
      auto r = co_await client->Call(proto::MsgType::kRead, BulkRequest(k.n, k.seed), {}, 2s, sink);
      if (k.seed == 0) {
        EXPECT_EQ(r.status().code(), Code::kNotFound);
        EXPECT_TRUE(std::all_of(sink.begin(), sink.end(), [](uint8_t b) { return b == 0xee; }));
        continue;
      }
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) continue;
      if (k.sunk) {
        EXPECT_EQ(r->sunk, k.n);
        EXPECT_EQ(r->payload.size(), 8u);
        EXPECT_TRUE(PatternOk(sink, k.seed));
      } else {
        EXPECT_EQ(r->sunk, 0u);
        EXPECT_EQ(r->payload.size(), 8u + k.n);
        EXPECT_TRUE(PatternOk(std::span(r->payload).subspan(8), k.seed));
      }
    }
    co_await AllAtOnce(24, [&](uint32_t i) -> asio::awaitable<void> {
      const uint32_t seed = i + 1;
      const uint32_t n = seed % 3 == 0 ? 512 : 100 * 1024 + seed * 4096;
      if (co_await BulkReadOk(*client, n, seed)) ++good;
    });
  });
  EXPECT_EQ(good, 24);
}

// A server that also listens locally is reached through its Unix socket, and everything works
// there as over TCP (out-of-order answers, errors, bulk data into a sink); one that does not
// is reached over TCP. When the server goes, the local name goes with it.
TEST(Rpc, LocalSocketOnTheSameHost) {
  asio::io_context io;
  RpcServer local_server(io, HandleBulk);
  ASSERT_TRUE(local_server.Listen("127.0.0.1", 0).ok());
  ASSERT_TRUE(local_server.ListenLocal().ok());
  RpcServer tcp_server(io, Handle);
  ASSERT_TRUE(tcp_server.Listen("127.0.0.1", 0).ok());
  const uint16_t local_port = local_server.port();
  EXPECT_EQ(LocalSocketName("0:0:0:0:0:0:0:1", 47001), LocalSocketName("::1", 47001));
  EXPECT_NE(LocalSocketName("127.0.0.1", 47001), LocalSocketName("127.0.0.1", 47002));
  EXPECT_EQ(LocalSocketName("not-an-address", 47001), "");
  int good = 0;
  RunFor(io, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<RpcClient> tcp_client = co_await ConnectTo(tcp_server);
    std::shared_ptr<RpcClient> client = co_await ConnectTo(local_server);
    if (!client || !tcp_client) co_return;
    EXPECT_FALSE(tcp_client->is_local());
    EXPECT_TRUE(client->is_local());
    std::vector<uint8_t> hello;
    proto::EncodePayload(proto::HelloRequest{proto::PeerKind::kTool, 3}, hello);
    EXPECT_TRUE((co_await tcp_client->Call(proto::MsgType::kHello, std::move(hello), 2s)).ok());

    co_await AllAtOnce(16, [&](uint32_t i) -> asio::awaitable<void> {
      if (i == 0) {  // seed 0: an error
        auto r = co_await client->Call(proto::MsgType::kRead, BulkRequest(2048, 0), 5s);
        if (r.status().code() == Code::kNotFound) ++good;
      } else if (co_await BulkReadOk(*client, i % 2 ? 300 * 1024 : 2048, i)) {
        ++good;
      }
    });

    local_server.Stop();
    auto again = co_await RpcClient::Connect(ex, "127.0.0.1", local_port, 1s);
    EXPECT_EQ(again.status().code(), Code::kUnavailable);
  });
  EXPECT_EQ(good, 16);
}

}  // namespace
}  // namespace spindle::net
