#include "net/rpc.h"

#include <array>
#include <deque>

#include "common/log.h"

namespace spindle::net {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Makes asio report errors through an error_code instead of throwing.
inline auto Ec(asio::error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

// Waits on a timer used as a condition variable: returns when it is cancelled (notified) or
// when it expires.
asio::awaitable<void> WaitOn(asio::steady_timer& timer) {
  asio::error_code ec;
  co_await timer.async_wait(Ec(ec));
}

struct OutMsg {
  std::array<uint8_t, proto::kHeaderSize> header;
  std::vector<uint8_t> payload;
};

OutMsg MakeOut(uint16_t type, uint64_t id, int32_t status, std::vector<uint8_t> payload) {
  OutMsg m;
  proto::FrameHeader h{type, id, static_cast<uint32_t>(payload.size()), status};
  proto::EncodeHeader(h, m.header.data());
  m.payload = std::move(payload);
  return m;
}

// Reads one frame; an error or invalid header yields a non-OK status.
template <typename Socket>
asio::awaitable<Result<Frame>> ReadFrame(Socket& socket) {
  std::array<uint8_t, proto::kHeaderSize> hb;
  asio::error_code ec;
  co_await asio::async_read(socket, asio::buffer(hb), Ec(ec));
  if (ec) co_return Error(Code::kUnavailable, "read: {}", ec.message());
  auto h = proto::DecodeHeader(hb.data());
  if (!h.ok()) co_return h.status();
  Frame f;
  f.header = *h;
  f.payload.resize(h->payload_len);
  if (h->payload_len != 0) {
    co_await asio::async_read(socket, asio::buffer(f.payload), Ec(ec));
    if (ec) co_return Error(Code::kUnavailable, "read: {}", ec.message());
  }
  co_return f;
}

}  // namespace

Reply Reply::Fail(const Status& s) {
  std::string msg = s.message().substr(0, proto::kMaxErrorBytes);
  int32_t code = s.ok() ? static_cast<int32_t>(Code::kInternal) : static_cast<int32_t>(s.code());
  return Reply{code, std::vector<uint8_t>(msg.begin(), msg.end())};
}

// ---------------------------------------------------------------------------------------------
// Server

struct RpcServer::Conn {
  explicit Conn(tcp::socket s)
      : socket(std::move(s)), wake(socket.get_executor()), slot(socket.get_executor()) {
    wake.expires_at(Clock::time_point::max());
    slot.expires_at(Clock::time_point::max());
  }
  void Close() {
    if (closed) return;
    closed = true;
    asio::error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    wake.cancel();
    slot.cancel();
  }
  tcp::socket socket;
  asio::steady_timer wake;  // notifies the writer
  asio::steady_timer slot;  // notifies the reader that an in-flight slot freed up
  std::deque<OutMsg> out;
  size_t in_flight = 0;
  bool closed = false;
};

RpcServer::RpcServer(asio::io_context& io, RpcHandler handler)
    : io_(io), handler_(std::move(handler)), acceptor_(io) {}

RpcServer::~RpcServer() {
  Stop();
}

Status RpcServer::Listen(const std::string& host, uint16_t port) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Error(Code::kInvalidArgument, "bad listen address {}: {}", host, ec.message());
  tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error(Code::kUnavailable, "listen on {}:{}: {}", host, port, ec.message());
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(io_, AcceptLoop(), asio::detached);
  return Status::Ok();
}

void RpcServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::error_code ec;
  acceptor_.close(ec);
  for (auto& w : conns_) {
    if (auto c = w.lock()) c->Close();
  }
  conns_.clear();
}

