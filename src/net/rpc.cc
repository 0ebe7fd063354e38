#include "net/rpc.h"

#include <array>
#include <cstring>
#include <deque>

#include "common/assert.h"
#include "common/log.h"
#include "net/transfer.h"

namespace spindle::net {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Local = asio::local::stream_protocol;

// A Unix stream's send buffer is all a sender may have in flight: the default (wmem_default,
// about 200 KiB) splits a 1 MiB answer into several wake-ups of the reader, where TCP over
// loopback grows its buffers by itself. 1 to 4 MiB measured alike (docs/decisions/0018); the
// kernel caps it at net.core.wmem_max.
constexpr int kLocalSendBuffer = 2 << 20;

// Socket options per kind of connection, set on both ends.
void Tune(tcp::socket& s) {
  asio::error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
}
void Tune(Local::socket& s) {
  asio::error_code ignored;
  s.set_option(asio::socket_base::send_buffer_size(kLocalSendBuffer), ignored);
}

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

// Sizes of the receive buffer: a frame whose payload is larger than kLargePayload is read
// straight into its own vector after the buffered part.
constexpr size_t kReadBuffer = 64 * 1024;
constexpr size_t kLargePayload = 16 * 1024;
// At most this many frames go into one gathering send.
constexpr size_t kMaxSendBatch = 32;

// Reads frames through a buffer, so that one recv brings in as many small frames as have
// arrived.
class FrameReader {
 public:
  FrameReader() : buf_(kReadBuffer) {}

  // The next frame; an error or invalid header yields a non-OK status.
  template <typename Socket>
  asio::awaitable<Result<Frame>> Next(Socket& socket) {
    co_return co_await Next(socket, [](const proto::FrameHeader&) { return std::span<uint8_t>(); });
  }
  // The same; sink_for(header) may name a buffer for the payload's last bytes (a successful
  // response's bulk data): when the payload is at least that long and the part before it is
  // small, those bytes are received straight into the buffer and the frame's payload holds
  // only the part before them (Frame::sunk says how many went to the buffer).
  template <typename Socket, typename SinkFor>
  asio::awaitable<Result<Frame>> Next(Socket& socket, SinkFor&& sink_for) {
    // After a frame was handed out, its handler (a spawned request, a resumed caller) is
    // queued on the executor. When the buffer is then empty, let it run before reading: the
    // read would mostly find nothing (a recv answering EAGAIN), and the answer or the reply
    // to the NBD client would wait behind that system call and a reactor pass.
    bool yield_first = handed_out_;
    handed_out_ = true;
    while (true) {
      if (end_ - begin_ >= proto::kHeaderSize) {
        auto h = proto::DecodeHeader(buf_.data() + begin_);
        if (!h.ok()) co_return h.status();
        const size_t have = end_ - begin_ - proto::kHeaderSize;
        const uint8_t* p = buf_.data() + begin_ + proto::kHeaderSize;
        const std::span<uint8_t> sink =
            h->status == 0 && h->payload_len > kLargePayload ? sink_for(*h) : std::span<uint8_t>();
        const size_t head = h->payload_len - std::min<size_t>(sink.size(), h->payload_len);
        if (!sink.empty() && sink.size() <= h->payload_len && head <= kLargePayload) {
          if (have >= head) {
            Frame f{*h, IoBytes(p, p + head), sink.size()};
            const size_t take = std::min(have - head, sink.size());
            std::memcpy(sink.data(), p + head, take);
            begin_ += proto::kHeaderSize + head + take;
            if (begin_ == end_) begin_ = end_ = 0;
            if (take < sink.size()) {
              asio::error_code ec;
              co_await asio::async_read(socket,
                                        asio::buffer(sink.data() + take, sink.size() - take),
                                        TransferAllAtOnce{}, Ec(ec));
              if (ec) co_return Error(Code::kUnavailable, "read: {}", ec.message());
            }
            co_return f;
          }
        } else if (have >= h->payload_len) {
          Frame f{*h, IoBytes(p, p + h->payload_len)};
          begin_ += proto::kHeaderSize + h->payload_len;
          if (begin_ == end_) begin_ = end_ = 0;
          co_return f;
        } else if (h->payload_len > kLargePayload) {
          Frame f{*h, IoBytes(h->payload_len)};
          std::memcpy(f.payload.data(), p, have);
          begin_ = end_ = 0;
          asio::error_code ec;
          co_await asio::async_read(socket,
                                    asio::buffer(f.payload.data() + have, f.payload.size() - have),
                                    TransferAllAtOnce{}, Ec(ec));
          if (ec) co_return Error(Code::kUnavailable, "read: {}", ec.message());
          co_return f;
        }
      }
      // Need more bytes: make room at the end (a small frame, or a sunk frame's part before
      // its sink, always fits the buffer).
      if (begin_ > 0 && buf_.size() - end_ < kLargePayload + proto::kHeaderSize) {
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (yield_first) {
        yield_first = false;
        co_await asio::post(socket.get_executor(), asio::use_awaitable);
      }
      asio::error_code ec;
      const size_t n = co_await socket.async_read_some(
          asio::buffer(buf_.data() + end_, buf_.size() - end_), Ec(ec));
      if (ec) co_return Error(Code::kUnavailable, "read: {}", ec.message());
      end_ += n;
    }
  }

 private:
  std::vector<uint8_t> buf_;
  size_t begin_ = 0, end_ = 0;
  bool handed_out_ = false;  // Next has been called before
};

}  // namespace

// Frames queued on one connection, sent by one writer coroutine in batches.
class OutQueue {
  // A frame to send: header, owned payload bytes, then shared tail bytes; `sent` bytes of it
  // went out already (a direct send that the socket took only in part).
  struct OutMsg {
    std::array<uint8_t, proto::kHeaderSize> header;
    std::vector<uint8_t> payload;
    SharedBytes tail;
    size_t sent = 0;
  };

