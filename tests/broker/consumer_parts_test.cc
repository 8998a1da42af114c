// Parts of the consumer engine that stand alone: the u64 index and the
// consumer definition (checks, defaults, the file of a durable consumer).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "broker/consumer_config.h"
#include "broker/u64_index.h"

namespace nagare::broker {
namespace {

namespace fb = protocol::fb;
using protocol::errc;

TEST(U64Index, AgreesWithAMapUnderRandomOperations) {
    for (const std::uint32_t capacity : {1u, 7u, 64u, 1024u}) {
        u64_index index(capacity);
        std::map<std::uint64_t, std::uint32_t> model;
        std::mt19937_64 rng(capacity);
        for (int step = 0; step < 200'000; ++step) {
            // Keys clustered (offsets) so probe runs collide and wrap.
            const std::uint64_t key = rng() % (capacity * 3 + 5) + (step % 2 ? 0 : (1ull << 40));
            const auto op = rng() % 3;
            if (op == 0 && model.size() < capacity && !model.contains(key)) {
                const auto value = static_cast<std::uint32_t>(rng() % 1000);
                index.insert(key, value);
                model[key] = value;
            } else if (op == 1) {
                EXPECT_EQ(index.erase(key), model.erase(key) == 1);
            } else {
                const auto found = index.find(key);
                const auto it = model.find(key);
                ASSERT_EQ(found.has_value(), it != model.end());
                if (found) {
                    EXPECT_EQ(*found, it->second);
                }
            }
            ASSERT_EQ(index.size(), model.size());
        }
        for (const auto& [k, v] : model) EXPECT_EQ(index.find(k), v);
        index.clear();
        EXPECT_EQ(index.size(), 0u);
        for (const auto& [k, v] : model) EXPECT_FALSE(index.find(k).has_value());
    }
}

struct subscribe_frame {
    flatbuffers::FlatBufferBuilder b;
    const fb::Subscribe* get(const fb::SubscribeT& s) {
        b.Clear();
        b.Finish(fb::CreateSubscribe(b, &s));
        return flatbuffers::GetRoot<fb::Subscribe>(b.GetBufferPointer());
    }
};

TEST(ConsumerConfig, DefaultsAndChecks) {
    subscribe_frame f;
    fb::SubscribeT s;
    s.stream = "events";
    auto c = consumer_config_from(*f.get(s), "_e0-1");
    ASSERT_TRUE(c.has_value());
    EXPECT_TRUE(c->ephemeral);
    EXPECT_EQ(c->name, "_e0-1");
    EXPECT_EQ(c->ack_wait_ms, ack_wait_ms_default);
    EXPECT_EQ(c->max_deliver, max_deliver_default);
    EXPECT_EQ(c->max_inflight, max_inflight_default);
    EXPECT_TRUE(c->ack_explicit);
    EXPECT_TRUE(c->matches("any", "task.updated"));

    auto code_of = [&](const fb::SubscribeT& bad) {
        auto r = consumer_config_from(*f.get(bad), "x");
        return r ? errc::none : r.error().code;
    };
    auto bad = s;
    bad.subjects = {"task..x"};
    EXPECT_EQ(code_of(bad), errc::bad_pattern);
    bad = s;
    bad.project = "has space";
    EXPECT_EQ(code_of(bad), errc::bad_project);
    bad = s;
    bad.consumer = "no.dots";
    EXPECT_EQ(code_of(bad), errc::bad_request);
    bad = s;
    bad.max_inflight = max_inflight_limit + 1;
    EXPECT_EQ(code_of(bad), errc::bad_request);
    bad = s;
    bad.deliver = fb::DeliverPolicy::LAST_PER_SUBJECT;
    EXPECT_EQ(code_of(bad), errc::bad_request);  // needs a project
    bad = s;
    bad.stream = "";
    EXPECT_EQ(code_of(bad), errc::no_such_stream);
    bad = s;
    bad.backoff_ms.assign(backoff_steps_max + 1, 10);
    EXPECT_EQ(code_of(bad), errc::bad_request);
}

TEST(ConsumerConfig, FilterBackoffAndSameDefinition) {
    subscribe_frame f;
    fb::SubscribeT s;
    s.stream = "events";
    s.consumer = "worker";
    s.project = "acme";
    s.subjects = {"task.*", "order.>", "task.*"};
    s.backoff_ms = {100, 1000};
    s.ack_wait_ms = 5000;
    auto c = consumer_config_from(*f.get(s), "unused");
    ASSERT_TRUE(c.has_value());
    EXPECT_FALSE(c->ephemeral);
    EXPECT_EQ(c->subjects.size(), 2u);  // sorted, repeats dropped
    EXPECT_TRUE(c->matches("acme", "task.updated"));
    EXPECT_TRUE(c->matches("acme", "order.tasks.reordered"));
    EXPECT_FALSE(c->matches("other", "task.updated"));
    EXPECT_FALSE(c->matches("acme", "stock.out"));
    EXPECT_EQ(c->redelivery_delay_ns(1), 100'000'000u);
    EXPECT_EQ(c->redelivery_delay_ns(2), 1'000'000'000u);
    EXPECT_EQ(c->redelivery_delay_ns(7), 1'000'000'000u);  // the last step repeats
    s.backoff_ms.clear();
    auto plain = consumer_config_from(*f.get(s), "unused");
    ASSERT_TRUE(plain.has_value());
    EXPECT_EQ(plain->redelivery_delay_ns(3), 5'000'000'000u);
    EXPECT_FALSE(plain->same_definition(*c));
    s.backoff_ms = {100, 1000};
    s.deliver = fb::DeliverPolicy::NEW;  // the deliver policy is not part of the definition
    auto again = consumer_config_from(*f.get(s), "unused");
    ASSERT_TRUE(again.has_value());
    EXPECT_TRUE(again->same_definition(*c));
}

TEST(ConsumerConfig, FileRoundTripAndBadFiles) {
    const auto dir = std::filesystem::temp_directory_path() / ("nagare-consumer-config-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    subscribe_frame f;
    fb::SubscribeT s;
    s.stream = "events";
    s.consumer = "projector";
    s.subjects = {"task.>"};
    s.backoff_ms = {50, 500};
    s.max_deliver = 9;
    s.max_inflight = 16;
    s.ordered = true;
    s.ack = fb::AckPolicy::NONE;
    auto c = consumer_config_from(*f.get(s), "unused");
    ASSERT_TRUE(c.has_value());
    ASSERT_TRUE(save_consumer_config(dir / "projector.toml", *c).has_value());
    auto loaded = load_consumer_config(dir / "projector.toml");
    ASSERT_TRUE(loaded.has_value()) << loaded.error();
    EXPECT_TRUE(loaded->same_definition(*c));
    EXPECT_FALSE(std::filesystem::exists(dir / "projector.toml.tmp"));

    std::ofstream(dir / "broken.toml") << "name = \"x\"\nstream = [";
    EXPECT_FALSE(load_consumer_config(dir / "broken.toml").has_value());
    std::ofstream(dir / "badname.toml") << "name = \"a.b\"\nstream = \"events\"\n";
    EXPECT_FALSE(load_consumer_config(dir / "badname.toml").has_value());
    std::ofstream(dir / "badpattern.toml") << "name = \"a\"\nstream = \"events\"\nsubjects = [\"a..b\"]\n";
    EXPECT_FALSE(load_consumer_config(dir / "badpattern.toml").has_value());
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nagare::broker
