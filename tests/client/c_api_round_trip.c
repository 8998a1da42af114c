/* The C API used from C: compiled as C (not C++), so it also proves that
 * nagare_c.h is a valid C header. Returns 0, or the line of the first
 * failed check. */
#include <string.h>

#include "nagare/nagare_c.h"

#define CHECK(cond)                   \
    do {                              \
        if (!(cond)) return __LINE__; \
    } while (0)

int c_api_round_trip(const char* url);

int c_api_round_trip(const char* url) {
    nagare_client* client = NULL;
    nagare_position first;
    nagare_position again;
    const char payload[] = "{\"event\":\"task.updated\"}";

    CHECK(nagare_connect(url, "token", &client) == NAGARE_OK);
    CHECK(client != NULL);

    CHECK(nagare_publish(client, "proj-c", "task.updated", payload, sizeof payload - 1, "c-1",
                         &first) == NAGARE_OK);
    CHECK(strcmp(first.stream, "events") == 0);
    CHECK(first.duplicate == 0);
    CHECK(nagare_publish(client, "proj-c", "task.updated", payload, sizeof payload - 1, "c-1",
                         &again) == NAGARE_OK);
    CHECK(again.duplicate == 1);
    CHECK(again.offset == first.offset);
    CHECK(again.partition == first.partition);

    /* A generated msg_id, no position wanted, an empty payload. */
    CHECK(nagare_publish(client, "proj-c", "task.created", NULL, 0, NULL, NULL) == NAGARE_OK);

    CHECK(nagare_publish(client, "proj-c", "nodots", payload, 1, NULL, NULL) == NAGARE_BAD_SUBJECT);
    CHECK(strlen(nagare_last_error_message()) > 0);
    CHECK(nagare_publish(client, "bad project", "task.updated", payload, 1, NULL, NULL) ==
          NAGARE_BAD_PROJECT);
    CHECK(nagare_publish(client, "proj-c", "task.updated", payload, 1, "", NULL) ==
          NAGARE_BAD_MSG_ID);
    CHECK(nagare_publish(client, "proj-c", "task.updated", NULL, 5, NULL, NULL) ==
          NAGARE_BAD_REQUEST);
    CHECK(nagare_flush(client, 5000) == NAGARE_OK);

    nagare_close(client);
    nagare_close(NULL);
    return 0;
}