 public:
  // The socket is put in non-blocking mode (for the direct sends; async operations are not
  // affected).
  explicit OutQueue(RpcSocket& socket) : socket_(socket), wake_(socket.get_executor()) {
    wake_.expires_at(Clock::time_point::max());
    asio::error_code ignored;
    socket_.non_blocking(true, ignored);
  }
  // The first frame of a burst is sent at once when the socket takes it (no added latency at
  // queue depth 1); a flush is then posted to the executor, and it runs after the handlers
  // that are ready now, so the frames they push meanwhile (the answers to the other requests
  // one recv brought in) are queued and leave together in one gathering send. A frame the
  // socket does not take, or one pushed while the writer is busy, is left to the writer.
  void Push(uint16_t type, uint64_t id, int32_t status, std::vector<uint8_t> payload,
            SharedBytes tail) {
    OutMsg m;
    const size_t len = payload.size() + tail.bytes.size();
    SP_ASSERT(len <= UINT32_MAX);
    proto::FrameHeader h{type, id, static_cast<uint32_t>(len), status};
    proto::EncodeHeader(h, m.header.data());
    m.payload = std::move(payload);
    m.tail = std::move(tail);
    if (!sending_ && !flush_posted_ && out_.empty() && socket_.is_open()) {
      std::array<asio::const_buffer, 3> bufs;
      const size_t nbufs = Buffers(m, bufs.data());
      asio::error_code ec;
      m.sent = socket_.send(std::span(bufs).first(nbufs), 0, ec);
      if (ec && ec != asio::error::would_block) m.sent = 0;  // the writer fails the same way
      if (m.sent == proto::kHeaderSize + len) {
        PostFlush();  // opens the burst
        return;
      }
      out_.push_back(std::move(m));
      wake_.cancel();
      return;
    }
    out_.push_back(std::move(m));
    if (!sending_) PostFlush();
  }
  // Wakes the writer so that it sees `closed` (Close()).
  void Wake() { wake_.cancel(); }

