// `nagare sub` and `nagare consumer`: argument parsing (tools/cli/sub_command.h)
// and the binary run against the client tests' fake node.
#include "tools/cli/sub_command.h"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nagare/client.h"
#include "tests/client/fake_server.h"
#include "tests/tools/run_cli.h"
#include "tests/wait_until.h"

namespace nagare::cli {
namespace {

namespace fb = protocol::fb;
using client::testing::fake_options;
using client::testing::fake_server;
using nagare::testing::count_lines;
using nagare::testing::run_cli;
using nagare::testing::wait_until;

constexpr std::uint64_t ns_per_s = 1'000'000'000;

// ---------------------------------------------------------------------------
// --from and times

TEST(SubArguments, FromNamesAPolicyAnOffsetOrATime) {
    EXPECT_EQ(parse_from("all")->policy, client::deliver_policy::all);
    EXPECT_EQ(parse_from("new")->policy, client::deliver_policy::new_only);
    EXPECT_EQ(parse_from("last")->policy, client::deliver_policy::last_per_subject);
    EXPECT_EQ(parse_from("last-per-subject")->policy, client::deliver_policy::last_per_subject);
    const auto offset = parse_from("1234");
    ASSERT_TRUE(offset.has_value());
    EXPECT_EQ(offset->policy, client::deliver_policy::from_offset);
    EXPECT_EQ(offset->offset, 1234u);
    const auto ns = parse_from("1748149200000000000ns");
    ASSERT_TRUE(ns.has_value());
    EXPECT_EQ(ns->policy, client::deliver_policy::from_time);
    EXPECT_EQ(ns->time_ns, 1'748'149'200'000'000'000u);
    const auto rfc = parse_from("2025-05-25T05:00:00Z");
    ASSERT_TRUE(rfc.has_value()) << rfc.error();
    EXPECT_EQ(rfc->policy, client::deliver_policy::from_time);
    EXPECT_EQ(rfc->time_ns, 1'748'149'200 * ns_per_s);
}

TEST(SubArguments, BadFromValuesSayWhatIsAccepted) {
    for (const char* bad : {"", "yesterday", "-1", "12x", "ns", "99999999999999999999",
                            "99999999999999999999ns", "2025-05-25", "2025-13-01T00:00:00Z"}) {
        const auto r = parse_from(bad);
        ASSERT_FALSE(r.has_value()) << bad;
        EXPECT_EQ(r.error().rfind("--from: ", 0), 0u) << r.error();
    }
    EXPECT_NE(parse_from("soon").error().find("RFC 3339"), std::string::npos);
}

TEST(SubArguments, Rfc3339TimesBecomeUnixNanoseconds) {
    EXPECT_EQ(parse_rfc3339_ns("1970-01-01T00:00:00Z"), 0u);
    EXPECT_EQ(parse_rfc3339_ns("1970-01-01t00:00:01z"), ns_per_s);
    EXPECT_EQ(parse_rfc3339_ns("2025-05-25T05:00:00.5Z"), 1'748'149'200 * ns_per_s + 500'000'000);
    EXPECT_EQ(parse_rfc3339_ns("2025-05-25T05:00:00.123456789Z"),
              1'748'149'200 * ns_per_s + 123'456'789);
    EXPECT_EQ(parse_rfc3339_ns("2025-05-25T05:00:00.1234567891Z"),
              1'748'149'200 * ns_per_s + 123'456'789)
        << "digits past nanoseconds are cut";
    EXPECT_EQ(parse_rfc3339_ns("2025-05-25T14:00:00+09:00"), 1'748'149'200 * ns_per_s);
    EXPECT_EQ(parse_rfc3339_ns("2025-05-24T23:30:00-05:30"), 1'748'149'200 * ns_per_s);
    EXPECT_EQ(parse_rfc3339_ns("2024-02-29T00:00:00Z"), 1'709'164'800 * ns_per_s);
    EXPECT_EQ(parse_rfc3339_ns("2000-03-01T00:00:00Z"), 951'868'800 * ns_per_s);
    for (const char* bad :
         {"2023-02-29T00:00:00Z", "2025-05-25T24:00:00Z", "2025-05-25T05:60:00Z",
          "2025-05-25T05:00:00", "2025-05-25T05:00:00+0900", "2025-05-25 05:00:00Z",
          "2025-05-25T05:00:00.Z", "1969-12-31T23:59:59Z", "2600-01-01T00:00:00Z",
          "2025-5-25T05:00:00Z", "2025-05-25T05:00:00Zjunk"}) {
        const auto r = parse_rfc3339_ns(bad);
        ASSERT_FALSE(r.has_value()) << bad;
        EXPECT_NE(r.error().find("is not an RFC 3339 time"), std::string::npos) << r.error();
    }
}

TEST(SubArguments, MakeSubscriptionChecksEverythingBeforeConnecting) {
    sub_options o;
    o.stream = "events";
    o.project = "proj-1";
    o.subjects = {"task.*", "order.>"};
    o.consumer = "workers";
    o.from = "17";
    o.ack = "none";
    o.count = 5;
    o.timeout = "2s";
    const auto r = make_subscription(o);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->filter.project, "proj-1");
    EXPECT_EQ(r->filter.subjects, o.subjects);
    EXPECT_EQ(r->options.consumer, "workers");
    EXPECT_EQ(r->options.deliver, client::deliver_policy::from_offset);
    EXPECT_EQ(r->options.start_offset, nagare::offset{17});
    EXPECT_EQ(r->options.ack, client::ack_policy::none);
    EXPECT_EQ(r->count, 5u);
    EXPECT_EQ(r->timeout_ms, std::optional<std::uint64_t>{2000});

    struct bad_case {
        sub_options options;
        std::string words;
    };
    const auto with = [&](auto change) {
        sub_options b;
        b.stream = "events";
        change(b);
        return b;
    };
    const std::vector<bad_case> cases = {
        {with([](sub_options& b) { b.ack = "maybe"; }), "--ack must be explicit or none"},
        {with([](sub_options& b) { b.timeout = "soon"; }), "--timeout: 'soon'"},
        {with([](sub_options& b) { b.from = "last"; }), "last_per_subject needs a project"},
        {with([](sub_options& b) { b.subjects = {"task..x"}; }), "bad subject pattern 'task..x'"},
        {with([](sub_options& b) { b.project = "bad project"; }), "bad project filter"},
        {with([](sub_options& b) { b.consumer = "a b"; }), "bad consumer name"},
        {with([](sub_options& b) { b.stream = "no/such"; }), "bad stream name"},
    };
    for (const auto& c : cases) {
        const auto refused = make_subscription(c.options);
        ASSERT_FALSE(refused.has_value()) << c.words;
        EXPECT_NE(refused.error().find(c.words), std::string::npos) << refused.error();
    }
}

TEST(SubArguments, PayloadsPrintAsTextWhenPrintableElseAsHex) {
    EXPECT_EQ(payload_field(client::as_payload(R"({"id":1})")), R"(payload={"id":1})");
    EXPECT_EQ(payload_field(client::as_payload("日本語 ok")), "payload=日本語 ok");
    EXPECT_EQ(payload_field({}), "payload=");
    EXPECT_EQ(payload_field(client::as_payload(std::string("a\0b", 3))),
              "payload_bytes=3 payload_hex=610062");
    EXPECT_EQ(payload_field(client::as_payload("line\n")),
              "payload_bytes=5 payload_hex=6c696e650a");
    EXPECT_EQ(payload_field(client::as_payload("\xe6\x97")), "payload_bytes=2 payload_hex=e697")
        << "a cut UTF-8 sequence is not text";
    const std::string big(100, '\x01');
    const auto field = payload_field(client::as_payload(big));
    EXPECT_EQ(field.rfind("payload_bytes=100 payload_hex=0101", 0), 0u);
    EXPECT_EQ(field.size(), std::string("payload_bytes=100 payload_hex=").size() + 128 + 3);
    EXPECT_TRUE(field.ends_with("..."));
}

// ---------------------------------------------------------------------------
// The binary against the fake node

struct published {
    std::string project, subject, msg_id, payload;
};

// A fake node holding `messages` (stored through the client library).
void publish_all(const fake_server& server, const std::vector<published>& messages) {
    auto c = client::Client::connect(server.url());
    ASSERT_TRUE(c.has_value()) << c.error().message;
    for (const auto& m : messages) {
        auto f = (*c)->publish(m.project, m.subject, client::as_payload(m.payload), {m.msg_id, {}});
        ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
        ASSERT_TRUE(f.get().has_value());
    }
}

fake_options delivering() {
    fake_options fo;
    fo.streams = {{"events", {}, 1}};  // one partition: offsets are publish order
    fo.deliver_stored_on_subscribe = true;
    return fo;
}

const std::vector<published> three = {
    {"proj-1", "task.updated", "id-1", R"({"id":1})"},
    {"proj-2", "order.created", "id-2", std::string("\0\xff\n", 3)},
    {"proj-1", "task.created", "id-3", "plain text"},
};

std::size_t acked_count(const fake_server& server) {
    std::size_t n = 0;
    for (const auto& a : server.acks()) {
        if (a.kind == fb::AckKind::ACK) n += a.positions.size();
    }
    return n;
}

TEST(SubCommand, PrintsOneLinePerMessageAcksEachAndExitsAfterCount) {
    fake_server server(delivering());
    publish_all(server, three);
    const auto r = run_cli("sub events --count 3 --timeout 10s --url " + server.url());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    ASSERT_EQ(count_lines(r.output), 3u) << r.output;
    EXPECT_NE(r.output.find("partition=0 offset=0 subject=task.updated project=proj-1 msg_id=id-1 "
                            "delivery_count=1 payload={\"id\":1}\n"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("offset=1 subject=order.created project=proj-2 msg_id=id-2 "
                            "delivery_count=1 payload_bytes=3 payload_hex=00ff0a\n"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("msg_id=id-3 delivery_count=1 payload=plain text\n"),
              std::string::npos);
    // The fake reads what the exited process wrote in its own time.
    EXPECT_TRUE(wait_until([&] { return server.unsubscribes().size() == 1; }));
    EXPECT_EQ(acked_count(server), 3u) << "every printed message was acked before Unsubscribe";
    const auto subscribe = server.subscribes().at(0);
    EXPECT_EQ(subscribe.stream, "events");
    EXPECT_EQ(subscribe.deliver, fb::DeliverPolicy::ALL);
    EXPECT_EQ(subscribe.ack, fb::AckPolicy::EXPLICIT);
    EXPECT_EQ(subscribe.consumer, "");
}

TEST(SubCommand, StopsAtCountWithoutAckingTheRest) {
    fake_server server(delivering());
    publish_all(server, three);
    const auto r = run_cli("sub events --count 2 --url " + server.url());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(count_lines(r.output), 2u) << r.output;
    EXPECT_TRUE(wait_until([&] { return server.unsubscribes().size() == 1; }));
    EXPECT_EQ(acked_count(server), 2u) << "the third goes back to the consumer unacked";
}

TEST(SubCommand, PassesFilterAndOptionsToTheSubscribe) {
    fake_server server(delivering());
    publish_all(server, three);
    const auto r = run_cli(
        "sub events --project proj-1 --subjects 'task.*,order.>' --consumer w-1 "
        "--from 2025-05-25T05:00:00Z --ack none --count 2 --timeout 10s --url " +
        server.url());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(count_lines(r.output), 2u) << r.output;
    const auto s = server.subscribes().at(0);
    EXPECT_EQ(s.project, "proj-1");
    EXPECT_EQ(s.subjects, (std::vector<std::string>{"task.*", "order.>"}));
    EXPECT_EQ(s.consumer, "w-1");
    EXPECT_EQ(s.deliver, fb::DeliverPolicy::FROM_TIME);
    EXPECT_EQ(s.start_time_ns, 1'748'149'200 * ns_per_s);
    EXPECT_EQ(s.ack, fb::AckPolicy::NONE);
    EXPECT_TRUE(wait_until([&] { return server.unsubscribes().size() == 1; }));
    EXPECT_TRUE(server.acks().empty()) << "--ack none sends no Ack";

    const auto offset =
        run_cli("sub events --from 2 --count 1 --timeout 10s --url " + server.url());
    EXPECT_EQ(offset.exit_code, 0) << offset.output;
    EXPECT_NE(offset.output.find("offset=2 "), std::string::npos) << offset.output;
    EXPECT_EQ(server.subscribes().at(1).deliver, fb::DeliverPolicy::FROM_OFFSET);
    EXPECT_EQ(server.subscribes().at(1).start_offset, 2u);
}

TEST(SubCommand, TimeoutBeforeCountExitsOneAndSaysHowFarItGot) {
    fake_server server(delivering());
    publish_all(server, three);
    const auto r = run_cli("sub events --count 5 --timeout 300ms --url " + server.url());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("nagare: timed out after 3 of 5 messages"), std::string::npos)
        << r.output;
    // Without --count a timeout is the normal end.
    const auto tail = run_cli("sub events --timeout 200ms --url " + server.url());
    EXPECT_EQ(tail.exit_code, 0) << tail.output;
    EXPECT_EQ(count_lines(tail.output), 3u);
}

TEST(SubCommand, RefusalsAndBadInputAreClearLinesWithNonZeroExits) {
    fake_options fo;
    fo.refuse_subscribe = protocol::errc::no_such_stream;
    fake_server server(fo);
    const auto refused = run_cli("sub nope --count 1 --url " + server.url());
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_NE(refused.output.find("nagare: NO_SUCH_STREAM: "), std::string::npos) << refused.output;

    struct bad_case {
        std::string args;
        std::string words;
    };
    const std::vector<bad_case> cases = {
        {"sub events --from yesterday", "nagare: --from: 'yesterday' is not"},
        {"sub events --ack sometimes", "nagare: --ack must be explicit or none"},
        {"sub events --subjects 'task..x'", "nagare: bad subject pattern 'task..x'"},
        {"sub events --from last", "needs a project filter"},
        {"sub events --timeout forever", "nagare: --timeout: 'forever'"},
        {"sub 'bad stream'", "nagare: bad stream name"},
    };
    for (const auto& c : cases) {
        const auto r = run_cli(c.args + " --url " + server.url());
        EXPECT_EQ(r.exit_code, 2) << c.args << ": " << r.output;
        EXPECT_NE(r.output.find(c.words), std::string::npos) << c.args << ": " << r.output;
    }
    EXPECT_EQ(server.subscribes().size(), 1u) << "bad input never reached the broker";
    EXPECT_NE(run_cli("sub").exit_code, 0) << "the stream is required";
    EXPECT_NE(run_cli("sub events --count -1").exit_code, 0);
    EXPECT_NE(run_cli("sub events --bogus").exit_code, 0);
    const auto unreachable = run_cli("sub events --url nagare://127.0.0.1:1");
    EXPECT_EQ(unreachable.exit_code, 2);
    EXPECT_NE(unreachable.output.find("nagare: UNAVAILABLE: "), std::string::npos);
}

// ---------------------------------------------------------------------------
// nagare consumer

TEST(ConsumerCommand, ListInfoAndRemove) {
    fake_options fo;
    fo.consumers = {client::testing::sample_consumer("projector"),
                    client::testing::sample_consumer("mailer")};
    fake_server server(fo);
    const auto url = " --url " + server.url();
    const auto listed = run_cli("consumer ls events" + url);
    EXPECT_EQ(listed.exit_code, 0) << listed.output;
    EXPECT_EQ(count_lines(listed.output), 2u) << listed.output;
    EXPECT_NE(listed.output.find("projector: stream=events project=proj-1 "
                                 "subjects=task.*,order.> ack=explicit ack_wait_ms=30000 "
                                 "max_deliver=5 max_inflight=1024 ordered=true pending=3 "
                                 "redelivered=4 dead_lettered=1 terminated=2\n"),
              std::string::npos)
        << listed.output;
    EXPECT_NE(listed.output.find("mailer: "), std::string::npos);

    const auto info = run_cli("consumer info events projector" + url);
    EXPECT_EQ(info.exit_code, 0) << info.output;
    EXPECT_NE(info.output.find("pending=3 redelivered=4 dead_lettered=1 terminated=2\n"),
              std::string::npos);
    EXPECT_NE(info.output.find("  partition 0: ack_floor=12\n  partition 1: ack_floor=7\n"),
              std::string::npos)
        << info.output;

    const auto removed = run_cli("consumer rm events projector" + url);
    EXPECT_EQ(removed.exit_code, 0) << removed.output;
    EXPECT_NE(removed.output.find("consumer projector of stream events deleted"),
              std::string::npos);
    const auto gone = run_cli("consumer info events projector" + url);
    EXPECT_EQ(gone.exit_code, 1);
    EXPECT_NE(gone.output.find("nagare: NO_SUCH_CONSUMER: no consumer projector"),
              std::string::npos)
        << gone.output;
    const auto no_stream = run_cli("consumer ls nope" + url);
    EXPECT_EQ(no_stream.exit_code, 1);
    EXPECT_NE(no_stream.output.find("NO_SUCH_STREAM"), std::string::npos);
    EXPECT_NE(run_cli("consumer").exit_code, 0);
    EXPECT_NE(run_cli("consumer info events").exit_code, 0) << "the name is required";
    EXPECT_NE(run_cli("consumer rm").exit_code, 0);
}

}  // namespace
}  // namespace nagare::cli
