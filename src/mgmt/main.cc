// spindle-mgmt: parses flags and configuration, opens the state store, serves the API.
#include <csignal>
#include <cstdlib>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/config.h"
#include "common/log.h"
#include "mgmt/mgmt_main.h"

int main(int argc, char** argv) {
  spindle::mgmt::MgmtFlags flags;
  CLI::App app{"spindle-mgmt: Spindle management daemon and API"};
  app.add_option("--config", flags.config, "configuration file (instead of /etc/storpool.conf)");
  app.add_option("--node", flags.node, "configuration section to apply (default: host name)");
  app.add_option("--db", flags.db, "state database file (default: SP_MGMT_DB)");
  app.add_option("--listen-port", flags.listen_port, "API port (default: SP_API_HTTP_PORT)");
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  spindle::InitLogging("spindle-mgmt", flags.log_level);
  spindle::Status st = spindle::mgmt::RunMgmt(flags);
  if (!st.ok()) {
    SP_LOG_ERROR("spindle-mgmt: {}", st.ToString());
    return 1;
  }
  return 0;
}
