// The load generator behind `spindle-jdisk bench` (see jdisk_bench.cc).
#pragma once

#include <cstdint>
#include <string>

namespace spindle::server::jdisk {

struct BenchOptions {
  std::string file;
  std::string mode = "randwrite";  // randwrite | randread | seqwrite | seqread
  uint32_t block_bytes = 4096;
  uint32_t qd = 1;  // concurrent blocking callers
  uint32_t seconds = 10;
  uint64_t span_bytes = 1024ull * 1024 * 1024;  // objects 0.. cover this much of layer 1
  uint64_t max_ops = 0;  // per caller; 0: until `seconds` pass (seqwrite span/bs: one pass)
};

int RunBench(const BenchOptions& options);

// `spindle-jdisk sync-floor`: the device's floor for a durable write made on several files at
// once, as a replicated write's replicas make it when their disks share one device. Each round,
// `writers` threads start together, each writes `block_bytes` at a random offset of its own file
// and calls fdatasync; the round ends when the last one returns. Prints the rounds' p50/p90/p99.
// With `one_sync` the writers only write and one fdatasync follows them all: the best a flush
// shared by every replica on the device could do.
struct SyncFloorOptions {
  std::string dir;
  uint32_t writers = 3;
  uint32_t block_bytes = 4096;
  uint32_t seconds = 10;
  uint64_t file_bytes = 256ull * 1024 * 1024;  // each file written whole before the rounds
  bool one_sync = false;
};

int RunSyncFloor(const SyncFloorOptions& options);

}  // namespace spindle::server::jdisk
