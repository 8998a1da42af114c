// wait_until: the bounded wait of every test that waits for another thread
// or process: polls `pred` every millisecond for at most `limit`.
#pragma once

#include <chrono>
#include <thread>

namespace nagare::testing {

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds{10}) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    return true;
}

}  // namespace nagare::testing
