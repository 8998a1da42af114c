#include "broker/io/uring_file_io.h"

#include <cerrno>

#include "protocol/assert.h"

namespace nagare::broker::io {

uring_file_io::uring_file_io(ring& r, std::size_t ops_max)
    : _ring(r), _ops(std::make_unique<op[]>(ops_max)) {
    NG_ASSERT(ops_max > 0, "at least one file operation");
    for (std::size_t i = ops_max; i-- > 0;) {
        _ops[i].owner = this;
        _ops[i].next_free = _free;
        _free = &_ops[i];
    }
}

bool uring_file_io::supported(ring& r) noexcept {
    for (const unsigned opcode : {IORING_OP_WRITE, IORING_OP_FSYNC, IORING_OP_OPENAT,
                                  IORING_OP_CLOSE, IORING_OP_RENAMEAT}) {
        if (!r.supports(opcode)) return false;
    }
    return true;
}

uring_file_io::op& uring_file_io::acquire(int fd, storage::io_completion& done) noexcept {
    NG_ASSERT(_free != nullptr, "file operation pool exhausted: raise ops_max");
    op& o = *_free;
    _free = o.next_free;
    ++_in_use;
    o.fd = fd;
    o.bytes = {};
    o.position = 0;
    o.written = 0;
    o.sync = false;
    o.cqes_left = 0;
    o.error = 0;
    o.done = &done;
    return o;
}

void uring_file_io::release(op& o) noexcept {
    o.done = nullptr;
    o.next_free = _free;
    _free = &o;
    --_in_use;
}

void uring_file_io::write(int fd, std::span<const std::byte> bytes, std::uint64_t position,
                          bool datasync, storage::io_completion& done) noexcept {
    op& o = acquire(fd, done);
    o.bytes = bytes;
    o.position = position;
    o.sync = datasync;
    submit(o);
}

void uring_file_io::datasync(int fd, storage::io_completion& done) noexcept {
    op& o = acquire(fd, done);
    o.sync = true;
    submit(o);
}

void uring_file_io::fsync(int fd, storage::io_completion& done) noexcept {
    op& o = acquire(fd, done);
    io_uring_prep_fsync(_ring.prep(o, tag_single), fd, 0);
}

void uring_file_io::open_at(int dir_fd, const char* name, int flags, unsigned mode,
                            storage::io_completion& done) noexcept {
    op& o = acquire(dir_fd, done);
    io_uring_prep_openat(_ring.prep(o, tag_single), dir_fd, name, flags, mode);
}

void uring_file_io::close(int fd, storage::io_completion& done) noexcept {
    op& o = acquire(fd, done);
    io_uring_prep_close(_ring.prep(o, tag_single), fd);
}

void uring_file_io::rename_at(int dir_fd, const char* from, const char* to,
                              storage::io_completion& done) noexcept {
    op& o = acquire(dir_fd, done);
    io_uring_prep_renameat(_ring.prep(o, tag_single), dir_fd, from, dir_fd, to, 0);
}

void uring_file_io::submit(op& o) noexcept {
    const auto rest = o.bytes.subspan(o.written);
    const bool has_write = !rest.empty();
    const unsigned sqes = (has_write ? 1u : 0u) + (o.sync ? 1u : 0u);
    NG_ASSERT(sqes > 0, "an operation with nothing to do");
    if (has_write) {
        io_uring_sqe* sqe = _ring.prep(o, tag_write, sqes);
        io_uring_prep_write(sqe, o.fd, rest.data(), static_cast<unsigned>(rest.size()),
                            o.position + o.written);
        if (o.sync) sqe->flags |= IOSQE_IO_LINK;
    }
    if (o.sync) {
        io_uring_sqe* sqe = _ring.prep(o, tag_sync);
        io_uring_prep_fsync(sqe, o.fd, IORING_FSYNC_DATASYNC);
    }
    o.cqes_left = sqes;
}

void uring_file_io::op::on_cqe(unsigned tag, int res, unsigned /*flags*/) noexcept {
    if (tag == tag_single) {
        owner->deliver(*this, res);
        return;
    }
    if (tag == tag_write) {
        if (res < 0) {
            error = res;
        } else if (res == 0 && written < bytes.size()) {
            error = -EIO;  // no progress: do not loop forever
        } else {
            written += static_cast<std::size_t>(res);
        }
    } else if (res < 0 && res != -ECANCELED && error == 0) {
        error = res;
    }
    if (--cqes_left == 0) owner->finish(*this);
}

void uring_file_io::finish(op& o) noexcept {
    if (o.error == 0 && o.written < o.bytes.size()) {
        submit(o);  // short write (the linked sync was cancelled): continue
        return;
    }
    deliver(o, o.error != 0 ? o.error : static_cast<int>(o.written));
}

void uring_file_io::deliver(op& o, int result) noexcept {
    storage::io_completion* done = o.done;
    release(o);
    ++_delivered;
    done->io_done(result);
}

std::size_t uring_file_io::poll(bool wait) noexcept {
    _delivered = 0;
    const bool waiting = wait && _in_use > 0;
    const int rc = _ring.submit_and_wait(waiting ? 1 : 0);
    NG_ASSERT(rc == 0, "io_uring_submit_and_wait failed");
    _ring.dispatch();
    return _delivered;
}

}  // namespace nagare::broker::io
