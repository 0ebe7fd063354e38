// spindle-jdisk: initialise and inspect disks of the journaled store (format version 3).
//   spindle-jdisk init  --file PATH --disk-id N --cluster-id ID [--size BYTES] [--journal BYTES]
//   spindle-jdisk info  --file PATH     superblock, checkpoint, journal and objects as JSON
//   spindle-jdisk check --file PATH     verifies every structure and every block's crc32c,
//                                        read-only; exit status 1 when anything is wrong
//   spindle-jdisk bench --file PATH --mode M --bs N --qd N --seconds N --span BYTES
//                                        the store's load generator (bench/disk_store)
//   spindle-jdisk sync-floor --dir DIR [--writers N]   durable writes on N files in lockstep:
//                                        the device's floor for a replicated durable write
// Both inspection modes open the store read-only: the journal is replayed in memory only.
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "env/env.h"
#include "server/disk_store/jstore.h"
#include "server/tools/jdisk_bench.h"

namespace spindle::server::jdisk {
namespace {

int Fail(const Status& s) {
  std::cerr << "spindle-jdisk: " << s.ToString() << "\n";
  return 1;
}

Result<std::unique_ptr<JStore>> OpenReadOnly(const std::string& file) {
  StoreOptions opts;
  opts.read_only = true;
  return JStore::Open(env::Env::Default(), file, "", opts);
}

nlohmann::json Summary(const JStore& store) {
  const Superblock& sb = store.superblock();
  const StoreStats st = store.Stats();
  const OpenReport& r = store.open_report();
  return {{"formatVersion", sb.format_version},
          {"diskId", sb.disk.value()},
          {"clusterId", sb.cluster_id},
          {"deviceBytes", sb.device_bytes},
          {"initTime", sb.init_unix_seconds},
          {"journal",
           {{"offset", sb.journal_offset},
            {"bytes", sb.journal_bytes},
            {"replayedRecords", r.replayed_records},
            {"droppedRecords", r.dropped_records},
            {"lastSeq", r.last_seq},
            {"endPosition", r.journal_end}}},
          {"checkpoint",
           {{"copy", r.checkpoint_copy},
            {"generation", r.checkpoint_generation},
            {"seq", r.checkpoint_seq},
            {"otherCopy", r.other_copy}}},
          {"data",
           {{"offset", sb.data_offset},
            {"chunks", sb.data_chunks},
            {"bytes", st.data_bytes},
            {"onDiskBytes", st.on_disk_bytes},
            {"storedBytes", st.bytes_stored}}},
          {"memory",
           {{"indexBytes", st.index_bytes},
            {"crcBytes", st.crc_bytes},
            {"journaledBlocks", st.dirty_blocks}}},
          {"objects", st.objects}};
}

int Init(const std::string& file, uint32_t disk_id, const std::string& cluster, uint64_t size,
         uint64_t journal) {
  Status s = JStore::Init(env::Env::Default(), file, {DiskId(disk_id), cluster, size, journal});
  if (!s.ok()) return Fail(s);
  std::cout << "OK\n";
  return 0;
}

int Info(const std::string& file) {
  auto store = OpenReadOnly(file);
  if (!store.ok()) return Fail(store.status());
  nlohmann::json out = Summary(**store);
  nlohmann::json objects = nlohmann::json::array();
  for (const ObjectEntry& e : (*store)->List()) {
    objects.push_back({{"layer", e.layer.value()},
                       {"object", e.object.value()},
                       {"version", e.info.version},
                       {"state", static_cast<uint32_t>(e.info.state)},
                       {"blocks_present", e.info.blocks_present},
                       {"chunks", e.chunks}});
  }
  out["objectList"] = std::move(objects);
  std::cout << out.dump(2) << "\n";
  return 0;
}

int Check(const std::string& file) {
  auto store = OpenReadOnly(file);
  if (!store.ok()) return Fail(store.status());
  std::vector<std::string> problems = (*store)->CheckIndex();
  auto bad_blocks = (*store)->Verify();
  if (!bad_blocks.ok()) return Fail(bad_blocks.status());
  nlohmann::json out = Summary(**store);
  out["indexProblems"] = problems;
  out["badBlocks"] = *bad_blocks;
  out["ok"] = problems.empty() && bad_blocks->empty();
  std::cout << out.dump(2) << "\n";
  return out["ok"].get<bool>() ? 0 : 1;
}

}  // namespace
}  // namespace spindle::server::jdisk

int main(int argc, char** argv) {
  using namespace spindle::server::jdisk;
  CLI::App app{"spindle-jdisk: journaled-store disk tool"};
  app.require_subcommand(1);
  std::string file, cluster;
  uint32_t disk_id = 0;
  uint64_t size = 0, journal = 0;
  auto* init = app.add_subcommand("init", "write a superblock and an empty checkpoint");
  init->add_option("--file", file, "disk file or block device")->required();
  init->add_option("--disk-id", disk_id, "disk id 0..4095")->required();
  init->add_option("--cluster-id", cluster, "cluster id (SP_CLUSTER_ID)")->required();
  init->add_option("--size", size, "size in bytes (0: current size)");
  init->add_option("--journal", journal, "journal bytes (0: device/32, 2..256 MiB)");
  auto* info = app.add_subcommand("info", "print superblock, checkpoint, journal, objects");
  info->add_option("--file", file, "disk file or block device")->required();
  auto* check = app.add_subcommand("check", "verify every structure and block, read-only");
  check->add_option("--file", file, "disk file or block device")->required();
  BenchOptions bo;
  auto* bench = app.add_subcommand("bench", "load generator: IOPS and latency as JSON");
  bench->add_option("--file", bo.file, "initialised disk file")->required();
  bench->add_option("--mode", bo.mode, "randwrite|randread|seqwrite|seqread");
  bench->add_option("--bs", bo.block_bytes, "bytes per request");
  bench->add_option("--qd", bo.qd, "concurrent requests");
  bench->add_option("--seconds", bo.seconds, "run time");
  bench->add_option("--span", bo.span_bytes, "bytes of layer 1 used");
  bench->add_option("--ops", bo.max_ops, "requests per caller (0: until --seconds)");
  SyncFloorOptions so;
  auto* floor = app.add_subcommand(
      "sync-floor", "writers in lockstep, each a write and an fdatasync on its own file: JSON");
  floor->add_option("--dir", so.dir, "directory for the files (removed at the end)")->required();
  floor->add_option("--writers", so.writers, "files written at once (1..16)");
  floor->add_option("--bs", so.block_bytes, "bytes per write");
  floor->add_option("--seconds", so.seconds, "run time");
  floor->add_option("--file-size", so.file_bytes, "bytes per file, written whole first");
  floor->add_flag("--one-sync", so.one_sync, "the writers only write; one fdatasync follows");
  CLI11_PARSE(app, argc, argv);
  if (bench->parsed()) return RunBench(bo);
  if (floor->parsed()) return RunSyncFloor(so);
  if (init->parsed()) return Init(file, disk_id, cluster, size, journal);
  if (info->parsed()) return Info(file);
  return Check(file);
}