asio::awaitable<void> RpcServer::AcceptLoop() {
  while (!stopped_) {
    asio::error_code ec;
    tcp::socket s = co_await acceptor_.async_accept(Ec(ec));
    if (ec) {
      // operation_aborted: Stop() closed the acceptor, maybe in the destructor; `this` may be
      // gone, so return before touching members.
      if (ec == asio::error::operation_aborted || stopped_) co_return;
      SP_LOG_WARN("rpc accept: {}", ec.message());
      continue;
    }
    std::erase_if(conns_, [](auto& w) { return w.expired(); });
    if (conns_.size() >= kMaxConnections) {
      SP_LOG_WARN("rpc: connection limit {} reached, refusing", kMaxConnections);
      s.close(ec);
      continue;
    }
    s.set_option(tcp::no_delay(true), ec);
    auto conn = std::make_shared<Conn>(std::move(s));
    conns_.push_back(conn);
    asio::co_spawn(io_, ServeConnection(conn), asio::detached);
  }
}

asio::awaitable<void> RpcServer::ServeConnection(std::shared_ptr<Conn> conn) {
  // Writer: drains responses in completion order.
  asio::co_spawn(
      io_,
      [](std::shared_ptr<Conn> c) -> asio::awaitable<void> {
        while (!c->closed) {
          if (c->out.empty()) {
            c->wake.expires_at(Clock::time_point::max());
            co_await WaitOn(c->wake);
            continue;
          }
          OutMsg m = std::move(c->out.front());
          c->out.pop_front();
          std::array<asio::const_buffer, 2> bufs{asio::buffer(m.header), asio::buffer(m.payload)};
          asio::error_code ec;
          co_await asio::async_write(c->socket, bufs, Ec(ec));
          if (ec) c->Close();
        }
      }(conn),
      asio::detached);

  while (!conn->closed) {
    auto frame = co_await ReadFrame(conn->socket);
    if (!frame.ok()) {
      if (frame.status().code() != Code::kUnavailable) {
        SP_LOG_WARN("rpc: closing connection: {}", frame.status().ToString());
      }
      break;
    }
    if (frame->header.type & proto::kResponseBit) {
      SP_LOG_WARN("rpc: response frame sent to server, closing connection");
      break;
    }
    while (conn->in_flight >= kMaxInFlightPerConnection && !conn->closed) {
      conn->slot.expires_at(Clock::time_point::max());
      co_await WaitOn(conn->slot);
    }
    ++conn->in_flight;
    asio::co_spawn(
        io_,
        [](RpcHandler* handler, std::shared_ptr<Conn> c, Frame f) -> asio::awaitable<void> {
          uint16_t type = f.header.type | proto::kResponseBit;
          uint64_t id = f.header.request_id;
          Reply r = co_await (*handler)(std::move(f));
          --c->in_flight;
          c->slot.cancel();
          if (c->closed) co_return;
          c->out.push_back(MakeOut(type, id, r.status, std::move(r.payload)));
          c->wake.cancel();
        }(&handler_, conn, std::move(*frame)),
        asio::detached);
  }
  conn->Close();
}

// ---------------------------------------------------------------------------------------------
// Client

struct RpcClient::Pending {
  explicit Pending(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  std::optional<Result<Frame>> result;
};

RpcClient::RpcClient(tcp::socket socket)
    : socket_(std::move(socket)), write_wake_(socket_.get_executor()) {
  write_wake_.expires_at(Clock::time_point::max());
}

RpcClient::~RpcClient() {
  Close();
}

asio::awaitable<Result<std::shared_ptr<RpcClient>>> RpcClient::Connect(
    asio::any_io_executor ex, std::string host, uint16_t port, std::chrono::milliseconds timeout) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) co_return Error(Code::kInvalidArgument, "bad server address {}", host);
  tcp::socket socket(ex);
  asio::steady_timer timer(ex);
  timer.expires_after(timeout);
  bool timed_out = false;
  timer.async_wait([&socket, &timed_out](asio::error_code e) {
    if (e) return;  // cancelled: the connect finished first
    timed_out = true;
    asio::error_code ignored;
    socket.close(ignored);
  });
  co_await socket.async_connect(tcp::endpoint(addr, port), Ec(ec));
  timer.cancel();
  // Let the timer's handler run (it refers to locals) before they go out of scope.
  co_await asio::post(ex, asio::use_awaitable);
  if (ec || timed_out) {
    co_return Error(Code::kUnavailable, "connect {}:{}: {}", host, port,
                    timed_out ? "timed out" : ec.message());
  }
  socket.set_option(tcp::no_delay(true), ec);
  auto client = std::make_shared<RpcClient>(std::move(socket));
  asio::co_spawn(ex, client->ReadLoop(), asio::detached);
  asio::co_spawn(ex, client->WriteLoop(), asio::detached);
  co_return client;
}