  // Sends queued frames until `open()` turns false or a send fails (then calls `on_error`).
  template <typename Open, typename OnError>
  asio::awaitable<void> Run(Open open, OnError on_error) {
    std::vector<asio::const_buffer> bufs;
    while (open()) {
      if (out_.empty()) {
        wake_.expires_at(Clock::time_point::max());
        co_await WaitOn(wake_);
        continue;
      }
      const size_t n = std::min(out_.size(), kMaxSendBatch);
      bufs.resize(3 * n);
      bufs.resize(Gather(n, bufs.data()));
      asio::error_code ec;
      sending_ = true;
      co_await asio::async_write(socket_, bufs, TransferAllAtOnce{}, Ec(ec));
      sending_ = false;
      // The queue is only ever shortened here: the buffers stayed valid during the send.
      for (size_t i = 0; i < n; ++i) out_.pop_front();
      if (ec) {
        on_error();
        co_return;
      }
    }
  }

 private:
  // The unsent parts of the first n queued frames at out (room for 3 × n); returns how many.
  size_t Gather(size_t n, asio::const_buffer* out) const {
    size_t used = 0;
    for (size_t i = 0; i < n; ++i) used += Buffers(out_[i], out + used);
    return used;
  }
  // The unsent part of m as up to 3 buffers at out; returns how many.
  static size_t Buffers(const OutMsg& m, asio::const_buffer* out) {
    std::array<asio::const_buffer, 3> all{
        asio::buffer(m.header), asio::buffer(m.payload),
        asio::const_buffer(m.tail.bytes.data(), m.tail.bytes.size())};
    size_t skip = m.sent, n = 0;
    for (const asio::const_buffer& b : all) {
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      out[n++] = b + skip;
      skip = 0;
    }
    return n;
  }

  void PostFlush() {
    if (flush_posted_) return;
    flush_posted_ = true;
    asio::post(socket_.get_executor(), [this, alive = std::weak_ptr<char>(alive_)] {
      if (!alive.expired()) Flush();
    });
  }

  // Sends what is queued with one non-blocking gathering send; what the socket does not take
  // (or a send error) is left to the writer.
  void Flush() {
    flush_posted_ = false;
    if (sending_ || out_.empty()) return;
    if (!socket_.is_open()) {
      wake_.cancel();
      return;
    }
    std::array<asio::const_buffer, 3 * kMaxSendBatch> bufs;
    const size_t used = Gather(std::min(out_.size(), kMaxSendBatch), bufs.data());
    asio::error_code ec;
    size_t sent = socket_.send(std::span(bufs).first(used), 0, ec);
    if (ec && ec != asio::error::would_block) sent = 0;  // the writer fails the same way
    while (sent > 0) {
      OutMsg& m = out_.front();
      const size_t left = proto::kHeaderSize + m.payload.size() + m.tail.bytes.size() - m.sent;
      if (sent < left) {
        m.sent += sent;
        break;
      }
      sent -= left;
      out_.pop_front();
    }
    if (!out_.empty()) wake_.cancel();
  }

  RpcSocket& socket_;
  asio::steady_timer wake_;
  std::deque<OutMsg> out_;
  bool sending_ = false;
  bool flush_posted_ = false;
  // Lets a posted flush see that this queue is gone.
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);
};

Reply Reply::Fail(const Status& s) {
  std::string msg = s.message().substr(0, proto::kMaxErrorBytes);
  int32_t code = s.ok() ? static_cast<int32_t>(Code::kInternal) : static_cast<int32_t>(s.code());
  return Reply{code, std::vector<uint8_t>(msg.begin(), msg.end())};
}

std::string LocalSocketName(const std::string& host, uint16_t port) {
  asio::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (ec) return {};
  return std::string(1, '\0') + fmt::format("spindle-rpc/{}:{}", addr.to_string(), port);
}

// ---------------------------------------------------------------------------------------------
// Server

