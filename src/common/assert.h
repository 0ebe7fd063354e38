// SP_ASSERT: an invariant check that stays on in release builds and crashes with a message.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SP_ASSERT(cond)                                                                 \
  do {                                                                                  \
    if (!(cond)) [[unlikely]] {                                                         \
      std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
