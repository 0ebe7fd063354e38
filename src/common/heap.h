// Heap settings for the data-path daemons.
#pragma once

namespace spindle {

// Keeps freed I/O buffers (up to 1 MiB and more per request) in the process's heap instead of
// handing them back to the kernel: glibc otherwise maps large blocks with mmap, or trims the
// heap top after a free, and the next request's buffer is faulted in again page by page. On a
// virtual machine each such fault costs microseconds, 256 of them per 1 MiB read (measured:
// 1 MiB reads through spindle-block 300 MB/s without this, 1 650 MB/s with it). The memory so
// kept is bounded by the daemons' in-flight limits. Call once at the start of main().
void KeepFreedIoBuffers();

}  // namespace spindle