struct RpcServer::Conn {
  explicit Conn(RpcSocket s) : socket(std::move(s)), out(socket), slot(socket.get_executor()) {
    slot.expires_at(Clock::time_point::max());
  }
  void Close() {
    if (closed) return;
    closed = true;
    asio::error_code ec;
    socket.shutdown(RpcSocket::shutdown_both, ec);
    socket.close(ec);
    out.Wake();
    slot.cancel();
  }
  RpcSocket socket;
  OutQueue out;
  asio::steady_timer slot;  // notifies the reader that an in-flight slot freed up
  size_t in_flight = 0;
  bool closed = false;
};

RpcServer::RpcServer(asio::io_context& io, RpcHandler handler)
    : io_(io), handler_(std::move(handler)), acceptor_(io), local_acceptor_(io) {}

RpcServer::~RpcServer() {
  Stop();
}

Status RpcServer::Listen(const std::string& host, uint16_t port) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Error(Code::kInvalidArgument, "bad listen address {}: {}", host, ec.message());
  const tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error(Code::kUnavailable, "listen on {}:{}: {}", host, port, ec.message());
  port_ = acceptor_.local_endpoint(ec).port();
  asio::co_spawn(io_, AcceptLoop(acceptor_), asio::detached);
  return Status::Ok();
}

Status RpcServer::ListenLocal() {
  if (!acceptor_.is_open() || stopped_) {
    return Error(Code::kFailedPrecondition, "ListenLocal before Listen");
  }
  asio::error_code ec;
  const std::string name =
      LocalSocketName(acceptor_.local_endpoint(ec).address().to_string(), port_);
  if (ec) return Error(Code::kUnavailable, "listen on local socket: {}", ec.message());
  const Local::endpoint ep(name);
  local_acceptor_.open(ep.protocol(), ec);
  if (!ec) local_acceptor_.bind(ep, ec);
  if (!ec) local_acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    asio::error_code ignored;
    local_acceptor_.close(ignored);
    return Error(Code::kUnavailable, "listen on local socket @{}: {}", name.substr(1),
                 ec.message());
  }
  asio::co_spawn(io_, AcceptLoop(local_acceptor_), asio::detached);
  return Status::Ok();
}

void RpcServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::error_code ec;
  acceptor_.close(ec);
  local_acceptor_.close(ec);
  for (auto& w : conns_) {
    if (auto c = w.lock()) c->Close();
  }
  conns_.clear();
}

template <typename Acceptor>
asio::awaitable<void> RpcServer::AcceptLoop(Acceptor& acceptor) {
  while (!stopped_) {
    asio::error_code ec;
    auto s = co_await acceptor.async_accept(Ec(ec));
    if (ec) {
      // operation_aborted: Stop() closed the acceptor, maybe in the destructor; `this` may be
      // gone, so return before touching members.
      if (ec == asio::error::operation_aborted || stopped_) co_return;
      SP_LOG_WARN("rpc accept: {}", ec.message());
      continue;
    }
    if (stopped_) {  // accepted just before Stop() closed the acceptor: Stop() cannot see it
      s.close(ec);
      co_return;
    }
    std::erase_if(conns_, [](auto& w) { return w.expired(); });
    if (conns_.size() >= kMaxConnections) {
      SP_LOG_WARN("rpc: connection limit {} reached, refusing", kMaxConnections);
      s.close(ec);
      continue;
    }
    Tune(s);
    auto conn = std::make_shared<Conn>(RpcSocket(std::move(s)));
    conns_.push_back(conn);
    asio::co_spawn(io_, ServeConnection(conn), asio::detached);
  }
}

asio::awaitable<void> RpcServer::ServeConnection(std::shared_ptr<Conn> conn) {
  // Writer: sends responses in completion order.
  asio::co_spawn(
      io_,
      [](std::shared_ptr<Conn> c) -> asio::awaitable<void> {
        co_await c->out.Run([&c] { return !c->closed; }, [&c] { c->Close(); });
      }(conn),
      asio::detached);

  FrameReader reader;
  while (!conn->closed) {
    auto frame = co_await reader.Next(conn->socket);
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
          c->out.Push(type, id, r.status, std::move(r.payload), std::move(r.tail));
        }(&handler_, conn, std::move(*frame)),
        asio::detached);
  }
  conn->Close();
}

