#include "common/heap.h"

#include <malloc.h>

#include "common/units.h"

namespace spindle {

void KeepFreedIoBuffers() {
  // glibc's largest mmap threshold (32 MiB on 64-bit): smaller blocks come from the heap.
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(32 * kMiB));
  // Free memory at the heap's top is returned only past this much.
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(256 * kMiB));
}

}  // namespace spindle
