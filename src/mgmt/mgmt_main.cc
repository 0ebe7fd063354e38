#include "mgmt/mgmt_main.h"

#include <pthread.h>

#include <csignal>
#include <thread>

#include "common/config.h"
#include "common/log.h"
#include "mgmt/api.h"
#include "mgmt/api_common.h"
#include "mgmt/cluster.h"
#include "mgmt/http_server.h"
#include "mgmt/sqlite_store.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

struct Settings {
  std::string db;
  std::string host;
  int port = 81;
  ApiOptions api;
  ClusterOptions cluster;
  FaultSetConfig fault_sets;
};

Result<Settings> LoadSettings(const MgmtFlags& flags) {
  ConfigLoadOptions lo;
  lo.path = flags.config;
  lo.section = flags.node;
  lo.missing_ok = true;
  SP_ASSIGN_OR_RETURN(Config cfg, Config::Load(lo));
  Settings s;
  s.db = flags.db.empty()
             ? cfg.GetOr("SP_MGMT_DB", cfg.GetOr("SP_WORKDIR", "/var/run/storpool") + "/mgmt.db")
             : flags.db;
  s.host = cfg.GetOr("SP_API_HTTP_HOST", "127.0.0.1");
  SP_ASSIGN_OR_RETURN(int64_t port, cfg.GetInt("SP_API_HTTP_PORT", 81));
  s.port = flags.listen_port >= 0 ? flags.listen_port : static_cast<int>(port);
  if (s.port < 0 || s.port > 65535) return Error(Code::kInvalidArgument, "bad API port {}", s.port);
  s.api.auth_token = cfg.GetOr("SP_AUTH_TOKEN", "");
  if (s.api.auth_token.empty()) {
    return Error(Code::kInvalidArgument, "SP_AUTH_TOKEN is not configured");
  }
  SP_ASSIGN_OR_RETURN(int64_t hb, cfg.GetInt("SP_HEARTBEAT_TIMEOUT_MS", 5000));
  if (hb < 100) return Error(Code::kInvalidArgument, "SP_HEARTBEAT_TIMEOUT_MS must be >= 100");
  s.cluster.heartbeat_timeout = std::chrono::milliseconds(hb);
  s.cluster.cluster_id = cfg.GetOr("SP_CLUSTER_ID", "");
  if (!s.cluster.cluster_id.empty() && !proto::IsClusterId(s.cluster.cluster_id)) {
    return Error(Code::kInvalidArgument, "SP_CLUSTER_ID '{}' is not 'location.cluster'",
                 s.cluster.cluster_id);
  }
  s.cluster.cluster_name = cfg.GetOr("SP_CLUSTER_NAME", "");
  SP_ASSIGN_OR_RETURN(s.fault_sets, ParseFaultSetConfig(cfg.GetOr("SP_FAULT_SETS", "")));
  SP_ASSIGN_OR_RETURN(int64_t node, cfg.GetInt("SP_OURID", 0));
  s.cluster.node_id = static_cast<uint32_t>(node);
  return s;
}

}  // namespace

Status RunMgmt(const MgmtFlags& flags) {
  SP_ASSIGN_OR_RETURN(Settings s, LoadSettings(flags));
  // Signals are taken by one thread with sigwait; block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  SP_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(s.db));
  SP_ASSIGN_OR_RETURN(std::unique_ptr<Cluster> cluster, Cluster::Open(std::move(store), s.cluster));
  if (!s.fault_sets.empty()) {
    SP_ASSIGN_OR_RETURN(int64_t gen, cluster->Mutate([&](State& st) {
      return ApplyFaultSetConfig(st, s.fault_sets);
    }));
    SP_LOG_INFO("{} fault set(s) from SP_FAULT_SETS applied (generation {})", s.fault_sets.size(),
                gen);
  }
  Api api(*cluster, s.api);
  HttpServer http(api, *cluster);
  SP_ASSIGN_OR_RETURN(int port, http.Bind(s.host, s.port));
  cluster->StartLivenessThread();
  SP_LOG_INFO("spindle-mgmt listening on {}:{}, state in {}, generation {}", s.host, port, s.db,
              cluster->generation());
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    SP_LOG_INFO("signal {}: stopping", sig);
    http.Stop();
  });
  Status st = http.Run();
  if (!st.ok()) {
    // Wake the signal thread so it can be joined.
    pthread_kill(waiter.native_handle(), SIGTERM);
  }
  waiter.join();
  cluster->Stop();
  return st;
}

}  // namespace spindle::mgmt
