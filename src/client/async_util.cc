#include "client/async_util.h"

namespace spindle::client {
namespace {

struct Group {
  explicit Group(asio::any_io_executor ex, size_t n) : results(n), left(n), done(ex) {}
  std::vector<Status> results;
  size_t left;
  AsyncSignal done;
};

asio::awaitable<void> RunOne(std::shared_ptr<Group> g, size_t i, asio::awaitable<Status> task) {
  g->results[i] = co_await std::move(task);
  if (--g->left == 0) g->done.NotifyAll();
}

}  // namespace

asio::awaitable<std::vector<Status>> RunAll(asio::any_io_executor ex,
                                            std::vector<asio::awaitable<Status>> tasks) {
  if (tasks.size() == 1) {
    std::vector<Status> one;
    one.push_back(co_await std::move(tasks[0]));
    co_return one;
  }
  auto g = std::make_shared<Group>(ex, tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    asio::co_spawn(ex, RunOne(g, i, std::move(tasks[i])), LogExceptions{});
  }
  while (g->left > 0) co_await g->done.Wait();
  co_return std::move(g->results);
}

Status FirstError(const std::vector<Status>& all) {
  for (const auto& s : all) {
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace spindle::client
