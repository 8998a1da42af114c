// nagare_target: the `nagare` target of nagare-bench, over the C++ client
// library (client/include/nagare/client.h) and its admin session.
//
// Each connection is one nagare::client::Client (its own I/O thread,
// shard-aware routing, in-flight window = connection_options.inflight_messages,
// frames of at most connection_options.batch_messages). A publish passes the
// sink and the token to the client in a callback small enough for
// std::function's inline storage: no allocation per message on our side.
#pragma once

#include <memory>
#include <string>

#include "bench/target.h"

namespace nagare::bench {

struct nagare_target_options {
    std::string url = "nagare://127.0.0.1:4150";
    std::string token;
};

[[nodiscard]] std::unique_ptr<target> make_nagare_target(nagare_target_options options);

}  // namespace nagare::bench
