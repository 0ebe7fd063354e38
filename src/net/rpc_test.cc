// RpcServer and RpcClient on loopback: many concurrent calls complete with their own
// responses, server errors come back as Status, a garbage frame closes only that connection,
// and a call to a dead server fails with kUnavailable instead of hanging.
#include "net/rpc.h"

#include <gtest/gtest.h>

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

TEST(Rpc, ConcurrentCallsAndErrors) {
  asio::io_context io;
  RpcServer server(io, Handle);
  ASSERT_TRUE(server.Listen("127.0.0.1", 0).ok());
  int matched = 0;
  RunFor(io, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto c = co_await RpcClient::Connect(ex, "127.0.0.1", server.port(), 1s);
    EXPECT_TRUE(c.ok());
    if (!c.ok()) co_return;
    auto client = *c;
    int finished = 0;
    asio::steady_timer all_done(ex, std::chrono::steady_clock::time_point::max());
    for (uint32_t i = 1; i <= 50; ++i) {
      asio::co_spawn(
          ex,
          [&, i]() -> asio::awaitable<void> {
            std::vector<uint8_t> p;
            proto::EncodePayload(proto::HelloRequest{proto::PeerKind::kTool, i}, p);
            auto r = co_await client->Call(proto::MsgType::kHello, std::move(p), 2s);
            if (r.ok()) {
              auto h = proto::DecodeHelloResponse(r->payload);
              if (h.ok() && h->server.value() == i) ++matched;
            }
            if (++finished == 50) all_done.cancel();
          },
          asio::detached);
    }
    asio::error_code ec;
    co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
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

}  // namespace
}  // namespace spindle::net
