/* nagare C API: the publish side of the nagare client library, for C and
 * for bindings of other languages.
 *
 * A nagare_client wraps one nagare::client::Client (see nagare/client.h):
 * one I/O thread, shard-aware routing, a bounded in-flight window, and
 * reconnect with backoff that re-sends unacknowledged publishes with the
 * same msg_id. nagare_publish is synchronous: it returns once the broker
 * acknowledged (or refused) the message. Every function but nagare_close
 * may be called from any thread, concurrently, on the same client.
 *
 * Return codes are the protocol's error numbers (docs/protocol.md), plus
 * NAGARE_UNAVAILABLE and NAGARE_CLOSED for failures on the client's side.
 * nagare_last_error_message() gives the text of the calling thread's last
 * failure. */
#ifndef NAGARE_NAGARE_C_H
#define NAGARE_NAGARE_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum nagare_code {
    NAGARE_OK = 0,
    NAGARE_BAD_FRAME = 1,
    NAGARE_FRAME_TOO_LARGE = 2,
    NAGARE_UNSUPPORTED_VERSION = 3,
    NAGARE_BAD_SUBJECT = 4,
    NAGARE_BAD_PATTERN = 5,
    NAGARE_BAD_PROJECT = 6,
    NAGARE_BAD_MSG_ID = 7,
    NAGARE_BAD_HEADERS = 8,
    NAGARE_PAYLOAD_TOO_LARGE = 9,
    NAGARE_BAD_REQUEST = 10,
    NAGARE_NOT_AUTHORIZED = 11,
    NAGARE_NO_SUCH_STREAM = 12,
    NAGARE_NO_SUCH_CONSUMER = 13,
    NAGARE_NO_SUCH_SUBSCRIPTION = 14,
    NAGARE_UNKNOWN_POSITION = 15,
    NAGARE_STREAM_EXISTS = 16,
    NAGARE_CONSUMER_EXISTS = 17,
    NAGARE_STORAGE_FULL = 18,
    NAGARE_STORAGE_ERROR = 19,
    NAGARE_OVERLOADED = 20,
    NAGARE_SHUTTING_DOWN = 21,
    NAGARE_INTERNAL = 22,
    /* Client side: the broker cannot be reached; the client is closed. */
    NAGARE_UNAVAILABLE = 100,
    NAGARE_CLOSED = 101
};

/* A stream name is at most 64 bytes; a dead-letter name "$dlq.<s>.<c>" 134. */
#define NAGARE_STREAM_BYTES_MAX 134

typedef struct nagare_client nagare_client;

typedef struct nagare_position {
    char stream[NAGARE_STREAM_BYTES_MAX + 1]; /* NUL-terminated */
    uint32_t partition;
    uint64_t offset;
    int duplicate; /* 1: the msg_id was stored before; offset is the first one */
} nagare_position;

/* Connects to url ("nagare://host:port") with token (NULL: none). On
 * NAGARE_OK, *out holds a client to release with nagare_close. */
int nagare_connect(const char* url, const char* token, nagare_client** out);

/* Publishes payload[0..payload_bytes) and waits for the broker's answer.
 * msg_id NULL: the client generates one (a ULID). out may be NULL. */
int nagare_publish(nagare_client* client, const char* project, const char* subject,
                   const void* payload, size_t payload_bytes, const char* msg_id,
                   nagare_position* out);

/* Waits until every publish is acknowledged (timeout_ms < 0: no limit).
 * NAGARE_OK, or NAGARE_OVERLOADED when the time ran out. */
int nagare_flush(nagare_client* client, int64_t timeout_ms);

/* Closes the connections, stops the I/O thread and frees the client. NULL is a no-op.
 * REQUIRES: no other call on this client is running or follows. */
void nagare_close(nagare_client* client);

/* "BAD_SUBJECT" for NAGARE_BAD_SUBJECT; a static string. */
const char* nagare_error_string(int code);

/* The message of the calling thread's last failed call (static until that
 * thread's next call); "" when there is none. */
const char* nagare_last_error_message(void);

#ifdef __cplusplus
}
#endif

#endif /* NAGARE_NAGARE_C_H */
