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

}  // namespace spindle::server::jdisk
