// HttpServer: the cpp-httplib adapter in front of Api. Takes the raw request target (so '#'
// in names stays part of the path), enforces the body limit, and turns every HTTP-level error
// (413, unknown method, ...) into the StorPool error envelope. Runs its own thread pool.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "mgmt/api.h"

namespace httplib {
class Server;
}

namespace spindle::mgmt {

inline constexpr int kHttpThreads = 32;  // long-polls hold a thread each

class HttpServer {
 public:
  HttpServer(Api& api, Cluster& cluster);
  ~HttpServer();
  // Binds host:port (port 0 picks a free one); returns the bound port.
  Result<int> Bind(const std::string& host, int port);
  // Serves until Stop(); call from one thread after Bind.
  Status Run();
  void Stop();

 private:
  Api& api_;
  Cluster& cluster_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace spindle::mgmt
