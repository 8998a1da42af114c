#include "tools/cli/client_commands.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <type_traits>

#include "nagare/admin.h"
#include "nagare/client.h"
#include "protocol/units.h"

namespace nagare::cli {

namespace fb = protocol::fb;

int report_error(const client::error& e, std::ostream& err) {
    err << "nagare: " << client::errc_name(e.code) << ": " << e.message << "\n";
    return e.code == client::errc_unavailable || e.code == protocol::errc::bad_request
               ? exit_unusable
               : exit_refused;
}

namespace {

int report(const client::error& e, std::ostream& err) { return report_error(e, err); }

void print_position(const client::position& p, std::ostream& out) {
    out << "stream=" << p.stream << " partition=" << p.partition.value
        << " offset=" << p.offset.value << " duplicate=" << (p.duplicate ? "true" : "false")
        << "\n";
}

std::vector<std::string> payloads_of(const pub_options& o, std::ostream& err, bool& ok) {
    ok = true;
    std::vector<std::string> lines;
    auto read_lines = [&](std::istream& in) {
        std::string line;
        while (std::getline(in, line)) lines.push_back(line);
    };
    if (o.data == "-") {
        read_lines(std::cin);
    } else if (o.data.starts_with('@')) {
        std::ifstream in(o.data.substr(1));
        if (!in) {
            err << "nagare: cannot read " << o.data.substr(1) << "\n";
            ok = false;
            return {};
        }
        read_lines(in);
    } else {
        lines.push_back(o.data);
    }
    return lines;
}

}  // namespace

int publish_command(const connection_options& connection, const pub_options& o, std::ostream& out,
                    std::ostream& err) {
    bool ok = true;
    const auto payloads = payloads_of(o, err, ok);
    if (!ok) return exit_unusable;
    client::options opts;
    opts.token = connection.token;
    opts.client_name = "nagare-cli";
    opts.give_up_after = std::chrono::seconds(10);
    auto c = client::Client::connect(connection.url, opts);
    if (!c) return report(c.error(), err);
    const std::uint64_t total = o.count * payloads.size();
    const bool each_line = total <= 100;
    std::vector<std::future<client::publish_result>> results;
    const auto started = std::chrono::steady_clock::now();
    std::uint64_t stored = 0, duplicates = 0, failed = 0;
    auto settle = [&](std::future<client::publish_result>& f) {
        const auto r = f.get();
        if (!r) {
            ++failed;
            report(r.error(), err);
            return;
        }
        (r->duplicate ? duplicates : stored) += 1;
        if (each_line) print_position(*r, out);
    };
    for (std::uint64_t n = 0; n < o.count; ++n) {
        for (const auto& payload : payloads) {
            client::publish_options p;
            p.msg_id = o.msg_id;
            results.push_back((*c)->publish(o.project, o.subject, client::as_payload(payload), p));
            if (results.size() >= 4096) {
                for (auto& f : results) settle(f);
                results.clear();
            }
        }
    }
    for (auto& f : results) settle(f);
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    if (!each_line) {
        out << "published " << total << " messages (" << stored << " stored, " << duplicates
            << " duplicates, " << failed << " failed) in " << static_cast<std::uint64_t>(ms)
            << " ms\n";
    }
    return failed == 0 ? exit_ok : exit_refused;
}

namespace {

// Connects an admin session, runs `call` on it, and returns its value or the exit code.
template <class Call>
auto with_admin(const connection_options& connection, std::ostream& err, Call&& call)
    -> std::expected<typename std::invoke_result_t<Call, client::admin_session&>::value_type, int> {
    auto s = client::admin_session::connect(connection.url, connection.token);
    if (!s) return std::unexpected(report(s.error(), err));
    auto r = call(**s);
    if (!r) return std::unexpected(report(r.error(), err));
    if constexpr (std::is_void_v<typename decltype(r)::value_type>) {
        return {};
    } else {
        return std::move(*r);
    }
}

// Connects, sends one admin request, and returns its result or the exit code.
std::expected<std::unique_ptr<fb::AdminResultT>, int> run_admin(const connection_options& connection,
                                                                fb::AdminT request,
                                                                std::ostream& err) {
    return with_admin(connection, err,
                      [&](client::admin_session& s) { return s.request(std::move(request)); });
}

void print_list(const std::vector<std::string>& items, std::ostream& out) {
    for (std::size_t i = 0; i < items.size(); ++i) out << (i ? "," : "") << items[i];
}

void print_consumer(const client::consumer_status& c, std::ostream& out) {
    out << c.name << ": stream=" << c.stream << " project=" << c.project << " subjects=";
    print_list(c.subjects, out);
    out << " ack=" << (c.ack == client::ack_policy::none ? "none" : "explicit")
        << " ack_wait_ms=" << c.ack_wait_ms << " max_deliver=" << c.max_deliver
        << " max_inflight=" << c.max_inflight << " ordered=" << (c.ordered ? "true" : "false")
        << " pending=" << c.pending << " redelivered=" << c.redelivered
        << " dead_lettered=" << c.dead_lettered << " terminated=" << c.terminated << "\n";
}

const char* durability_name(fb::Durability d) {
    return d == fb::Durability::FSYNC ? "fsync" : d == fb::Durability::INTERVAL ? "interval" : "none";
}

void print_stream(const fb::StreamInfoT& s, std::ostream& out) {
    const auto& c = *s.config;
    std::uint64_t messages = 0, bytes = 0;
    for (const auto& p : s.partitions) {
        messages += p->next_offset - p->first_offset;
        bytes += p->bytes;
    }
    out << c.name << ": subjects=";
    print_list(c.subjects, out);
    out << " partitions=" << c.partitions << " durability=" << durability_name(c.durability)
        << " max_age_ms=" << c.max_age_ms << " max_bytes=" << c.max_bytes
        << " segment_bytes=" << c.segment_bytes << " dedup_window_ms=" << c.dedup_window_ms
        << " private=" << (c.private_stream ? "true" : "false") << " epoch=" << s.epoch
        << " messages=" << messages << " bytes=" << bytes << "\n";
}

}  // namespace

int stream_add_command(const connection_options& connection, const stream_add_options& o,
                       std::ostream& out, std::ostream& err) {
    fb::AdminT request;
    request.op = fb::AdminOp::STREAM_CREATE;
    request.stream = o.name;
    auto config = std::make_unique<fb::StreamConfigT>();
    config->name = o.name;
    config->subjects = o.subjects;
    config->partitions = o.partitions;
    auto quantity = [&](const std::string& text, bool duration, auto& into, const char* what) {
        if (text.empty()) return true;
        auto v = duration ? protocol::parse_duration_ms(text) : protocol::parse_bytes(text);
        if (!v) {
            err << "nagare: " << what << ": " << v.error() << "\n";
            return false;
        }
        into = static_cast<std::remove_reference_t<decltype(into)>>(*v);
        return true;
    };
    if (!quantity(o.max_age, true, config->max_age_ms, "--max-age") ||
        !quantity(o.max_bytes, false, config->max_bytes, "--max-bytes") ||
        !quantity(o.segment_bytes, false, config->segment_bytes, "--segment-bytes") ||
        !quantity(o.dedup_window, true, config->dedup_window_ms, "--dedup-window")) {
        return exit_unusable;
    }
    if (o.durability == "fsync") {
        config->durability = fb::Durability::FSYNC;
    } else if (o.durability == "interval") {
        config->durability = fb::Durability::INTERVAL;
    } else if (o.durability == "none") {
        config->durability = fb::Durability::NONE;
    } else {
        err << "nagare: --durability must be fsync, interval or none\n";
        return exit_unusable;
    }
    config->private_stream = o.is_private;
    request.config = std::move(config);
    auto r = run_admin(connection, std::move(request), err);
    if (!r) return r.error();
    for (const auto& info : (*r)->streams) print_stream(*info, out);
    return exit_ok;
}

int stream_info_command(const connection_options& connection, const std::string& name,
                        std::ostream& out, std::ostream& err) {
    fb::AdminT request;
    request.op = fb::AdminOp::STREAM_INFO;
    request.stream = name;
    auto r = run_admin(connection, std::move(request), err);
    if (!r) return r.error();
    for (const auto& info : (*r)->streams) {
        print_stream(*info, out);
        for (const auto& p : info->partitions) {
            out << "  partition " << p->partition << ": shard=" << p->shard
                << " first_offset=" << p->first_offset << " next_offset=" << p->next_offset
                << " bytes=" << p->bytes << "\n";
        }
    }
    return exit_ok;
}

int stream_list_command(const connection_options& connection, std::ostream& out, std::ostream& err) {
    fb::AdminT request;
    request.op = fb::AdminOp::STREAM_LIST;
    auto r = run_admin(connection, std::move(request), err);
    if (!r) return r.error();
    for (const auto& info : (*r)->streams) print_stream(*info, out);
    return exit_ok;
}

int stream_remove_command(const connection_options& connection, const std::string& name,
                          std::ostream& out, std::ostream& err) {
    fb::AdminT request;
    request.op = fb::AdminOp::STREAM_DELETE;
    request.stream = name;
    auto r = run_admin(connection, std::move(request), err);
    if (!r) return r.error();
    out << "stream " << name << " deleted\n";
    return exit_ok;
}

int consumer_list_command(const connection_options& connection, const std::string& stream,
                          std::ostream& out, std::ostream& err) {
    auto r = with_admin(connection, err,
                        [&](client::admin_session& s) { return s.consumer_list(stream); });
    if (!r) return r.error();
    for (const auto& c : *r) print_consumer(c, out);
    return exit_ok;
}

int consumer_info_command(const connection_options& connection, const std::string& stream,
                          const std::string& name, std::ostream& out, std::ostream& err) {
    auto r = with_admin(connection, err,
                        [&](client::admin_session& s) { return s.consumer_info(stream, name); });
    if (!r) return r.error();
    print_consumer(*r, out);
    for (const auto& [partition, floor] : r->ack_floors) {
        out << "  partition " << partition.value << ": ack_floor=" << floor.value << "\n";
    }
    return exit_ok;
}

int consumer_remove_command(const connection_options& connection, const std::string& stream,
                            const std::string& name, std::ostream& out, std::ostream& err) {
    auto r = with_admin(connection, err,
                        [&](client::admin_session& s) { return s.consumer_delete(stream, name); });
    if (!r) return r.error();
    out << "consumer " << name << " of stream " << stream << " deleted\n";
    return exit_ok;
}

}  // namespace nagare::cli
