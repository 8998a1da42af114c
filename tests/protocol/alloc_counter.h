// Counts calls to the global operator new in this test binary (replaced in
// alloc_counter.cc), to show that a code path allocates nothing.
#pragma once

#include <cstddef>

namespace nagare::protocol::testing {
[[nodiscard]] std::size_t allocations() noexcept;
}  // namespace nagare::protocol::testing
