#include "client/routing_table.h"

#include "client/limits.h"
#include "protocol/frame.h"
#include "protocol/routing.h"
#include "protocol/subject.h"

namespace nagare::client {

namespace fb = protocol::fb;

inline constexpr std::string_view default_stream = "events";

routing_table routing_table::from_hello(const fb::HelloOk& hello, std::uint16_t main_port,
                                        bool shard_aware) {
    routing_table table(main_port);
    const auto* ports = hello.shard_ports();
    if (!shard_aware || hello.partition_rule() != fb::PartitionRule::XXH3_64 || ports == nullptr ||
        ports->size() == 0 || hello.shard_count() == 0 || hello.shard_count() > shard_count_max ||
        ports->size() != hello.shard_count()) {
        return table;
    }
    for (const auto port : *ports) {
        if (port == 0) return table;
    }
    if (const auto* streams = hello.streams(); streams != nullptr) {
        for (const auto* s : *streams) {
            const auto name = protocol::view(s->name());
            if (name == default_stream) {
                table._events_partitions = s->partitions();
                continue;
            }
            stream_route route{std::string(name), {}, s->partitions()};
            if (const auto* subjects = s->subjects(); subjects != nullptr) {
                for (const auto* p : *subjects) {
                    if (protocol::validate_pattern(protocol::view(p)) == protocol::errc::none) {
                        route.subjects.emplace_back(protocol::view(p));
                    }
                }
            }
            table._streams.push_back(std::move(route));
        }
    }
    table._shard_ports.assign(ports->begin(), ports->end());
    return table;
}

std::uint16_t routing_table::port_for(std::string_view project,
                                      std::string_view subject) const noexcept {
    if (_shard_ports.empty()) return _main_port;
    std::string_view stream = default_stream;
    std::uint32_t partitions = _events_partitions;
    for (const auto& s : _streams) {
        bool matched = false;
        for (const auto& pattern : s.subjects) {
            if (protocol::subject_matches(pattern, subject)) {
                matched = true;
                break;
            }
        }
        if (matched) {
            stream = s.name;
            partitions = s.partitions;
            break;
        }
    }
    if (partitions == 0) return _main_port;  // the server knows better: let it forward
    const auto partition = protocol::partition_for_project(project, partitions);
    const auto shard = protocol::shard_for_partition(
        stream, partition, static_cast<std::uint32_t>(_shard_ports.size()));
    return _shard_ports[shard.value];
}

}  // namespace nagare::client
