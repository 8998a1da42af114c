// Where a shard-aware client sends a message: the port of the shard that
// owns the message's partition (docs/protocol.md, "Routing").
//
// Built from a HelloOk. The stream of a subject is the first stream other
// than `events` whose subject patterns match it, else `events`; partition =
// xxh3_64(project) % partitions; shard = (xxh3_64(stream) + partition) %
// shard_count; port = shard_ports[shard]. A plain table (shard_aware off, a
// HelloOk without usable shard ports or with an unknown partition rule, or a
// stream the table cannot place) answers the url's port.
//
// Immutable once built; the client reads it under its mutex.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/nagare_generated.h"

namespace nagare::client {

class routing_table {
public:
    // Everything to main_port.
    explicit routing_table(std::uint16_t main_port) noexcept : _main_port(main_port) {}

    [[nodiscard]] static routing_table from_hello(const protocol::fb::HelloOk& hello,
                                                  std::uint16_t main_port, bool shard_aware);

    // REQUIRES: subject and project are valid (validate_subject, validate_project).
    [[nodiscard]] std::uint16_t port_for(std::string_view project,
                                         std::string_view subject) const noexcept;

    [[nodiscard]] bool shard_aware() const noexcept { return !_shard_ports.empty(); }
    [[nodiscard]] std::uint16_t main_port() const noexcept { return _main_port; }

private:
    struct stream_route {
        std::string name;
        std::vector<std::string> subjects;  // valid patterns only
        std::uint32_t partitions = 0;
    };

    std::uint16_t _main_port;
    std::vector<std::uint16_t> _shard_ports;  // empty: plain
    std::vector<stream_route> _streams;       // without `events`, in HelloOk order
    std::uint32_t _events_partitions = 0;     // 0: no `events` stream announced
};

}  // namespace nagare::client