void RpcClient::Close() {
  if (!open_) return;
  open_ = false;
  asio::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  write_wake_.cancel();
  FailAll(Error(Code::kUnavailable, "connection closed"));
}

void RpcClient::FailAll(const Status& s) {
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p->result = s;
    p->timer.cancel();
  }
}

asio::awaitable<Result<Frame>> RpcClient::Call(proto::MsgType type, std::vector<uint8_t> payload,
                                               std::chrono::milliseconds timeout) {
  if (!open_) co_return Error(Code::kUnavailable, "connection closed");
  if (pending_.size() >= kMaxInFlightPerConnection * 4) {
    co_return Error(Code::kResourceExhausted, "too many requests in flight");
  }
  auto self = shared_from_this();  // keeps the client alive while this call waits
  uint64_t id = next_id_++;
  auto p = std::make_shared<Pending>(socket_.get_executor());
  pending_.emplace(id, p);
  OutMsg m = MakeOut(static_cast<uint16_t>(type), id, 0, std::move(payload));
  auto buf = std::make_shared<std::vector<uint8_t>>();
  buf->reserve(m.header.size() + m.payload.size());
  buf->insert(buf->end(), m.header.begin(), m.header.end());
  buf->insert(buf->end(), m.payload.begin(), m.payload.end());
  write_queue_.push_back(std::move(buf));
  write_wake_.cancel();
  p->timer.expires_after(timeout);
  co_await WaitOn(p->timer);
  if (!p->result) {
    pending_.erase(id);
    co_return Error(Code::kUnavailable, "request timed out after {} ms", timeout.count());
  }
  co_return std::move(*p->result);
}

asio::awaitable<void> RpcClient::WriteLoop() {
  auto self = shared_from_this();
  while (open_) {
    if (write_queue_.empty()) {
      write_wake_.expires_at(Clock::time_point::max());
      co_await WaitOn(write_wake_);
      continue;
    }
    auto buf = std::move(write_queue_.front());
    write_queue_.pop_front();
    asio::error_code ec;
    co_await asio::async_write(socket_, asio::buffer(*buf), Ec(ec));
    if (ec) {
      Close();
      co_return;
    }
  }
}

asio::awaitable<void> RpcClient::ReadLoop() {
  auto self = shared_from_this();
  while (open_) {
    auto frame = co_await ReadFrame(socket_);
    if (!frame.ok()) {
      if (open_) SP_LOG_DEBUG("rpc client: {}", frame.status().ToString());
      Close();
      co_return;
    }
    if (!(frame->header.type & proto::kResponseBit)) {
      SP_LOG_WARN("rpc client: request frame from server, closing");
      Close();
      co_return;
    }
    auto it = pending_.find(frame->header.request_id);
    if (it == pending_.end()) continue;  // the call timed out already
    auto p = it->second;
    pending_.erase(it);
    if (frame->header.status != 0) {
      std::string msg(frame->payload.begin(), frame->payload.end());
      int32_t st = frame->header.status;
      Code code = (st > 0 && st <= static_cast<int32_t>(Code::kInternal)) ? static_cast<Code>(st)
                                                                          : Code::kInternal;
      p->result = Status(code, msg);
    } else {
      p->result = std::move(*frame);
    }
    p->timer.cancel();
  }
}

}  // namespace spindle::net
