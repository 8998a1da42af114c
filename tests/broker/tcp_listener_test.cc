#include "broker/io/tcp_listener.h"

#include <vector>

#include <sys/resource.h>

#include "net_test_support.h"

namespace nagare::broker::io {
namespace {

using namespace test;

struct accept_recorder final : accept_handler {
    std::vector<int> fds;
    std::vector<int> errors;
    void on_accept(int fd) noexcept override { fds.push_back(fd); }
    void on_accept_error(int error) noexcept override { errors.push_back(error); }
    ~accept_recorder() {
        for (const int fd : fds) ::close(fd);
    }
};

std::unique_ptr<tcp_listener> listen_on(ring& r, std::uint16_t port, accept_handler& handler) {
    auto l = tcp_listener::create(r, "127.0.0.1", port, handler);
    EXPECT_TRUE(l.has_value()) << std::strerror(l ? 0 : l.error());
    return l ? std::move(*l) : nullptr;
}

void stop_and_wait(ring& r, tcp_listener& l) {
    l.stop();
    ASSERT_TRUE(run_until(
        r, [&] { return l.stopped(); }, std::chrono::seconds(5)));
}

TEST(TcpListener, PortZeroReportsTheBoundPortAndAcceptsWithNodelay) {
    auto r = make_ring();
    accept_recorder accepted;
    auto l = listen_on(*r, 0, accepted);
    ASSERT_NE(l, nullptr);
    ASSERT_NE(l->port(), 0);
    l->start();
    const int client = connect_to(l->port());
    ASSERT_GE(client, 0) << std::strerror(-client);
    ASSERT_TRUE(run_until(*r, [&] { return !accepted.fds.empty(); }));
    ASSERT_EQ(accepted.fds.size(), 1u);

    // The accepted socket is the peer of our client, on the reported port.
    sockaddr_in local{};
    socklen_t length = sizeof(local);
    ASSERT_EQ(::getsockname(accepted.fds[0], reinterpret_cast<sockaddr*>(&local), &length), 0);
    EXPECT_EQ(ntohs(local.sin_port), l->port());
    int nodelay = 0;
    length = sizeof(nodelay);
    ASSERT_EQ(::getsockopt(accepted.fds[0], IPPROTO_TCP, TCP_NODELAY, &nodelay, &length), 0);
    EXPECT_NE(nodelay, 0);
    EXPECT_EQ(l->probe().accepted, 1u);
    EXPECT_EQ(l->probe().accept_sqes, 1u) << "one multishot accept serves every connection";
    ::close(client);
    stop_and_wait(*r, *l);
}

TEST(TcpListener, TwoListenersWithReusePortOnOnePortBothAccept) {
    auto r = make_ring();
    accept_recorder first_accepted;
    accept_recorder second_accepted;
    auto first = listen_on(*r, 0, first_accepted);
    ASSERT_NE(first, nullptr);
    auto second = listen_on(*r, first->port(), second_accepted);
    ASSERT_NE(second, nullptr);
    ASSERT_EQ(second->port(), first->port());
    first->start();
    second->start();

    constexpr std::size_t clients_count = 64;
    std::vector<int> clients;
    for (std::size_t i = 0; i < clients_count; ++i) {
        const int fd = connect_to(first->port());
        ASSERT_GE(fd, 0) << std::strerror(-fd);
        clients.push_back(fd);
    }
    ASSERT_TRUE(run_until(*r, [&] {
        return first_accepted.fds.size() + second_accepted.fds.size() == clients_count;
    }));
    // The kernel hashes connections over both sockets; with 64 connections
    // one side getting none has probability 2^-63.
    EXPECT_GT(first_accepted.fds.size(), 0u);
    EXPECT_GT(second_accepted.fds.size(), 0u);
    EXPECT_TRUE(first_accepted.errors.empty());
    EXPECT_TRUE(second_accepted.errors.empty());
    for (const int fd : clients) ::close(fd);
    stop_and_wait(*r, *first);
    stop_and_wait(*r, *second);
}

TEST(TcpListener, StopThenConnectIsRefused) {
    auto r = make_ring();
    accept_recorder accepted;
    auto l = listen_on(*r, 0, accepted);
    ASSERT_NE(l, nullptr);
    const std::uint16_t port = l->port();
    l->start();
    const int client = connect_to(port);
    ASSERT_GE(client, 0);
    ASSERT_TRUE(run_until(*r, [&] { return accepted.fds.size() == 1; }));
    EXPECT_TRUE(l->accepting());

    l->stop();
    EXPECT_FALSE(l->accepting());
    EXPECT_FALSE(l->stopped()) << "the socket closes only after the accept's last CQE";
    ASSERT_TRUE(run_until(
        *r, [&] { return l->stopped(); }, std::chrono::seconds(5)));
    l->stop();  // idempotent
    EXPECT_EQ(connect_to(port), -ECONNREFUSED);
    EXPECT_TRUE(accepted.errors.empty()) << "the cancel is not reported as an accept error";
    ::close(client);
}

TEST(TcpListener, DescriptorExhaustionPausesAcceptingUntilResumed) {
    auto r = make_ring();
    accept_recorder accepted;
    auto l = listen_on(*r, 0, accepted);
    ASSERT_NE(l, nullptr);
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(client, 0);

    // The kernel reads RLIMIT_NOFILE when it prepares the accept (at submit)
    // and keeps that value for the multishot's life; it reserves the fd
    // before looking for a connection, so the arm fails at once. Lower the
    // limit around the submit only (nothing is dispatched meanwhile: UBSan's
    // checks open a pipe).
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    const int lowest_free = ::dup(0);
    ASSERT_GE(lowest_free, 0);
    ::close(lowest_free);
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new descriptor fits
    l->start();
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
    const int submitted = r->submit_and_wait(0);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    ASSERT_EQ(submitted, 0);

    const sockaddr_in address = loopback(l->port());
    const int connected =
        ::connect(client, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
    const bool saw_error = run_until(
        *r, [&] { return !accepted.errors.empty(); }, std::chrono::seconds(5));
    ASSERT_EQ(connected, 0) << std::strerror(errno);
    ASSERT_TRUE(saw_error);
    EXPECT_EQ(accepted.errors.front(), -EMFILE);
    EXPECT_TRUE(accepted.fds.empty());
    EXPECT_FALSE(l->accepting()) << "re-arming at once would spin on EMFILE";
    run_for(*r, std::chrono::milliseconds(30));
    EXPECT_EQ(accepted.errors.size(), 1u);

    l->resume_accepting();
    ASSERT_TRUE(run_until(
        *r, [&] { return accepted.fds.size() == 1; }, std::chrono::seconds(5)))
        << "the connection waited in the backlog";
    EXPECT_TRUE(l->accepting());
    ::close(client);
    stop_and_wait(*r, *l);
}

}  // namespace
}  // namespace nagare::broker::io
