// nagare: the command-line tool. `pub`, `sub`, `stream` and `consumer` talk to
// a broker (--url, --token); `log verify|dump` work offline on a partition
// directory.
// Exceptions end here as one line on stderr.
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/cli/client_commands.h"
#include "tools/cli/log_command.h"
#include "tools/cli/sub_command.h"

int main(int argc, char** argv) {
    using namespace nagare::cli;
    try {
        CLI::App app{"nagare: command-line tool of the nagare message broker"};
        app.require_subcommand(1);
        connection_options connection;
        auto add_connection = [&](CLI::App* cmd) {
            cmd->add_option("--url", connection.url, "broker url (default nagare://127.0.0.1:4150)");
            cmd->add_option("--token", connection.token, "auth token");
        };

        pub_options pub;
        auto* pub_cmd = app.add_subcommand("pub", "publish: prints stream, partition, offset, duplicate");
        add_connection(pub_cmd);
        pub_cmd->add_option("project", pub.project, "project (ordering key)")->required();
        pub_cmd->add_option("subject", pub.subject, "subject, e.g. task.updated")->required();
        pub_cmd->add_option("data", pub.data, "payload; @file or - publish one message per line");
        pub_cmd->add_option("--msg-id", pub.msg_id, "msg_id (default: a new ULID per message)");
        pub_cmd->add_option("--count", pub.count, "publish the data this many times");

        sub_options sub;
        auto* sub_cmd = app.add_subcommand(
            "sub",
            "subscribe: one line per message (partition, offset, subject, project, msg_id, "
            "delivery_count, payload), each acked");
        add_connection(sub_cmd);
        sub_cmd->add_option("stream", sub.stream, "stream name, e.g. events")->required();
        sub_cmd->add_option("--project", sub.project, "only this project's messages");
        sub_cmd->add_option("--subjects", sub.subjects, "subject patterns, e.g. 'task.*,order.>'")
            ->delimiter(',');
        sub_cmd->add_option("--consumer", sub.consumer,
                            "durable consumer name (default: ephemeral)");
        sub_cmd->add_option("--from", sub.from,
                            "all | new | last (per subject, needs --project) | OFFSET | TIME "
                            "(RFC 3339, or Unix ns as 1748149200000000000ns); default all");
        sub_cmd->add_option("--ack", sub.ack, "explicit | none (default explicit)");
        sub_cmd->add_option("--count", sub.count, "exit after this many messages");
        sub_cmd->add_option("--timeout", sub.timeout,
                            "exit after this long, e.g. 10s (with --count: exit 1 if short)");

        auto* consumer = app.add_subcommand("consumer", "durable consumers of a stream");
        consumer->require_subcommand(1);
        std::string consumer_stream, consumer_name;
        auto* consumer_ls = consumer->add_subcommand("ls", "every consumer of a stream");
        add_connection(consumer_ls);
        consumer_ls->add_option("stream", consumer_stream, "stream name")->required();
        auto* consumer_info = consumer->add_subcommand(
            "info",
            "a consumer's filter, pending, ack floors, redeliveries, dead letters, terminated");
        add_connection(consumer_info);
        consumer_info->add_option("stream", consumer_stream, "stream name")->required();
        consumer_info->add_option("name", consumer_name, "consumer name")->required();
        auto* consumer_rm =
            consumer->add_subcommand("rm", "delete a durable consumer and its state");
        add_connection(consumer_rm);
        consumer_rm->add_option("stream", consumer_stream, "stream name")->required();
        consumer_rm->add_option("name", consumer_name, "consumer name")->required();

        auto* stream = app.add_subcommand("stream", "streams on a broker");
        stream->require_subcommand(1);
        stream_add_options add;
        auto* add_cmd = stream->add_subcommand("add", "create a stream");
        add_connection(add_cmd);
        add_cmd->add_option("name", add.name, "stream name")->required();
        add_cmd->add_option("--subjects", add.subjects, "subject patterns, e.g. 'audit.>'")
            ->required()->delimiter(',');
        add_cmd->add_option("--partitions", add.partitions, "partitions (default: shards)");
        add_cmd->add_option("--max-age", add.max_age, "retention by age, e.g. 7d");
        add_cmd->add_option("--max-bytes", add.max_bytes, "retention by size, e.g. 10GiB");
        add_cmd->add_option("--segment-bytes", add.segment_bytes, "segment size, e.g. 64MiB");
        add_cmd->add_option("--dedup-window", add.dedup_window, "dedup window, e.g. 30s");
        add_cmd->add_option("--durability", add.durability, "fsync | interval | none");
        add_cmd->add_flag("--private", add.is_private, "readable only with an admin token");
        std::string info_name, rm_name;
        auto* info_cmd = stream->add_subcommand("info", "a stream's config and partitions");
        add_connection(info_cmd);
        info_cmd->add_option("name", info_name, "stream name")->required();
        auto* ls_cmd = stream->add_subcommand("ls", "every stream");
        add_connection(ls_cmd);
        auto* rm_cmd = stream->add_subcommand("rm", "delete a stream and its data");
        add_connection(rm_cmd);
        rm_cmd->add_option("name", rm_name, "stream name")->required();

        auto* log = app.add_subcommand("log", "offline checks of a partition directory");
        log->require_subcommand(1);
        std::string verify_dir;
        auto* verify = log->add_subcommand(
            "verify", "check every batch and index; exit 1 on any fault, naming file and position");
        verify->add_option("dir", verify_dir, "partition directory")->required();
        std::string dump_dir;
        dump_options dump_opts;
        auto* dump = log->add_subcommand(
            "dump", "one line per record: offset, time, project, subject, msg_id, payload bytes");
        dump->add_option("dir", dump_dir, "partition directory")->required();
        dump->add_option("--from", dump_opts.from_offset, "first offset to print");
        dump->add_option("--limit", dump_opts.limit, "records to print at most");

        CLI11_PARSE(app, argc, argv);
        if (pub_cmd->parsed()) return publish_command(connection, pub, std::cout, std::cerr);
        if (sub_cmd->parsed()) return subscribe_command(connection, sub, std::cout, std::cerr);
        if (consumer_ls->parsed()) {
            return consumer_list_command(connection, consumer_stream, std::cout, std::cerr);
        }
        if (consumer_info->parsed()) {
            return consumer_info_command(connection, consumer_stream, consumer_name, std::cout,
                                         std::cerr);
        }
        if (consumer_rm->parsed()) {
            return consumer_remove_command(connection, consumer_stream, consumer_name, std::cout,
                                           std::cerr);
        }
        if (add_cmd->parsed()) return stream_add_command(connection, add, std::cout, std::cerr);
        if (info_cmd->parsed()) return stream_info_command(connection, info_name, std::cout, std::cerr);
        if (ls_cmd->parsed()) return stream_list_command(connection, std::cout, std::cerr);
        if (rm_cmd->parsed()) return stream_remove_command(connection, rm_name, std::cout, std::cerr);
        if (verify->parsed()) return verify_log(verify_dir, std::cout);
        if (dump->parsed()) return dump_log(dump_dir, dump_opts, std::cout, std::cerr);
        return exit_unusable;
    } catch (const std::exception& e) {
        std::cerr << "nagare: " << e.what() << "\n";
        return exit_unusable;
    }
}
