/*
 * A camera built on Eclipse Paho C (Debian libpaho-mqtt-dev, the synchronous MQTTClient API) with a persistent
 * session: file persistence and clean session 0. Compiled and run by MQTTPahoTests:
 *
 *   cc -o paho-publisher paho-publisher.c -lpaho-mqtt3c
 *   paho-publisher URI CLIENT_ID PERSISTENCE_DIR TOPIC EVENTS_FILE INFLIGHT DEADLINE_SECONDS
 *
 * Publishes every line of EVENTS_FILE as one QoS 1 message, up to INFLIGHT unacknowledged at once. A line is handed
 * to Paho exactly once: once MQTTClient_publishMessage took it, this program never publishes it again, whatever
 * happens to the connection. When the connection is lost it reconnects (same client id, clean session 0) until it
 * succeeds, and leaves the resending of the messages that were in flight to Paho, which keeps them in its
 * persistence directory until they are acknowledged. So if Paho dropped an in-flight message on reconnect, it would
 * be missing at the server: the test counts every event.
 *
 * Prints one line per connection ("connected session_present=N"), per message taken ("taken LINE"), and at the end
 * "done taken=N reconnects=N". Exit 0 once every message was acknowledged, 1 on a deadline or a fatal error.
 */
#include <MQTTClient.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static time_t deadline;

static void connect_until_up(MQTTClient client, int *reconnects, int first) {
    for (;;) {
        MQTTClient_connectOptions options = MQTTClient_connectOptions_initializer;
        options.keepAliveInterval = 5;
        options.cleansession = 0;
        options.reliable = 0; /* several messages in flight at once */
        options.maxInflightMessages = 64;
        options.connectTimeout = 2;
        options.retryInterval = 1;
        int rc = MQTTClient_connect(client, &options);
        if (rc == MQTTCLIENT_SUCCESS) {
            printf("connected session_present=%d\n", options.returned.sessionPresent);
            fflush(stdout);
            if (!first) (*reconnects)++;
            return;
        }
        if (time(NULL) > deadline) {
            fprintf(stderr, "could not connect before the deadline (last rc %d)\n", rc);
            exit(1);
        }
        usleep(100 * 1000);
    }
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s URI CLIENT_ID PERSISTENCE_DIR TOPIC EVENTS_FILE INFLIGHT DEADLINE_SECONDS\n", argv[0]);
        return 2;
    }
    const char *uri = argv[1], *clientId = argv[2], *persistence = argv[3], *topic = argv[4], *file = argv[5];
    int inflight = atoi(argv[6]);
    deadline = time(NULL) + atoi(argv[7]);

    FILE *events = fopen(file, "r");
    if (!events) {
        perror("events file");
        return 2;
    }
    MQTTClient client;
    if (MQTTClient_create(&client, uri, clientId, MQTTCLIENT_PERSISTENCE_DEFAULT, (void *)persistence) != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "MQTTClient_create failed\n");
        return 2;
    }
    int reconnects = 0;
    connect_until_up(client, &reconnects, 1);

    MQTTClient_deliveryToken *tokens = calloc((size_t)inflight, sizeof *tokens);
    int pending = 0, taken = 0;
    char line[4096];
    int more = fgets(line, sizeof line, events) != NULL;
    while (more || pending > 0) {
        if (time(NULL) > deadline) {
            fprintf(stderr, "deadline: %d taken, %d pending\n", taken, pending);
            return 1;
        }
        if (more && pending < inflight) {
            size_t n = strcspn(line, "\r\n");
            line[n] = 0;
            MQTTClient_message message = MQTTClient_message_initializer;
            message.payload = line;
            message.payloadlen = (int)n;
            message.qos = 1;
            MQTTClient_deliveryToken token;
            int rc = MQTTClient_publishMessage(client, topic, &message, &token);
            if (rc == MQTTCLIENT_SUCCESS) {
                /* Paho has it (and its persistence file): never published again by this program. */
                tokens[pending++] = token;
                taken++;
                printf("taken %d\n", taken);
                more = fgets(line, sizeof line, events) != NULL;
            } else {
                /* Not taken (disconnected): reconnect, then publish this line for the first time. */
                if (!MQTTClient_isConnected(client)) connect_until_up(client, &reconnects, 0);
            }
            continue;
        }
        /* The window is full (or the file done): wait for the oldest message's acknowledgement. */
        int rc = MQTTClient_waitForCompletion(client, tokens[0], 1000);
        if (rc == MQTTCLIENT_SUCCESS) {
            memmove(tokens, tokens + 1, (size_t)(pending - 1) * sizeof *tokens);
            pending--;
        } else if (!MQTTClient_isConnected(client)) {
            /* Lost: reconnect; Paho resends the messages in flight (from its persistence) on the new connection. */
            connect_until_up(client, &reconnects, 0);
        }
    }
    MQTTClient_disconnect(client, 1000);
    MQTTClient_destroy(&client);
    printf("done taken=%d reconnects=%d\n", taken, reconnects);
    return 0;
}
