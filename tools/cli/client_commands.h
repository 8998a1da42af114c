// `nagare pub`, `nagare stream add|info|ls|rm` and `nagare consumer
// ls|info|rm`: the commands that talk to a running broker through the client
// library (`nagare sub` is in sub_command.h). Each returns the process
// exit code (0 ok, 1 the broker refused, 2 unusable input or no broker)
// and prints one clear line on failure.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "nagare/error.h"
#include "tools/cli/exit_codes.h"

namespace nagare::cli {

struct connection_options {
    std::string url = "nagare://127.0.0.1:4150";
    std::string token;
};

// Prints "nagare: CODE: message" and returns the exit code for it.
int report_error(const client::error& e, std::ostream& err);

struct pub_options {
    std::string project;
    std::string subject;
    std::string data;  // the payload; "@path": one message per line of the file; "-": per line of stdin
    std::string msg_id;
    std::uint64_t count = 1;
};

int publish_command(const connection_options& connection, const pub_options& options,
                    std::ostream& out, std::ostream& err);

struct stream_add_options {
    std::string name;
    std::vector<std::string> subjects;
    std::uint32_t partitions = 0;
    std::string max_age;        // e.g. 7d
    std::string max_bytes;      // e.g. 10GiB
    std::string segment_bytes;  // e.g. 64MiB
    std::string dedup_window;   // e.g. 30s
    std::string durability = "fsync";
    bool is_private = false;
};

int stream_add_command(const connection_options& connection, const stream_add_options& options,
                       std::ostream& out, std::ostream& err);
int stream_info_command(const connection_options& connection, const std::string& name,
                        std::ostream& out, std::ostream& err);
int stream_list_command(const connection_options& connection, std::ostream& out, std::ostream& err);
int stream_remove_command(const connection_options& connection, const std::string& name,
                          std::ostream& out, std::ostream& err);

// `nagare consumer ls|info|rm`: durable consumers of a stream.
int consumer_list_command(const connection_options& connection, const std::string& stream,
                          std::ostream& out, std::ostream& err);
int consumer_info_command(const connection_options& connection, const std::string& stream,
                          const std::string& name, std::ostream& out, std::ostream& err);
int consumer_remove_command(const connection_options& connection, const std::string& stream,
                            const std::string& name, std::ostream& out, std::ostream& err);

}  // namespace nagare::cli
