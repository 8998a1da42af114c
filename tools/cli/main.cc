// nagare: the command-line tool. `nagare log verify|dump <partition dir>` for
// now (offline, read-only); pub, sub, stream and consumer commands come with
// the client library. Exceptions end here as one line on stderr.
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/cli/log_command.h"

int main(int argc, char** argv) {
    try {
        CLI::App app{"nagare: command-line tool of the nagare message broker"};
        app.require_subcommand(1);
        auto* log = app.add_subcommand("log", "offline checks of a partition directory");
        log->require_subcommand(1);

        std::string verify_dir;
        auto* verify = log->add_subcommand(
            "verify", "check every batch and index; exit 1 on any fault, naming file and position");
        verify->add_option("dir", verify_dir, "partition directory")->required();

        std::string dump_dir;
        nagare::cli::dump_options dump_options;
        auto* dump = log->add_subcommand(
            "dump", "one line per record: offset, time, project, subject, msg_id, payload bytes");
        dump->add_option("dir", dump_dir, "partition directory")->required();
        dump->add_option("--from", dump_options.from_offset, "first offset to print");
        dump->add_option("--limit", dump_options.limit, "records to print at most");

        CLI11_PARSE(app, argc, argv);
        if (verify->parsed()) return nagare::cli::verify_log(verify_dir, std::cout);
        if (dump->parsed())
            return nagare::cli::dump_log(dump_dir, dump_options, std::cout, std::cerr);
        return nagare::cli::exit_unusable;
    } catch (const std::exception& e) {
        std::cerr << "nagare: " << e.what() << "\n";
        return nagare::cli::exit_unusable;
    }
}