// ---------------------------------------------------------------------------------------------
// Client

// The waiting caller of one call. The reader resumes it at once, on its own stack (the caller
// goes on to answer its own client without a pass through the executor's queue and the reactor
// poll that sits in it). The sweep and Close post the resumption: a resumed caller may start
// calls of its own (changing pending_ under the sweep) or drop the last reference to the client.
struct RpcClient::Pending {
  struct Waiter {
    virtual ~Waiter() = default;
    virtual void Resume() = 0;
  };
  template <typename Handler>
  struct WaiterFor : Waiter {
    explicit WaiterFor(Handler h) : handler(std::move(h)) {}
    void Resume() override { std::move(handler)(); }
    Handler handler;
  };

  // Resumes the caller now (it must be waiting: Call suspends before anything can complete).
  void Complete() {
    std::unique_ptr<Waiter> w = std::move(waiter);
    if (w) w->Resume();
  }
  void CompleteLater(const asio::any_io_executor& ex) {
    std::unique_ptr<Waiter> w = std::move(waiter);
    if (w) asio::post(ex, [w = std::move(w)] { w->Resume(); });
  }

  std::unique_ptr<Waiter> waiter;
  Clock::time_point deadline;
  std::chrono::milliseconds timeout;
  std::optional<Result<Frame>> result;
  // The caller's buffer for the response's bulk data (see Call); `receiving` once the reader
  // has started filling it: the sweep then leaves the call to the reader (the buffer must not
  // be handed back to the caller while a receive may still write to it).
  std::span<uint8_t> sink;
  bool receiving = false;
};

RpcClient::RpcClient(RpcSocket socket, bool local)
    : socket_(std::move(socket)),
      local_(local),
      out_(std::make_unique<OutQueue>(socket_)),
      sweep_(socket_.get_executor()) {}

RpcClient::~RpcClient() {
  Close();
}

namespace {

// Connects `socket` to `ep`, closing it if that takes longer than `timeout` (then sets
// timed_out).
template <typename Socket>
asio::awaitable<asio::error_code> ConnectWithin(Socket& socket,
                                                const typename Socket::endpoint_type& ep,
                                                std::chrono::milliseconds timeout,
                                                bool& timed_out) {
  auto ex = socket.get_executor();
  asio::steady_timer timer(ex);
  timer.expires_after(timeout);
  timer.async_wait([&socket, &timed_out](asio::error_code e) {
    if (e) return;  // cancelled: the connect finished first
    timed_out = true;
    asio::error_code ignored;
    socket.close(ignored);
  });
  asio::error_code ec;
  co_await socket.async_connect(ep, Ec(ec));
  timer.cancel();
  // Let the timer's handler run (it refers to locals) before they go out of scope.
  co_await asio::post(ex, asio::use_awaitable);
  co_return ec;
}

}  // namespace

asio::awaitable<Result<std::shared_ptr<RpcClient>>> RpcClient::Connect(
    asio::any_io_executor ex, std::string host, uint16_t port, std::chrono::milliseconds timeout) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) co_return Error(Code::kInvalidArgument, "bad server address {}", host);
  // A server on this host (and in this network namespace) answers on its local name; no such
  // name, or a refusal, falls through to TCP.
  bool timed_out = false;
  {
    Local::socket local(ex);
    ec = co_await ConnectWithin(local, Local::endpoint(LocalSocketName(host, port)), timeout,
                                timed_out);
    if (!ec) {
      Tune(local);
      auto client = std::make_shared<RpcClient>(RpcSocket(std::move(local)), true);
      client->Start(ex);
      co_return client;
    }
    if (timed_out) co_return Error(Code::kUnavailable, "connect {}:{}: timed out", host, port);
  }
  tcp::socket socket(ex);
  ec = co_await ConnectWithin(socket, tcp::endpoint(addr, port), timeout, timed_out);
  if (ec || timed_out) {
    co_return Error(Code::kUnavailable, "connect {}:{}: {}", host, port,
                    timed_out ? "timed out" : ec.message());
  }
  Tune(socket);
  auto client = std::make_shared<RpcClient>(RpcSocket(std::move(socket)), false);
  client->Start(ex);
  co_return client;
}

void RpcClient::Start(asio::any_io_executor ex) {
  asio::co_spawn(ex, ReadLoop(), asio::detached);
  asio::co_spawn(ex, WriteLoop(), asio::detached);
  asio::co_spawn(ex, SweepLoop(), asio::detached);
}

void RpcClient::Close() {
  if (!open_) return;
  open_ = false;
  asio::error_code ec;
  socket_.shutdown(RpcSocket::shutdown_both, ec);
  socket_.close(ec);
  out_->Wake();
  sweep_.cancel();
  FailAll(Error(Code::kUnavailable, "connection closed"));
}

void RpcClient::FailAll(const Status& s) {
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p->result = s;
    p->CompleteLater(socket_.get_executor());
  }
}

asio::awaitable<Result<Frame>> RpcClient::Call(proto::MsgType type, std::vector<uint8_t> payload,
                                               SharedBytes tail, std::chrono::milliseconds timeout,
                                               std::span<uint8_t> sink) {
  if (!open_) co_return Error(Code::kUnavailable, "connection closed");
  if (pending_.size() >= kMaxInFlightPerConnection * 4) {
    co_return Error(Code::kResourceExhausted, "too many requests in flight");
  }
  auto self = shared_from_this();  // keeps the client alive while this call waits
  uint64_t id = next_id_++;
  auto p = std::make_shared<Pending>();
  p->deadline = Clock::now() + timeout;
  p->timeout = timeout;
  p->sink = sink;
  pending_.emplace(id, p);
  out_->Push(static_cast<uint16_t>(type), id, 0, std::move(payload), std::move(tail));
  // Push never completes the call itself (a failed send is the writer's, later): the result
  // can only come after the waiter below is in place.
  SP_ASSERT(!p->result);
  co_await asio::async_initiate<const asio::use_awaitable_t<>, void()>(
      [&p](auto handler) {
        p->waiter = std::make_unique<Pending::WaiterFor<decltype(handler)>>(std::move(handler));
      },
      asio::use_awaitable);
  if (!p->result) {
    // Only Close() (which sets every result) or the sweep end the wait; be safe anyway.
    pending_.erase(id);
    co_return Error(Code::kUnavailable, "request interrupted");
  }
  co_return std::move(*p->result);
}

asio::awaitable<void> RpcClient::WriteLoop() {
  auto self = shared_from_this();
  co_await out_->Run([this] { return open_; }, [this] { Close(); });
}

asio::awaitable<void> RpcClient::SweepLoop() {
  auto self = shared_from_this();
  // One timer for every call's timeout: a timer per call would reprogram the kernel's timer
  // on each request.
  while (open_) {
    sweep_.expires_after(kTimeoutSweep);
    co_await WaitOn(sweep_);
    const auto now = Clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      Pending& p = *it->second;
      if (p.deadline > now || p.receiving) {
        ++it;
        continue;
      }
      p.result = Error(Code::kUnavailable, "request timed out after {} ms", p.timeout.count());
      std::shared_ptr<Pending> done = std::move(it->second);
      it = pending_.erase(it);
      // Resumed later: the caller may start calls of its own, changing pending_ under this loop.
      done->CompleteLater(socket_.get_executor());
    }
  }
}

asio::awaitable<void> RpcClient::ReadLoop() {
  auto self = shared_from_this();
  FrameReader reader;
  auto sink_for = [this](const proto::FrameHeader& h) {
    auto it = pending_.find(h.request_id);
    if (it == pending_.end() || it->second->sink.empty()) return std::span<uint8_t>();
    it->second->receiving = true;
    return it->second->sink;
  };
  while (open_) {
    auto frame = co_await reader.Next(socket_, sink_for);
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
    p->Complete();
  }
}

}  // namespace spindle::net
